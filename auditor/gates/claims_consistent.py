"""claims_consistent: every figure claimed in the manifest or a summary matches what verify recomputes."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

from auditor.evidence.metrics import FinalRecord, MetricsSeries
from auditor.evidence.run import RunEvidence
from auditor.evidence.support import unsupported_claims
from auditor.gates.base import GateContext, Results, gate, ref, where
from auditor.models import Claim, EvidenceRef, GateResult, LossRow

if TYPE_CHECKING:
    from auditor.evidence.claims import SummaryClaims

R = Results("claims_consistent")
FINAL_FIELDS = {
    "runtime_seconds": "train_runtime",
    "samples_per_second": "train_samples_per_second",
    "steps_per_second": "train_steps_per_second",
    "tokens_per_second": "train_tokens_per_second",
    "mean_train_loss": "train_loss",
}
CROSS_CHECK = ("train_runtime", "train_samples_per_second", "train_loss")
PLAN_KEYS = ("batch_size", "gradient_accumulation_steps", "max_steps")


def matches(claimed: float, actual: float, decimals: int, approximate: bool = False,
            tolerance: float | None = None) -> bool:
    """Does `actual` round to the displayed `claimed` (half a unit of the last shown digit, or `tolerance` where
    the figure was scaled: "1.2k", "3.4 min")? An approximate figure ("≈", "~") may also be 5% off."""
    half = tolerance if tolerance is not None else 0.5 * 10 ** -decimals
    if approximate:
        return abs(claimed - actual) <= max(0.05 * abs(actual), half)
    return abs(claimed - actual) <= half + 1e-9 * max(1.0, abs(actual))


def is_eval_loss(name: str) -> bool:
    """An evaluation metric that is a loss: eval_loss, val/loss, Loss/val, validation_loss (not test_loss)."""
    words = set(re.split(r"[^a-z]+", name.lower()))
    return "loss" in words and bool(words & {"eval", "val", "valid", "validation", "evaluation"})


class _Audit:
    def __init__(self, ev: RunEvidence) -> None:
        self.ev = ev
        self.series = ev.metrics
        self.final: FinalRecord | None = ev.final_record
        self.failures: list[tuple[str, EvidenceRef]] = []
        self.warnings: list[tuple[str, EvidenceRef]] = []
        self.checked = 0
        self._at_step: dict[int, list[int]] = {}
        self._near_epoch: dict[int, dict[int, list[int]]] = {}

    def _fail(self, claim_where: str, text: str, pointer: EvidenceRef) -> None:
        self.failures.append((f"{claim_where}: {text}", pointer))

    def _evidence(self, claim: Claim) -> list[tuple[float, str]]:
        """What the evidence records for a claimed figure: (value, where it comes from), any of which may match."""
        final = self.final.values if self.final else {}
        origin = where(self.final.path, self.final.line) if self.final else ""
        ev = self.ev
        if claim.key == "total_steps":
            return [(float(ev.evidence_max_step), "the furthest step recorded")] \
                if ev.evidence_max_step is not None else []
        if claim.key in FINAL_FIELDS and FINAL_FIELDS[claim.key] in final:
            return [(final[FINAL_FIELDS[claim.key]], f"{FINAL_FIELDS[claim.key]} in {origin}")]
        if claim.key == "total_tflos" and "total_flos" in final:
            return [(final["total_flos"] / 1e12, "total_flos / 1e12")]
        if claim.key == "eval_examples" and ev.predictions is not None:
            return [(float(ev.predictions.count), "lines in predictions.jsonl")]
        if claim.key == "epochs" and "epoch" in final:
            return [(final["epoch"], "the final record's epoch")]
        if claim.key in PLAN_KEYS:
            planned = getattr(ev.plan, claim.key)
            return [(float(planned), f"{claim.key} in {ev.plan.source.get(claim.key)}")] if planned is not None else []
        if claim.key == "eval_loss":  # the evaluation's loss, never the training loss
            found = [(final["eval_loss"], f"eval_loss in {origin}")] if "eval_loss" in final else []
            return found + [(value, f"{name} in {s.path} (its last value)") for s in ev.metrics_sources
                            for name, value in s.evals.items() if is_eval_loss(name)]
        if claim.key == "num_parameters":
            from auditor.evidence.throughput import parameter_count

            counted = parameter_count(ev)
            return [(float(counted[0]), counted[1])] if counted else []
        return []

    def figure(self, claim: Claim) -> None:
        """Check one claimed figure against what the evidence computes."""
        if claim.value is None:
            return
        if claim.key in ("final_loss", "first_loss") and self.series is not None and self.series.count:
            self.loss_claim(claim)
            return
        recorded = [(a, s) for a, s in self._evidence(claim) if math.isfinite(a)]
        if not recorded:
            return
        from auditor.evidence.claims import decimals_of  # the parser is imported only where claims exist

        self.checked += 1
        for actual, _ in recorded:
            # A printed log rounds its figures: compare at the coarser of the two displayed precisions.
            shown = min(claim.decimals, decimals_of(repr(actual)))
            own = 0.5 * 10 ** -decimals_of(repr(actual))
            tolerance = None if claim.tolerance is None else max(claim.tolerance, own)
            if matches(claim.value, actual, shown, claim.approximate, tolerance):
                return
        actual, source = recorded[0]
        self._fail(where(claim.path, claim.line), f"'{claim.label}' claims {claim.text!r}, evidence says "
                   f"{actual:g} ({source})", ref(claim.path, claim.line))

    def summary(self, summary: SummaryClaims) -> None:
        """A summary's figures and loss rows in line order; a summary left as a template, or a claimed figure
        left as a placeholder, claims what no evidence can back."""
        template = self.ev.templates.get(summary.path)
        if template is not None:
            why, line = template
            self._fail(where(summary.path, line), f"the summary is a template ({why}): its claims are not figures "
                       "from the run; fill it from the evidence (`audit summary`)", ref(summary.path, line))
        items: list[tuple[int, Claim | LossRow | tuple[str, str, int]]] = [
            *((c.line, c) for c in summary.figures), *((r.line, r) for r in summary.loss_rows),
            *((p[2], p) for p in summary.placeholders)]
        for _, item in sorted(items, key=lambda pair: pair[0]):
            if isinstance(item, Claim):
                self.figure(item)
            elif isinstance(item, LossRow):
                self.loss_row(item)
            else:
                label, text, line = item
                self._fail(where(summary.path, line), f"'{label}' holds placeholder text {text!r} where a figure "
                           "from the run belongs", ref(summary.path, line))

    def loss_claim(self, claim: Claim) -> None:
        """First/final loss: the logged value, or for final the trainer's run-average train_loss (warn)."""
        assert self.series is not None and claim.value is not None
        self.checked += 1
        index = 0 if claim.key == "first_loss" else self.series.count - 1
        logged = self.series.losses[index]
        at = where(claim.path, claim.line)
        if matches(claim.value, logged, claim.decimals, claim.approximate, claim.tolerance):
            return
        average = self.final.values.get("train_loss") if self.final else None
        if claim.key == "final_loss" and average is not None and \
                matches(claim.value, average, claim.decimals, claim.approximate, claim.tolerance):
            self.warnings.append((f"{at}: '{claim.label}' {claim.value:g} is the run-average train_loss "
                                  f"({average:.4g}), not the last logged loss ({logged:.4g}); label it as the average",
                                  ref(claim.path, claim.line)))
            return
        which = "first" if claim.key == "first_loss" else "last"
        self._fail(at, f"'{claim.label}' claims {claim.value:g}, the {which} logged loss is {logged:.4g} "
                   f"({where(self.series.path, self.series.line_of(index))})", ref(claim.path, claim.line))

    def index_rows(self, rows: list[LossRow]) -> None:
        """Where each claimed row's step (or epoch, at its displayed precision) was logged: one pass over the
        series for all rows, so a 15-row table over a million points costs one scan, not fifteen."""
        series = self.series
        if series is None or not rows:
            return
        steps = {row.step for row in rows if row.step is not None}
        if steps:
            for i, step in enumerate(series.steps):
                if step in steps:
                    self._at_step.setdefault(step, []).append(i)
        wanted: dict[int, set[int]] = {}
        for row in rows:
            if row.step is None and row.epoch is not None and math.isfinite(row.epoch):
                key = round(row.epoch * 10 ** row.epoch_decimals)
                wanted.setdefault(row.epoch_decimals, set()).update((key - 1, key, key + 1))
        for decimals, keys in wanted.items():
            scale, index = 10 ** decimals, self._near_epoch.setdefault(decimals, {})
            for i, epoch in enumerate(series.epochs):
                if math.isfinite(epoch) and (key := round(epoch * scale)) in keys:
                    for near in (key - 1, key, key + 1):  # a row's value may round to a neighbouring key
                        index.setdefault(near, []).append(i)

    def loss_row(self, row: LossRow) -> None:
        """One row of a claimed loss curve against the logged loss at that step (or epoch)."""
        series = self.series
        if series is None or not series.count:
            return
        at = where(row.path, row.line)
        if row.final:
            self.loss_claim(Claim(key="final_loss", label="Final", text=str(row.loss), value=row.loss,
                                  decimals=row.loss_decimals, path=row.path, line=row.line))
            return
        if row.step is not None:
            candidates = self._at_step.get(row.step, [])
        else:
            epoch = row.epoch if row.epoch is not None else math.nan
            near = self._near_epoch.get(row.epoch_decimals, {}).get(round(epoch * 10 ** row.epoch_decimals), []) \
                if math.isfinite(epoch) else []
            candidates = [i for i in near if matches(epoch, series.epochs[i], row.epoch_decimals)]
        self.checked += 1
        if not candidates:
            key = f"step {row.step}" if row.step is not None else f"epoch {row.epoch:g}"
            self._fail(at, f"claims loss {row.loss:g} at {key}, but no loss was logged there ({series.path})",
                       ref(row.path, row.line))
            return
        if not any(matches(row.loss, series.losses[i], row.loss_decimals) for i in candidates):
            i = candidates[0]
            key = f"step {row.step}" if row.step is not None else f"epoch {row.epoch:g}"
            self._fail(at, f"claims loss {row.loss:g} at {key}, logged loss is {series.losses[i]:.4g} "
                       f"({where(series.path, series.line_of(i))})", ref(row.path, row.line))

    def cross_check_finals(self) -> None:
        """Final records from different files must agree: else the evidence comes from different runs."""
        finals = self.ev.final_records
        if len(finals) < 2:
            return
        from auditor.evidence.claims import decimals_of

        for other in finals[1:]:
            first = finals[0]
            for key in CROSS_CHECK:
                a, b = first.values.get(key), other.values.get(key)
                if a is None or b is None:
                    continue
                self.checked += 1
                shown = min(decimals_of(repr(a)), decimals_of(repr(b)))  # printed logs round their figures
                if not matches(a, b, shown):
                    self.failures.append((
                        f"{key} is {a:g} in {where(first.path, first.line)} but {b:g} in "
                        f"{where(other.path, other.line)}: the files come from different runs",
                        ref(other.path, other.line)))
                    return


