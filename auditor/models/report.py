"""Gate results and the verify report (schemas/verify_report.schema.json)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

GateStatus = Literal["pass", "fail", "warn", "skip"]
Verdict = Literal["pass", "warn", "fail"]


@dataclass(kw_only=True)
class EvidenceRef:
    """Where a gate looked: a path relative to the run folder and, for text, a 1-based line."""

    __pydantic_config__: ClassVar[dict[str, str]] = {"extra": "forbid"}

    path: str
    line: int | None = field(default=None, metadata={"ge": 1})
    note: str | None = None


@dataclass(kw_only=True)
class GateResult:
    """One gate's finding for one run folder."""

    __pydantic_config__: ClassVar[dict[str, str]] = {"extra": "forbid"}

    id: str
    status: GateStatus
    message: str
    evidence: list[EvidenceRef] = field(default_factory=list)


@dataclass(kw_only=True)
class RunReport:
    """All gate results for one folder and the verdict they add up to."""

    __pydantic_config__: ClassVar[dict[str, str]] = {"extra": "forbid"}

    run_dir: str
    verdict: Verdict
    gates: list[GateResult]


@dataclass(kw_only=True)
class ToolInfo:
    """Which tool and options made the report."""

    __pydantic_config__: ClassVar[dict[str, str]] = {"extra": "forbid"}

    name: str = "auditor"
    version: str
    quick: bool = False
    strict: bool = False


@dataclass(kw_only=True)
class VerifyReport:
    """The JSON report of `audit verify` (public API: users' CI reads it)."""

    __pydantic_config__: ClassVar[dict[str, str]] = {"extra": "forbid"}

    schema_version: Literal[1] = 1
    tool: ToolInfo
    runs: list[RunReport]
