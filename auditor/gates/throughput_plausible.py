"""throughput_plausible: throughput and runtime are physically possible for the model and hardware."""

from __future__ import annotations

from auditor.evidence.run import RunEvidence
from auditor.evidence.throughput import hardware, model_flops
from auditor.gates.base import GateContext, Results, gate, ref
from auditor.models import GateResult

R = Results("throughput_plausible")


@gate("throughput_plausible", "throughput and runtime are physically possible for the model size and recorded "
      "hardware (model FLOPs utilisation ≤ 100% of the accelerator's peak)")
def check(ev: RunEvidence, ctx: GateContext) -> GateResult:
    """Achieved FLOP/s = total_flos / runtime, or 6 × parameters × tokens/s; compare with the peak."""
    final = ev.final_record
    if final is None or not final.values.get("train_runtime"):
        return R("skip", "no runtime recorded (no final trainer record): nothing to check")
    if hardware(ev) is None:
        return R("skip", "hardware unknown (no GPU snapshot, no GPU in the environment snapshot): cannot bound "
                 "throughput")
    flops = model_flops(ev)
    if flops is None:
        return R("skip", "neither total_flos nor parameters × tokens/s are recorded: cannot compute model FLOPs")
    hw, mfu = flops.hardware, flops.mfu
    assert hw is not None and mfu is not None
    detail = (f"{flops.achieved / 1e12:.2f} TFLOP/s achieved ({flops.how}) on {hw.devices} × {hw.name} "
              f"(peak {hw.peak_tflops:g} TFLOP/s each): MFU {mfu:.1%}")
    if mfu > 1.0:
        return R("fail", f"physically impossible: {detail} exceeds 100% — a smaller model than declared, a wrong "
                 "runtime or wrong hardware", ref(*flops.where), ref(*hw.where))
    return R("pass", detail, ref(*flops.where), ref(*hw.where))
