"""What a run set out to do: the plan that gates compare the evidence against."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar


@dataclass(kw_only=True)
class Plan:
    """The planned run. Every field is optional: seed-style folders declare only some."""

    __pydantic_config__: ClassVar[dict[str, str]] = {"extra": "forbid"}

    max_steps: int | None = field(default=None, metadata={"ge": 0, "description": "planned optimizer steps"})
    num_epochs: float | None = field(default=None, metadata={"ge": 0})
    device: str | None = field(default=None, metadata={"description": "cpu, cuda, gpu or tpu"})
    batch_size: int | None = field(default=None, metadata={"ge": 1, "description": "per-device batch size"})
    gradient_accumulation_steps: int | None = field(default=None, metadata={"ge": 1})
    max_seq_length: int | None = field(default=None, metadata={"ge": 1})
    dtype: str | None = None
    optimizer: str | None = None
    eval_examples: int | None = field(default=None, metadata={"ge": 0})
    model_name: str | None = None
    num_parameters: int | None = field(default=None, metadata={"ge": 0, "description": "declared parameter count"})
    architecture: dict[str, int | float | str | bool | None] = field(
        default_factory=dict, metadata={"description": "declared architecture, HuggingFace config.json key names"}
    )
    source: dict[str, str] = field(
        default_factory=dict, metadata={"description": "for each field, the file it was read from (path or path:line)"}
    )
