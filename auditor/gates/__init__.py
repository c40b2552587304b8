"""The gates: one module per concern, registered by id in one dict (base.REGISTRY), which drives
dispatch, `audit gates`, the CLI's --select/--ignore and docs/gates.md."""

from auditor.gates import (  # noqa: F401  (importing registers each gate, in report order)
    checkpoint_saved,
    claims_consistent,
    code_unchanged,
    environment_captured,
    evaluation_ran,
    evidence_complete,
    gpu_used,
    loss_decreased,
    manifest_valid,
    model_matches_config,
    no_false_success,
    no_secrets,
    throughput_plausible,
    training_completed,
)
from auditor.gates.base import REGISTRY, Gate, GateContext, GateOptions

__all__ = ["REGISTRY", "Gate", "GateContext", "GateOptions"]
