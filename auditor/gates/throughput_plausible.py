"""throughput_plausible: throughput and runtime are physically possible for the model and hardware."""

from __future__ import annotations

from auditor.evidence.run import RunEvidence
from auditor.gates.base import GateContext, Results, gate, ref
from auditor.hardware import CPU_PEAK_TFLOPS, peak_tflops
from auditor.models import EvidenceRef, GateResult

R = Results("throughput_plausible")


def parameter_count(ev: RunEvidence) -> tuple[int, str] | None:
    """Parameters from tensor shapes, else the shard index's declared total_parameters."""
    ckpt = ev.checkpoint
    if ckpt is None:
        return None
    if ckpt.files and not ckpt.missing_shards and ckpt.parameters:
        return ckpt.parameters, f"tensor shapes in {ckpt.directory}/"
    if ckpt.index is not None:
        declared = ckpt.index.metadata.get("total_parameters")
        if isinstance(declared, int) and declared > 0:
            return declared, f"{ckpt.index.path} metadata.total_parameters"
    return None


def hardware(ev: RunEvidence) -> tuple[str, float, int, EvidenceRef] | None:
    """(name, peak TFLOP/s per device, device count, where) of the recorded hardware."""
    snap = ev.gpu_snapshot
    if snap and snap.devices:
        peak = peak_tflops(snap.devices[0].name)
        if peak:
            return peak[0], peak[1], len(snap.devices), ref(snap.path, snap.devices[0].line)
    gpu = ev.env_fact("gpu")
    if gpu:
        peak = peak_tflops(gpu[0])
        if peak:
            return peak[0], peak[1], 1, ref(gpu[1], gpu[2])
    if ev.plan.device == "cpu":
        return "CPU host", CPU_PEAK_TFLOPS, 1, ref(ev.plan.source.get("device", "plan"))
    return None


@gate("throughput_plausible", "throughput and runtime are physically possible for the model size and recorded "
      "hardware (model FLOPs utilisation ≤ 100% of the accelerator's peak)")
def check(ev: RunEvidence, ctx: GateContext) -> GateResult:
    """Achieved FLOP/s = total_flos / runtime, or 6 × parameters × tokens/s; compare with the peak."""
    final = ev.final_record
    if final is None or not final.values.get("train_runtime"):
        return R("skip", "no runtime recorded (no final trainer record): nothing to check")
    runtime = final.values["train_runtime"]
    hw = hardware(ev)
    if hw is None:
        return R("skip", "hardware unknown (no GPU snapshot, no GPU in the environment snapshot): cannot bound "
                 "throughput")
    name, peak, devices, hw_ref = hw
    achieved: float | None = None
    how = ""
    params = parameter_count(ev)
    samples = final.values.get("train_samples_per_second")
    seq = ev.plan.max_seq_length
    if params and samples and seq:
        achieved = 6 * params[0] * samples * seq
        how = f"6 × {params[0]:,} parameters ({params[1]}) × {samples:g} samples/s × {seq} tokens"
    elif final.values.get("total_flos"):
        achieved = final.values["total_flos"] / runtime
        how = f"total_flos {final.values['total_flos']:.4g} / {runtime:g} s"
    if achieved is None:
        return R("skip", "neither total_flos nor parameters × tokens/s are recorded: cannot compute model FLOPs")
    mfu = achieved / (peak * 1e12 * devices)
    detail = (f"{achieved / 1e12:.2f} TFLOP/s achieved ({how}) on {devices} × {name} "
              f"(peak {peak:g} TFLOP/s each): MFU {mfu:.1%}")
    pointer = ref(final.path, final.line)
    if mfu > 1.0:
        return R("fail", f"physically impossible: {detail} exceeds 100% — a smaller model than declared, a wrong "
                 "runtime or wrong hardware", pointer, hw_ref)
    return R("pass", detail, pointer, hw_ref)