def _step_index(series: MetricsSeries) -> dict[int, int] | None:
    """step → index of its loss point, None when steps are unknown, inferred or repeat (nothing to align)."""
    if series.steps_inferred or not series.count:
        return None
    index: dict[int, int] = {}
    for i, step in enumerate(series.steps):
        if step < 0 or step in index:
            return None
        index[step] = i
    return index


def same_loss(a: float, b: float) -> bool:
    """Two sources' losses for one step agree: at the coarser displayed precision, or within float32 rounding
    (TensorBoard stores float32; a CSV or JSON log the double)."""
    from auditor.evidence.claims import decimals_of

    if a == b or abs(a - b) <= 1e-6 * max(abs(a), abs(b)):
        return True
    return matches(a, b, min(decimals_of(repr(a)), decimals_of(repr(b))))


def cross_check_series(ev: RunEvidence) -> tuple[int, list[tuple[str, EvidenceRef]]]:
    """Every pair of metrics sources that logged the same steps must log the same losses there: else the files
    come from different runs (or one was edited). Returns how many pairs of sources shared steps, and the
    mismatches."""
    indexed = [(s, idx) for s in ev.metrics_sources if (idx := _step_index(s)) is not None]
    compared, found = 0, []
    for i, (a, a_index) in enumerate(indexed):
        for b, b_index in indexed[i + 1:]:
            if a.kind == b.kind and a.run != b.run:
                continue  # independent runs of one format in one folder (MLPerf result_N.txt, MLflow runs)
            small, small_index, large = (a, a_index, b) if len(a_index) <= len(b_index) else (b, b_index, a)
            large_index = b_index if large is b else a_index
            mismatches = []
            shared = 0
            for step, k in small_index.items():
                j = large_index.get(step)
                if j is None:
                    continue
                shared += 1
                x, y = small.losses[k], large.losses[j]
                if x == x and y == y and not same_loss(x, y):  # NaN is loss_decreased's finding
                    mismatches.append((step, k, j))
            compared += shared > 0
            if mismatches:
                step, k, j = mismatches[0]
                more = f" (+{len(mismatches) - 1} more step(s))" if len(mismatches) > 1 else ""
                found.append((f"step {step} is logged with loss {small.losses[k]:.6g} in {small.at(small.line_of(k))} "
                              f"but {large.losses[j]:.6g} in {large.at(large.line_of(j))}{more}: the sources disagree "
                              "(different runs, or an edited log)",
                              ref(small.path, small.line_of(k) if small.position == "line" else None)))
    return compared, found


