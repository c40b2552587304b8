"""loss_decreased: finite losses that fell robustly (windowed means, not first vs last point)."""

from __future__ import annotations

import math

from auditor.evidence.run import RunEvidence
from auditor.gates.base import GateContext, Results, gate, ref, where
from auditor.models import GateResult

R = Results("loss_decreased")
OVERFLOW_SHARE = 0.05  # non-finite grad_norm steps a loss scaler may skip (fp16 overflows) before it is divergence


@gate("loss_decreased", "finite losses that decreased robustly (windowed, not first-vs-last point)")
def check(ev: RunEvidence, ctx: GateContext) -> GateResult:
    """Mean of the first window vs mean of the last window of logged losses; any NaN/inf fails."""
    series = ev.metrics
    judged = [s for s in ev.metrics_sources if "reached_target" in s.facts]
    if (series is None or series.count == 0) and judged:
        reached = sum(s.facts["reached_target"] == "true" for s in judged)
        return R("skip", f"no training loss logged; the run's quality is its evaluation target instead: {reached} of "
                 f"{len(judged)} run(s) reached it (training_completed judges that)", ref(judged[0].path))
    if series is None or series.count == 0:
        return R("fail", "no training loss was recorded (metrics.jsonl, trainer_state.json or log dicts): "
                 "nothing shows that the model learned")
    diverged = next((s for s in ev.metrics_sources if s.nonfinite_count), None)  # any source, not only the chosen
    if diverged is not None:
        line, step, value = diverged.nonfinite[0]
        at = f"step {step}" if step >= 0 else "a record"
        return R("fail", f"{diverged.nonfinite_count} non-finite loss value(s); first: {value} at {at} "
                 f"({diverged.at(line)}): training diverged", ref(diverged.path, line))
    overflowed = [s for s in ev.metrics_sources if s.grad_nonfinite_count]
    tolerated = [s for s in overflowed if s.grad_last_finite
                 and s.grad_nonfinite_count <= max(1, s.grad_count * OVERFLOW_SHARE)]
    if overflowed and len(tolerated) < len(overflowed):
        bad = next(s for s in overflowed if s not in tolerated)
        line, value = bad.grad_nonfinite[0]
        nan_filter = ev.env_fact("logging_nan_inf_filter")
        why = (f"logging_nan_inf_filter is on ({where(nan_filter[1], nan_filter[2])}), so the logged losses hide it"
               if nan_filter and nan_filter[0].lower() in ("true", "1") else
               "HF's logging_nan_inf_filter can hide NaN losses")
        tail = "the last logged grad_norm is non-finite" if not bad.grad_last_finite else (
            f"{bad.grad_nonfinite_count} of {bad.grad_count} steps")
        return R("fail", f"{bad.grad_nonfinite_count} non-finite grad_norm value(s); first: {value} at "
                 f"{bad.at(line)}: training diverged ({tail}; {why})", ref(bad.path, line))
    recovered = ""
    if tolerated:
        first = tolerated[0]
        recovered = (f"; tolerated {sum(s.grad_nonfinite_count for s in tolerated)} non-finite grad_norm step(s) "
                     f"(first {first.at(first.grad_nonfinite[0][0])}), each followed by finite gradients and finite "
                     "losses: fp16 loss-scale overflows the optimizer skipped")
    n = series.count
    if n < 2:
        return R("warn", f"only one loss value logged ({series.losses[0]:g}): a decrease cannot be shown",
                 ref(series.path, series.line_of(0)))
    window = max(1, math.ceil(n * ctx.options.loss_window))
    first = sum(series.losses[:window]) / window
    last = sum(series.losses[n - window:]) / window
    drop = (first - last) / abs(first) if first else 0.0
    where_first, where_last = ref(series.path, series.line_of(0)), ref(series.path, series.line_of(n - 1))
    pct = int(ctx.options.loss_window * 100)
    if drop < ctx.options.min_loss_drop:
        trend = "rose" if last > first else "stayed flat"
        return R("fail", f"loss {trend}: mean of first {window} of {n} values {first:.4g} → mean of last {window} "
                 f"{last:.4g} ({-drop:+.1%}); expected a drop of at least {ctx.options.min_loss_drop:.0%} "
                 f"(windows of {pct}%)", where_first, where_last)
    return R("warn" if recovered else "pass", f"loss fell {drop:.0%}: mean of first {window} of {n} values "
             f"{first:.4g} → last {window} {last:.4g}{recovered}", where_first, where_last)
