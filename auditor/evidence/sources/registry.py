"""The one registry of evidence formats: it drives discovery in RunEvidence, `audit formats` and docs/formats.md.
A format module registers its source class with `@register`; auditor.evidence.sources imports every module."""

from __future__ import annotations

from typing import TypeVar

from auditor.evidence.sources.interface import CheckpointSource, FormatInfo, MetricsSource

METRICS: dict[str, MetricsSource] = {}
CHECKPOINTS: dict[str, CheckpointSource] = {}
S = TypeVar("S", bound=type)


def register(cls: S) -> S:
    """Register a MetricsSource or CheckpointSource subclass under its FormatInfo id (one instance each)."""
    info: FormatInfo = cls.info  # type: ignore[attr-defined]
    table: dict = METRICS if issubclass(cls, MetricsSource) else CHECKPOINTS
    if not issubclass(cls, (MetricsSource, CheckpointSource)):
        raise TypeError(f"{cls.__name__} is neither a MetricsSource nor a CheckpointSource")
    if info.id in METRICS or info.id in CHECKPOINTS:
        raise ValueError(f"format {info.id!r} registered twice")
    expected = "metrics" if issubclass(cls, MetricsSource) else "checkpoint"
    if info.kind != expected:
        raise ValueError(f"format {info.id!r} declares kind {info.kind!r} but is a {expected} source")
    table[info.id] = cls()
    return cls


def formats() -> list[FormatInfo]:
    """Every registered format: metrics first, then checkpoints, each in registration order."""
    return [s.info for s in METRICS.values()] + [s.info for s in CHECKPOINTS.values()]
