"""loss_decreased: finite losses that fell robustly (windowed means, not first vs last point)."""

from __future__ import annotations

import math

from auditor.evidence.run import RunEvidence
from auditor.gates.base import GateContext, Results, gate, ref, where
from auditor.models import GateResult

R = Results("loss_decreased")


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
    if series.nonfinite_count:
        line, step, value = series.nonfinite[0]
        at = f"step {step}" if step >= 0 else "a record"
        return R("fail", f"{series.nonfinite_count} non-finite loss value(s); first: {value} at {at} "
                 f"({where(series.path, line)}): training diverged", ref(series.path, line))
    if series.grad_nonfinite_count:
        line, value = series.grad_nonfinite[0]
        nan_filter = ev.env_fact("logging_nan_inf_filter")
        why = (f"logging_nan_inf_filter is on ({where(nan_filter[1], nan_filter[2])}), so the logged losses hide it"
               if nan_filter and nan_filter[0].lower() in ("true", "1") else
               "HF's logging_nan_inf_filter can hide NaN losses")
        return R("fail", f"{series.grad_nonfinite_count} non-finite grad_norm value(s); first: {value} at "
                 f"{where(series.path, line)}: training diverged ({why})", ref(series.path, line))
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
    return R("pass", f"loss fell {drop:.0%}: mean of first {window} of {n} values {first:.4g} → last {window} "
             f"{last:.4g}", where_first, where_last)
