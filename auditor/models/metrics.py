"""One logged training record, the shape of a metrics.jsonl line (HF `on_log` shape accepted)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar


@dataclass(kw_only=True)
class MetricsRecord:
    """One line of training_output/metrics.jsonl. Extra keys are kept; NaN/Infinity literals are accepted
    by the reader and flagged by the gates."""

    __pydantic_config__: ClassVar[dict[str, str]] = {"extra": "allow"}

    step: int | None = field(default=None, metadata={"ge": 0})
    loss: float | None = None
    epoch: float | None = None
    learning_rate: float | None = None
    grad_norm: float | None = None
    timestamp: str | None = None
    train_runtime: float | None = field(default=None, metadata={"description": "seconds; present in the final record"})
    train_samples_per_second: float | None = None
    train_steps_per_second: float | None = None
    train_loss: float | None = field(
        default=None, metadata={"description": "the trainer's run-average loss (final record)"}
    )
    total_flos: float | None = None
