"""Gate results and the verify report (schemas/verify_report.schema.json)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

GateStatus = Literal["pass", "fail", "warn", "skip"]
Verdict = Literal["pass", "warn", "fail"]


class EvidenceRef(BaseModel):
    """Where a gate looked: a path relative to the run folder and, for text, a 1-based line."""

    model_config = ConfigDict(extra="forbid")

    path: str
    line: int | None = Field(None, ge=1)
    note: str | None = None


class GateResult(BaseModel):
    """One gate's finding for one run folder."""

    model_config = ConfigDict(extra="forbid")

    id: str
    status: GateStatus
    message: str
    evidence: list[EvidenceRef] = Field(default_factory=list)


class RunReport(BaseModel):
    """All gate results for one folder and the verdict they add up to."""

    model_config = ConfigDict(extra="forbid")

    run_dir: str
    verdict: Verdict
    gates: list[GateResult]


class ToolInfo(BaseModel):
    """Which tool and options made the report."""

    model_config = ConfigDict(extra="forbid")

    name: str = "auditor"
    version: str
    quick: bool = False
    strict: bool = False


class VerifyReport(BaseModel):
    """The JSON report of `audit verify` (public API: users' CI reads it)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    tool: ToolInfo
    runs: list[RunReport]
