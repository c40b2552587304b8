"""evaluation_ran: predictions exist, each line a JSON object with a non-empty prediction, count matches."""

from __future__ import annotations

from auditor.evidence.run import RunEvidence
from auditor.gates.base import GateContext, Results, gate, ref, where
from auditor.models import EvidenceRef, GateResult

R = Results("evaluation_ran")


def expected_count(ev: RunEvidence) -> tuple[int, EvidenceRef] | None:
    """Planned or claimed number of evaluation examples, with where it is declared."""
    if ev.plan.eval_examples is not None:
        return ev.plan.eval_examples, ref(ev.plan.source.get("eval_examples", "plan"))
    for summary in ev.summaries:
        for claim in summary.figures:
            if claim.key == "eval_examples" and claim.value is not None:
                return int(claim.value), ref(claim.path, claim.line)
    return None


@gate("evaluation_ran", "predictions exist, every line is a JSON object with a non-empty prediction, count "
      "matches plan/claims")
def check(ev: RunEvidence, ctx: GateContext) -> GateResult:
    """Stream predictions.jsonl and compare its count with the plan or claims."""
    preds = ev.predictions
    expected = expected_count(ev)
    claimed = any("evaluation_ran" in s.gate_claims for s in ev.summaries)
    recorded = [s for s in ev.metrics_sources if s.eval_count]
    if preds is None and recorded:
        first = recorded[0]
        figures = ", ".join(f"{k} {v:.6g}" for k, v in list(first.evals.items())[:3])
        done = f"{sum(s.eval_count for s in recorded)} evaluation figure(s) recorded ({first.path}: last {figures})"
        if expected is not None:
            return R("warn", f"{done}, but no predictions.jsonl to count the {expected[0]} example(s) planned "
                     f"({where(expected[1].path, expected[1].line)})", ref(first.path), expected[1])
        return R("pass", f"{done}; no predictions.jsonl, so the examples themselves are not checked", ref(first.path))
    if preds is None:
        if expected is None and not claimed:
            return R("skip", "no evaluation planned or claimed, and no predictions.jsonl")
        where_from = where(expected[1].path, expected[1].line) if expected else "a summary's gate table"
        return R("fail", f"evaluation planned or claimed ({where_from}) but predictions.jsonl is missing",
                 *( [expected[1]] if expected else []))
    if preds.count == 0:
        return R("fail", "predictions.jsonl is empty", ref(preds.path))
    if preds.problem_count:
        line, why = preds.problems[0]
        return R("fail", f"{preds.problem_count} of {preds.count} predictions are unusable; first at "
                 f"{where(preds.path, line)}: {why}", ref(preds.path, line))
    # examples are counted once however many predictions repeat them (identity: an id field, else the input)
    repeats = preds.count - preds.distinct
    counted = (f"{preds.count} predictions" if not repeats else
               f"{preds.count} predictions, {preds.distinct} distinct example(s) (by {preds.identified_by})")
    if expected is not None and preds.distinct != expected[0]:
        return R("fail", f"{counted}, but {expected[0]} expected ({where(expected[1].path, expected[1].line)})",
                 ref(preds.path, preds.first_repeat), expected[1])
    if expected is not None:
        return R("pass", f"{counted}, each with a non-empty text, as expected "
                 f"({where(expected[1].path, expected[1].line)})", ref(preds.path))
    if repeats:
        return R("warn", f"{counted}: {repeats} line(s) repeat an earlier example, first at "
                 f"{where(preds.path, preds.first_repeat)}; declare `eval.num_examples` so the distinct count is "
                 "checked", ref(preds.path, preds.first_repeat))
    return R("pass", f"{counted}, each with a non-empty text", ref(preds.path))
