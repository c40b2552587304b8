"""The seam for evidence formats: what a format module declares (FormatInfo) and returns (MetricsSeries for
metrics, Checkpoint for checkpoints). Gates see only those models, never which format the evidence came from.

A metrics source is asked `claims(rel, head)` for every file of the folder (its folder-relative path and first
bytes) and reads those it claims; a checkpoint source finds its own candidates in the folder listing and
inspects one. Every file is opened through the Folder it is given (auditor.evidence.opener): contained, regular
files only, bounded reads."""

from __future__ import annotations

import fnmatch
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

if TYPE_CHECKING:
    from auditor.evidence.checkpoint import Checkpoint
    from auditor.evidence.metrics import MetricsSeries
    from auditor.evidence.opener import Folder
    from auditor.evidence.text import TextDoc

Kind = Literal["metrics", "checkpoint"]


@dataclass(frozen=True)
class FormatInfo:
    """What one format is, for the registry, `audit formats` and docs/formats.md."""

    id: str
    kind: Kind
    title: str
    looks_for: tuple[str, ...]  # shell patterns matched against a file's name (or its folder-relative path)
    reads: str  # what is read from it
    proves: str  # what that reading establishes (and what it cannot)
    extra: str | None = None  # the pip extra a reader needs; None: the core reads it
    log: bool = False  # a file of this format is also the run's printed log (crash and success lines are read)


def name_matches(rel: str, patterns: tuple[str, ...]) -> bool:
    """Does the file's name, or its folder-relative path, match one of the shell patterns?"""
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(rel, p) for p in patterns)


class MetricsSource(ABC):
    """A metrics format: claims files by name and content, reads each into loss series."""

    info: ClassVar[FormatInfo]

    def claims(self, rel: str, head: bytes) -> bool:
        """Whether this format reads the file (by default: its name matches `looks_for`)."""
        return name_matches(rel, self.info.looks_for)

    def select(self, claimed: list[str]) -> list[str]:
        """Of the files this format claimed, the ones to read (by default all; a format whose newer files contain
        the older ones, like trainer_state.json per checkpoint, keeps the newest)."""
        return claimed

    def log_view(self, folder: Folder, rel: str) -> TextDoc | None:
        """For a format that is also a log (`info.log`): its text as lines, numbered as in the file."""
        return folder.text(rel)

    @abstractmethod
    def read(self, folder: Folder, rel: str) -> list[MetricsSeries]:
        """The series in one claimed file (a store may hold several runs); problems are recorded on the series
        (bad_lines with their position), never raised."""


@dataclass(frozen=True)
class Candidate:
    """A checkpoint a source found: where it is (a folder-relative file or directory), the training step its
    name or metadata gives, and whether it is named as the final one (final_model, last.ckpt, `latest`)."""

    location: str
    source: str
    step: int | None = None
    final: bool = False


class CheckpointSource(ABC):
    """A checkpoint format: finds candidates in the folder listing, inspects one from its bytes (never loads or
    unpickles it)."""

    info: ClassVar[FormatInfo]

    @abstractmethod
    def find(self, folder: Folder) -> list[Candidate]:
        """Every checkpoint of this format in the folder."""

    @abstractmethod
    def inspect(self, folder: Folder, candidate: Candidate) -> Checkpoint:
        """Structure and integrity of one candidate; problems are recorded on the Checkpoint, never raised."""
