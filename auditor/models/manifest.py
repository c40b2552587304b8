"""run_manifest.json, as written by `audit run` (schemas/run_manifest.schema.json)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from auditor.models.plan import Plan

SHA256_PATTERN = r"^[0-9a-f]{64}$"
RunStatus = Literal["running", "succeeded", "failed", "killed", "interrupted"]


@dataclass(kw_only=True)
class LeftoverProcess:
    """A process of the training still alive after the training's own process ended."""

    __pydantic_config__: ClassVar[dict[str, str]] = {"extra": "forbid"}

    pid: int
    command: str | None = field(default=None, metadata={"description": "its command line (secrets redacted)"})
    held_output: bool = field(
        default=False, metadata={"description": "it still held the training's stdout/stderr open"}
    )


@dataclass(kw_only=True)
class Outcome:
    """How the run ended. `running` with a stale heartbeat means the wrapper died (abandoned)."""

    __pydantic_config__: ClassVar[dict[str, str]] = {"extra": "forbid"}

    status: RunStatus
    exit_code: int | None = None
    signal: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    heartbeat_at: str | None = None
    host: str | None = field(default=None, metadata={"description": "host the wrapper ran on"})
    wrapper_pid: int | None = field(
        default=None, metadata={"description": "pid of the `audit run` wrapper (a dead one on `host` = abandoned)"}
    )
    wall_seconds: float | None = field(default=None, metadata={"ge": 0})
    reason: str | None = field(
        default=None,
        metadata={"description": "why `audit run` ended or recorded the run this way, when the status alone does not "
                  "say (the disk filled, a command that could not start, a second signal that killed the training)"},
    )
    leftover_processes: list[LeftoverProcess] | None = field(
        default=None,
        metadata={"description": "processes of the training (its session or process group, or holding its output) "
                  "still alive when its own process had ended; `audit run` sent each SIGTERM. Null: not checked"},
    )


@dataclass(kw_only=True)
class Artifact:
    """One file of the run folder with its digest; `path` is relative and stays inside the folder."""

    __pydantic_config__: ClassVar[dict[str, str]] = {"extra": "forbid"}

    path: str = field(metadata={"min_length": 1})
    sha256: str = field(metadata={"pattern": SHA256_PATTERN})
    size: int = field(metadata={"ge": 0})
    role: str | None = None


@dataclass(kw_only=True)
class GitInfo:
    """Source state at launch."""

    __pydantic_config__: ClassVar[dict[str, str]] = {"extra": "forbid"}

    commit: str | None = None
    branch: str | None = None
    dirty: bool | None = None
    changed_files: list[str] = field(default_factory=list)
    diff_path: str | None = None
    diff_sha256: str | None = field(default=None, metadata={"pattern": SHA256_PATTERN})


@dataclass(kw_only=True)
class RunManifest:
    """The manifest `audit run` writes atomically: before launch (status running) and after."""

    __pydantic_config__: ClassVar[dict[str, str]] = {"extra": "forbid"}

    schema_version: Literal[1] = 1
    run_id: str = field(metadata={"min_length": 1})
    created_at: str | None = None
    runner: str | None = None
    command: list[str] = field(default_factory=list)
    config_path: str | None = None
    evidence_only: bool = False
    seed: int | None = None
    plan: Plan = field(default_factory=Plan)
    outcome: Outcome
    environment: dict[str, str | int | float | bool | None] = field(default_factory=dict)
    git: GitInfo | None = None
    artifacts: list[Artifact] = field(default_factory=list)
    sealed_at: str | None = field(
        default=None,
        metadata={"description": "when `audit run` recorded `artifacts` as every file of the folder (this manifest "
                  "and dot-files excepted): a file not listed was written after the run"},
    )
    claims: dict[str, float] = field(
        default_factory=dict,
        metadata={"description": "figures the run reports about itself, e.g. total_steps, final_loss"},
    )
