"""What a run set out to do: the plan that gates compare the evidence against."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Plan(BaseModel):
    """The planned run. Every field is optional: seed-style folders declare only some."""

    model_config = ConfigDict(extra="forbid")

    max_steps: int | None = Field(None, ge=0, description="planned optimizer steps")
    num_epochs: float | None = Field(None, ge=0)
    device: str | None = Field(None, description="cpu, cuda, gpu or tpu")
    batch_size: int | None = Field(None, ge=1, description="per-device batch size")
    gradient_accumulation_steps: int | None = Field(None, ge=1)
    max_seq_length: int | None = Field(None, ge=1)
    dtype: str | None = None
    optimizer: str | None = None
    eval_examples: int | None = Field(None, ge=0)
    model_name: str | None = None
    num_parameters: int | None = Field(None, ge=0, description="declared parameter count")
    architecture: dict[str, int | float | str | bool | None] = Field(
        default_factory=dict, description="declared architecture, HuggingFace config.json key names"
    )
    source: dict[str, str] = Field(
        default_factory=dict, description="for each field, the file it was read from (path or path:line)"
    )
