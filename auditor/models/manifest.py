"""run_manifest.json, as written by `audit run` (schemas/run_manifest.schema.json)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from auditor.models.plan import Plan

SHA256_PATTERN = r"^[0-9a-f]{64}$"
RunStatus = Literal["running", "succeeded", "failed", "killed", "interrupted"]


class Outcome(BaseModel):
    """How the run ended. `running` with a stale heartbeat means the wrapper died (abandoned)."""

    model_config = ConfigDict(extra="forbid")

    status: RunStatus
    exit_code: int | None = None
    signal: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    heartbeat_at: str | None = None
    wall_seconds: float | None = Field(None, ge=0)


class Artifact(BaseModel):
    """One file of the run folder with its digest; `path` is relative and stays inside the folder."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1)
    sha256: str = Field(pattern=SHA256_PATTERN)
    size: int = Field(ge=0)
    role: str | None = None


class GitInfo(BaseModel):
    """Source state at launch."""

    model_config = ConfigDict(extra="forbid")

    commit: str | None = None
    branch: str | None = None
    dirty: bool | None = None
    changed_files: list[str] = Field(default_factory=list)
    diff_path: str | None = None
    diff_sha256: str | None = Field(None, pattern=SHA256_PATTERN)


class RunManifest(BaseModel):
    """The manifest `audit run` writes atomically: before launch (status running) and after."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    run_id: str = Field(min_length=1)
    created_at: str | None = None
    runner: str | None = None
    command: list[str] = Field(default_factory=list)
    config_path: str | None = None
    evidence_only: bool = False
    seed: int | None = None
    plan: Plan = Field(default_factory=Plan)
    outcome: Outcome
    environment: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    git: GitInfo | None = None
    artifacts: list[Artifact] = Field(default_factory=list)
    claims: dict[str, float] = Field(
        default_factory=dict, description="figures the run reports about itself, e.g. total_steps, final_loss"
    )
