"""gpu_used: when an accelerator is planned or claimed, evidence that it did the work."""

from __future__ import annotations

import re

from auditor.evidence.run import RunEvidence
from auditor.gates.base import GateContext, Results, gate, ref, where
from auditor.models import EvidenceRef, GateResult

R = Results("gpu_used")
_HARDWARE_LINE = re.compile(r"\s*(?:\|\s*|[-*]\s+)?\**(Device|Hardware|GPU|Accelerator)\**\s*(?:\||:\**)", re.I)
_ACCEL_CLAIM = re.compile(r"\b(cuda|gpu|tpu|rtx|a100|h100|h200|v100|nvidia)\b", re.I)


def _wanted(ev: RunEvidence) -> tuple[str, EvidenceRef] | None:
    """The accelerator the plan or a claim names, with where it says so."""
    plan = ev.plan
    if plan.device in ("cuda", "gpu", "tpu"):
        return plan.device, ref(plan.source.get("device", "plan"))
    for summary in ev.summaries:
        for claim_gate, (status, at) in summary.gate_claims.items():
            if claim_gate == "gpu_used" and re.search(r"pass|✅", status, re.I):
                return "cuda", ref(summary.path, at)
    for summary in ev.summaries:
        doc = ev.text(summary.path)
        for number, text in enumerate(doc.lines if doc else (), start=1):
            if _HARDWARE_LINE.match(text) and _ACCEL_CLAIM.search(text):
                return ("tpu" if "tpu" in text.lower() else "cuda"), ref(summary.path, number)
    return None


@gate("gpu_used", "when a GPU/TPU is planned or claimed: evidence the accelerator did the work (NVML process "
      "memory/utilisation, nvidia-smi rows, framework device lines); contrary evidence fails")
def check(ev: RunEvidence, ctx: GateContext) -> GateResult:
    """Contrary evidence fails; measured evidence passes; log lines alone warn; nothing fails."""
    wanted = _wanted(ev)
    if wanted is None:
        return R("skip", "no accelerator planned or claimed")
    device, claim = wanted
    for signals in ev.log_signals:
        if signals.cpu_lines:
            line = signals.cpu_lines[0]
            doc = ev.text(signals.path)
            text = doc.lines[line - 1].strip()[:100] if doc else ""
            return R("fail", f"{device} planned or claimed ({where(claim.path, claim.line)}) but "
                     f"{where(signals.path, line)} says the run used the CPU: {text!r}", claim, ref(signals.path, line))
    available = ev.env_fact("cuda_available")
    if device == "cuda" and available and available[0].lower() in ("false", "no"):
        return R("fail", f"cuda planned or claimed but {where(available[1], available[2])} records CUDA "
                 "available: False", claim, ref(available[1], available[2]))
    samples = ev.gpu_samples
    if samples is not None and samples.samples:
        if samples.max_process_memory_mib > 0 or samples.max_utilization > 0:
            return R("pass", f"{samples.samples} NVML samples: peak utilisation {samples.max_utilization:.0f}%, "
                     f"peak process memory {samples.max_process_memory_mib:.0f} MiB", ref(samples.path))
        return R("fail", f"{samples.samples} NVML samples taken during the run show 0% utilisation and no memory "
                 "held by the run's processes: the accelerator sat idle", ref(samples.path))
    snap = ev.gpu_snapshot
    compute = [p for p in snap.compute_processes if (p.memory_mib or 0) > 0] if snap else []
    if snap and compute:
        p = compute[0]
        return R("pass", f"{snap.path}:{p.line}: process {p.name} (pid {p.pid}) holds {p.memory_mib} MiB on GPU "
                 f"{p.gpu}", ref(snap.path, p.line))
    idle = bool(snap and snap.devices and snap.has_process_table and not snap.compute_processes
                and all((d.utilization or 0) == 0 for d in snap.devices))
    if idle and snap is not None:
        return R("fail", f"{snap.path} shows the GPU idle (0% utilisation) with no compute process: no sign the "
                 "run used it; capture nvidia-smi or NVML samples during training", ref(snap.path))
    lines = [(s.path, n) for s in ev.log_signals for n in (s.tpu_lines if device == "tpu" else s.gpu_lines)]
    if lines:
        path, line = lines[0]
        snap_note = f"; {snap.path} shows no process of the run (taken outside training?)" if snap else ""
        return R("warn", f"{device} use rests on log lines only ({where(path, line)}, {len(lines)} line(s))"
                 f"{snap_note}; record NVML samples during the run (`audit run`) to prove it",
                 ref(path, line), *( [ref(snap.path)] if snap else []))
    return R("fail", f"{device} planned or claimed ({where(claim.path, claim.line)}) but no evidence the accelerator "
             "did the work: no NVML samples, no nvidia-smi process row, no framework device line", claim)
