"""What every gate shares: the registration decorator, options and a result helper."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from auditor.evidence.run import RunEvidence
from auditor.models import EvidenceRef, GateResult
from auditor.models.report import GateStatus


@dataclass(frozen=True)
class GateOptions:
    """Thresholds a user may tune (defaults documented in docs/gates.md)."""

    loss_window: float = 0.2
    min_loss_drop: float = 0.01
    quick: bool = False


@dataclass
class GateContext:
    """Options, plus results of gates that ran earlier (for gates that judge other gates' claims)."""

    options: GateOptions = field(default_factory=GateOptions)
    results: dict[str, GateResult] = field(default_factory=dict)


GateFunction = Callable[[RunEvidence, GateContext], GateResult]


@dataclass(frozen=True)
class Gate:
    """A registered gate: stable id, what it proves, and its function."""

    id: str
    proves: str
    run: GateFunction


REGISTRY: dict[str, Gate] = {}


def gate(gate_id: str, proves: str) -> Callable[[GateFunction], GateFunction]:
    """Register a gate under a stable id (public API: users' CI depends on it)."""

    def register(function: GateFunction) -> GateFunction:
        if gate_id in REGISTRY:
            raise ValueError(f"gate {gate_id!r} registered twice")
        REGISTRY[gate_id] = Gate(gate_id, proves, function)
        return function

    return register


def ref(path: str, line: int | None = None, note: str | None = None) -> EvidenceRef:
    """An evidence pointer."""
    return EvidenceRef(path=path, line=line if line and line > 0 else None, note=note)


def where(path: str, line: int | None) -> str:
    """`path:line` or `path` for messages."""
    return f"{path}:{line}" if line else path


class Results:
    """Builds GateResults for one gate id."""

    def __init__(self, gate_id: str) -> None:
        self.gate_id = gate_id

    def __call__(self, status: GateStatus, message: str, *evidence: EvidenceRef) -> GateResult:
        """A result with this gate's id."""
        return GateResult(id=self.gate_id, status=status, message=message, evidence=list(evidence))
