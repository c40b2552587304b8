"""The gates: one module per concern, registered by id in one dict (base.REGISTRY), which drives
dispatch, `audit gates`, the CLI's --select/--ignore and docs/gates.md."""

from auditor.gates import (  # noqa: F401  (importing registers each gate)
    checkpoint_safe,
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

# Report order: what a reader checks first. no_false_success runs last regardless (verify.py).
ORDER = (
    "manifest_valid", "training_completed", "no_false_success", "loss_decreased", "checkpoint_saved", "checkpoint_safe",
    "gpu_used",
    "evaluation_ran", "evidence_complete", "claims_consistent", "throughput_plausible", "model_matches_config",
    "environment_captured", "no_secrets", "code_unchanged",
)
assert set(ORDER) == set(REGISTRY), "every registered gate must have a place in ORDER"
for _gate_id in ORDER:
    REGISTRY[_gate_id] = REGISTRY.pop(_gate_id)

__all__ = ["REGISTRY", "Gate", "GateContext", "GateOptions"]