@gate("claims_consistent", "every figure claimed in the manifest or summary matches what verify recomputes")
def check(ev: RunEvidence, ctx: GateContext) -> GateResult:
    """Recompute every claimed figure; a figure matches within its displayed precision."""
    audit = _Audit(ev)
    audit.index_rows([row for summary in ev.summaries for row in summary.loss_rows])
    for summary in ev.summaries:
        audit.summary(summary)
    manifest = ev.run_manifest
    if manifest is not None:
        for key, value in manifest.claims.items():
            audit.figure(Claim(key=key, label=key, text=f"{value:g}", value=value, decimals=6,
                               path="run_manifest.json", line=1))
    audit.cross_check_finals()
    compared, disagreements = cross_check_series(ev)
    audit.checked += compared
    audit.failures.extend(disagreements)
    if audit.failures:
        first = audit.failures[0][0]
        more = f" (+{len(audit.failures) - 1} more mismatch(es))" if len(audit.failures) > 1 else ""
        return R("fail", first + more, *[p for _, p in audit.failures[:10]])
    for field_name, value, why in unsupported_claims(ev):  # what the manifest says the run was, unsupported
        audit.warnings.append((f"run_manifest.json declares {field_name} {value!r}, but nothing in the evidence "
                               f"supports it: {why}", ref("run_manifest.json", note=field_name)))
    if audit.warnings:
        more = f" (+{len(audit.warnings) - 1} more)" if len(audit.warnings) > 1 else ""
        return R("warn", audit.warnings[0][0] + more, *[p for _, p in audit.warnings[:10]])
    if audit.checked == 0:
        return R("skip", "no claimed figures found to check (no summary tables, no manifest claims)")
    return R("pass", f"{audit.checked} claimed figure(s) match the evidence within their displayed precision")
