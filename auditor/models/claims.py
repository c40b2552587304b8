"""Figures that a summary or manifest claims, to be checked against the evidence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(kw_only=True)
class Claim:
    """One claimed figure: `| Total Steps | 138 (1 epoch) |` becomes key=total_steps, value=138."""

    __pydantic_config__: ClassVar[dict[str, str]] = {"extra": "forbid"}

    key: str
    label: str
    text: str
    value: float | None = None
    decimals: int = 0
    approximate: bool = False
    unit: str | None = None
    # half a unit of the last written digit, in the evidence's units, where the figure was scaled ("1.2k",
    # "3.4 min", "1h 02m"); None: 0.5 × 10^-decimals
    tolerance: float | None = None
    path: str
    line: int


@dataclass(kw_only=True)
class LossRow:
    """A row of a claimed loss curve: step (or epoch) and loss, as displayed."""

    __pydantic_config__: ClassVar[dict[str, str]] = {"extra": "forbid"}

    step: int | None = None
    epoch: float | None = None
    epoch_decimals: int = 0
    loss: float
    loss_decimals: int
    final: bool = False
    path: str
    line: int
