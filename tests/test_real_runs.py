"""Acceptance: the users' five real evidence folders (../shared/real_runs, byte for byte as committed).
Pinned are the gate statuses a careful human auditor is sure of; each reason is in the comment."""

from __future__ import annotations

import pytest
from conftest import REAL_RUNS, verify_json

pytestmark = pytest.mark.skipif(not REAL_RUNS.is_dir(), reason="../shared/real_runs not present")

EXPECTED = {
    "m37_v1": {
        "training_completed": "fail",    # 200 steps planned, no step ever recorded
        "loss_decreased": "fail",        # no loss at all
        "checkpoint_saved": "fail",      # no model in the folder
        "gpu_used": "fail",              # TPU planned; the only "TPU" lines are in a template
        "evidence_complete": "fail",     # kaggle_output_log.txt is a template to paste into
        "environment_captured": "fail",  # no environment snapshot
        "manifest_valid": "warn",        # the team's own manifest format
    },
    "m39_v1": {
        "training_completed": "pass",    # 550/550 with the trainer's final record (UTF-16 log)
        "loss_decreased": "pass",
        "checkpoint_saved": "fail",      # saved to C:\\coding\\..., outside the folder
        "claims_consistent": "fail",     # eval_summary.json (runtime 254.22) and the log (256.48): two runs
        "environment_captured": "fail",
        "gpu_used": "skip",              # a CPU run
    },
    "m40_v1": {
        "training_completed": "pass",
        "loss_decreased": "pass",
        "checkpoint_saved": "fail",
        "gpu_used": "warn",              # only log lines; nvidia_smi.txt shows no process of the run
        "claims_consistent": "warn",     # "Final Loss 4.15" is the run average, not the last logged loss
        "environment_captured": "pass",
    },
    "m43_v1": {
        "training_completed": "pass",
        "loss_decreased": "pass",
        "checkpoint_saved": "fail",      # index lists 2 shards, neither committed
        "gpu_used": "warn",
        "evaluation_ran": "pass",        # 20 predictions under final_answer
        "claims_consistent": "warn",     # "Final Train Loss 1.02" is the average; last logged is 0.76
        "throughput_plausible": "pass",  # 11.4 TFLOP/s on an RTX 5090
        "no_secrets": "pass",
        "code_unchanged": "warn",        # evidence-only, commit recorded, clean tree not recorded
    },
    "m44_v1": {
        "training_completed": "pass",    # 3 epochs planned, epoch 3.0 reached
        "loss_decreased": "pass",
        "checkpoint_saved": "fail",
        "evaluation_ran": "pass",        # 100 predictions
        "claims_consistent": "fail",     # summary: loss 0.65 at epoch 1.52; the log says 0.6624
        "throughput_plausible": "pass",
        "model_matches_config": "pass",  # gemma-2b declared, 2.5B parameters in the index
        "environment_captured": "pass",
    },
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_folder(name: str) -> None:
    result = verify_json(REAL_RUNS / name)
    assert result.code == 1, result.stderr
    got = {gate_id: result.status(gate_id) for gate_id in EXPECTED[name]}
    assert got == EXPECTED[name]
    for gate in result.report["runs"][0]["gates"]:
        assert gate["message"] and "Traceback" not in gate["message"]


def test_m44_loss_claim_points_at_the_row() -> None:
    gate = verify_json(REAL_RUNS / "m44_v1").gate("claims_consistent")
    assert gate["evidence"][0] == {"path": "m44_summary.md", "line": 54, "note": None}
    assert "0.6624" in gate["message"] and "training_log.txt:589" in gate["message"]


def test_m43_missing_shards_named() -> None:
    message = verify_json(REAL_RUNS / "m43_v1").gate("checkpoint_saved")["message"]
    assert "model-00001-of-00002.safetensors" in message and "not kept next to their index" in message
