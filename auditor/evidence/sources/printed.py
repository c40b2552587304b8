"""Training progress printed into a log, in the shapes people print it. Each shape is a named rule; a log is read
by the rule that finds most loss points in it, and the series names that rule. `--metrics-regex` on `audit run`
covers the rest. HF Trainer's printed dicts (`{'loss': 2.3, 'epoch': 0.5}`) carry no step: RunEvidence infers it
from the planned total."""

from __future__ import annotations

import re
from dataclasses import dataclass

from auditor.evidence.logscan import LOG_PATTERNS
from auditor.evidence.metrics import MetricsSeries, read_log_dicts
from auditor.evidence.opener import Folder
from auditor.evidence.sources.interface import FormatInfo, MetricsSource, name_matches
from auditor.evidence.sources.registry import register

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf(?:inity)?)\b"
# training loss, not val_loss / eval loss: "loss", "train_loss", "train loss", "training loss", "train/loss"
_NOT_EVAL = r"(?<![A-Za-z_/])(?<!eval )(?<!val )(?<!test )(?<!validation )"
_LOSS = rf"{_NOT_EVAL}(?:train(?:ing)?[_ /]?)?loss(?![A-Za-z_/])\s*[:=]?\s*(?P<loss>{_NUM})"
_GAP = r"[^\n]*?"


@dataclass(frozen=True)
class Rule:
    """One printed shape: its name (shown in messages), an example line, and the regex with named groups
    step, loss and optionally total."""

    name: str
    example: str
    pattern: re.Pattern[str]


RULES = (
    Rule("step_of_total", "Step 10/100 | loss: 2.3",
         re.compile(rf"\bstep\s*[:=#]?\s*(?P<step>\d+)\s*/\s*(?P<total>\d+){_GAP}{_LOSS}", re.I)),
    Rule("bracket_of_total", "[10/100] loss=2.3",
         re.compile(rf"\[\s*(?P<step>\d+)\s*/\s*(?P<total>\d+)\s*\]{_GAP}{_LOSS}", re.I)),
    Rule("tqdm_postfix", "45/100 [00:01<00:02, 30.1it/s, loss=2.3]",
         re.compile(rf"(?<![\d/])(?P<step>\d+)/(?P<total>\d+) \[[^\]\n]*?\bloss=(?P<loss>{_NUM})", re.I)),
    Rule("step_loss", "epoch 0 step 200 loss 0.0062",
         re.compile(rf"\bstep\s*[:=#]?\s*(?P<step>\d+)\b(?!\s*/){_GAP}{_LOSS}", re.I)),
    Rule("iteration_loss", "it 10: loss 2.3",
         re.compile(rf"\b(?:it|iter|iteration)\s*[:=#]?\s*(?P<step>\d+)\b(?!\s*/){_GAP}{_LOSS}", re.I)),
)
# Only "Step n/N" states the run's total; a bracket or tqdm total is often the batches of one epoch.
PLANNING_RULES = frozenset({"step_of_total"})
_EPOCH = re.compile(r"\bepoch\s*[:=#]?\s*(?P<epoch>\d+(?:\.\d+)?)\b", re.I)
_HAS_LOSS = re.compile(r"loss", re.I)
# Lightning says where fit stopped: "`Trainer.fit` stopped: `max_steps=120` reached." (a plan, in its words)
_LIGHTNING_STOP = re.compile(r"`Trainer\.fit` stopped: `max_(?P<what>steps|epochs)=(?P<n>\d+)` reached")


def read_printed(lines: tuple[str, ...], rel: str) -> list[MetricsSeries]:
    """The loss points of each rule that matched a log (HF dicts first); empty series are dropped."""
    found: list[MetricsSeries] = []
    hf = read_log_dicts(lines, rel, None)
    if hf.records:
        hf.rule = "hf_dict"
        found.append(hf)
    by_rule = {rule.name: MetricsSeries(path=rel, kind="printed", rule=rule.name) for rule in RULES}
    plan: dict[str, float] = {}
    for number, line in enumerate(lines, start=1):
        stop = _LIGHTNING_STOP.search(line) if "`Trainer.fit`" in line else None
        if stop and len(stop.group("n")) <= 18:
            plan["max_steps" if stop.group("what") == "steps" else "num_epochs"] = int(stop.group("n"))
        if not _HAS_LOSS.search(line):
            continue
        epoch = _EPOCH.search(line)
        for rule in RULES:
            matched = False
            for match in rule.pattern.finditer(line):
                if len(match.group("step")) > 18 or len(match.groupdict().get("total") or "") > 18:
                    by_rule[rule.name]._bad(number, "a step count beyond a 64-bit counter")
                    continue
                record: dict[str, object] = {"step": int(match.group("step")), "loss": match.group("loss")}
                if epoch:
                    record["epoch"] = epoch.group("epoch")
                by_rule[rule.name].add(record, number)
                matched = True
                if rule.name in PLANNING_RULES:
                    by_rule[rule.name].plan_max_steps = int(match.group("total"))
            if matched:
                break  # a line read by a more specific rule is not read again by the general ones
    printed = [s for s in by_rule.values() if s.count]
    if printed:
        best = max(printed, key=lambda s: s.count)
        if best.plan_max_steps:
            best.plan.setdefault("max_steps", best.plan_max_steps)
        found.append(best)
    for series in found:
        series.plan.update({k: v for k, v in plan.items() if k not in series.plan})
    if plan and not found:
        marker = MetricsSeries(path=rel, kind="printed", rule="lightning_stop")
        marker.plan.update(plan)
        found.append(marker)
    return found


@register
class PrintedProgress(MetricsSource):
    """Loss points printed into training logs."""

    info = FormatInfo(
        id="printed_progress", kind="metrics", title="Printed progress in logs",
        looks_for=LOG_PATTERNS,
        reads="loss points printed by the training, by named rules: " + "; ".join(
            f"{r.name} (`{r.example}`)" for r in RULES) + "; hf_dict (`{'loss': 2.3, 'epoch': 0.5}`); and "
            "Lightning's `max_steps=N` reached line as the plan",
        proves="the loss curve as printed (at its printed precision) and, with a total, the planned step count; "
               "a printed figure proves less than a structured log: prefer metrics.jsonl, TensorBoard or CSV",
    )

    def claims(self, rel: str, head: bytes) -> bool:
        name = rel.rsplit("/", 1)[-1].lower()
        return name_matches(name, LOG_PATTERNS) and not name.startswith("result_")

    def read(self, folder: Folder, rel: str) -> list[MetricsSeries]:
        doc = folder.text(rel)
        return read_printed(doc.lines, rel) if doc is not None else []
