"""HF Trainer's trainer_state.json: the `log_history` of a checkpoint and its `max_steps`."""

from __future__ import annotations

import re

from auditor.evidence.metrics import MetricsSeries, read_trainer_state
from auditor.evidence.opener import Folder
from auditor.evidence.sources.interface import FormatInfo, MetricsSource
from auditor.evidence.sources.registry import register

_CHECKPOINT_STEP = re.compile(r"checkpoint-(\d+)/trainer_state\.json$")


@register
class TrainerState(MetricsSource):
    """The newest trainer_state.json (each checkpoint's holds the history up to it)."""

    info = FormatInfo(
        id="hf_trainer_state", kind="metrics", title="HF Trainer trainer_state.json",
        looks_for=("trainer_state.json",),
        reads="log_history (loss, learning rate, epoch and eval records), global_step and max_steps of the newest "
              "checkpoint-N/trainer_state.json (else training_output/trainer_state.json)",
        proves="the loss curve up to that checkpoint and the planned step count (max_steps is a plan)",
    )

    def select(self, claimed: list[str]) -> list[str]:
        numbered = [(int(m.group(1)), rel) for rel in claimed if (m := _CHECKPOINT_STEP.search(rel))]
        if numbered:
            return [max(numbered)[1]]
        return [min(claimed, key=lambda rel: (rel.count("/"), rel))] if claimed else []

    def read(self, folder: Folder, rel: str) -> list[MetricsSeries]:
        problem = folder.unreadable(rel)  # a regular file inside the folder, or nothing is read
        if problem:
            series = MetricsSeries(path=rel, kind="trainer_state")
            series._bad(1, problem)
            return [series]
        series, max_steps = read_trainer_state(folder.root / rel, rel)
        if max_steps:
            series.plan["max_steps"] = max_steps
        return [series]
