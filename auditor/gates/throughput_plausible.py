"""throughput_plausible: throughput and runtime are physically possible for the model and hardware."""

from __future__ import annotations

from auditor.evidence.run import RunEvidence
from auditor.evidence.throughput import plausibility
from auditor.gates.base import GateContext, Results, gate, ref
from auditor.models import GateResult

R = Results("throughput_plausible")


@gate("throughput_plausible", "throughput and runtime are physically possible for the model size and recorded "
      "hardware (model FLOPs utilisation ≤ 100% of the accelerator's peak)")
def check(ev: RunEvidence, ctx: GateContext) -> GateResult:
    """Every recorded or claimed throughput figure, as FLOP/s for the checkpoint's and each declared model size,
    within the recorded devices' peak; the runtime within the wall time; the rates consistent with each other."""
    found = plausibility(ev)
    hw = found.hardware
    if found.failures:
        message, failed_at = found.failures[0]
        more = f" (and {len(found.failures) - 1} more impossibility)" if len(found.failures) > 1 else ""
        seen: list[tuple[str, int | None]] = []
        for where in failed_at:
            if where[0] and where not in seen:
                seen.append(where)
        return R("fail", f"physically impossible: {message}{more}", *(ref(path, line) for path, line in seen))
    checked = f" (checked: {'; '.join(found.checked)})" if found.checked else ""
    if hw is None:
        if ev.final_record is None and not found.estimates and not found.checked:
            return R("skip", "no runtime or throughput recorded (no final trainer record) or claimed: nothing to "
                     "check")
        return R("skip", "hardware unknown (no GPU snapshot, no GPU in the environment snapshot): cannot bound "
                 f"throughput{checked}")
    binding = found.binding
    if binding is None:
        if found.checked:
            return R("pass", "; ".join(found.checked))
        if ev.final_record is None:
            return R("skip", "no runtime or throughput recorded (no final trainer record) or claimed: nothing to "
                     "check")
        return R("skip", "neither total_flos nor parameters × tokens/s are recorded: cannot compute model FLOPs")
    parts = [f"{binding.flops / 1e12:.2f} TFLOP/s at most ({binding.how}) on {hw.devices} × {hw.name} "
             f"(peak {hw.peak_tflops:g} TFLOP/s each): MFU {binding.flops / hw.peak:.1%}"]
    if len(found.estimates) > 1:
        parts.append(f"{len(found.estimates)} figure(s) within the peak")
    return R("pass", "; ".join(parts + found.checked), ref(*binding.where), ref(*hw.where))
