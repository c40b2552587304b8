"""One logged training record, the shape of a metrics.jsonl line (HF `on_log` shape accepted)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MetricsRecord(BaseModel):
    """One line of training_output/metrics.jsonl. Extra keys are kept; NaN/Infinity literals are accepted
    by the reader and flagged by the gates."""

    model_config = ConfigDict(extra="allow")

    step: int | None = Field(None, ge=0)
    loss: float | None = None
    epoch: float | None = None
    learning_rate: float | None = None
    grad_norm: float | None = None
    timestamp: str | None = None
    train_runtime: float | None = Field(None, description="seconds; present in the final record")
    train_samples_per_second: float | None = None
    train_steps_per_second: float | None = None
    train_loss: float | None = Field(None, description="the trainer's run-average loss (final record)")
    total_flos: float | None = None
