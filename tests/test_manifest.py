"""Folders with an auditor run_manifest.json: schema validation with JSON paths, outcomes, artifact digests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from conftest import verify_json


def write_manifest(run: Path, **changes: object) -> dict:
    artifacts = []
    for rel in ("training_output/metrics.jsonl", "predictions.jsonl", "training_output/final_model/model.safetensors"):
        data = (run / rel).read_bytes()
        artifacts.append({"path": rel, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})
    manifest = {
        "schema_version": 1, "run_id": "tiny_v1", "runner": "transformers", "command": ["python", "train.py"],
        "plan": {"max_steps": 40, "device": "cpu"},
        "outcome": {"status": "succeeded", "exit_code": 0},
        "artifacts": artifacts, "claims": {"total_steps": 40},
    }
    manifest.update(changes)
    (run / "run_manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def test_valid_manifest_passes(run_dir: Path) -> None:
    write_manifest(run_dir)
    result = verify_json(run_dir)
    assert result.code == 0 and result.report["runs"][0]["verdict"] == "pass", result.report
    assert result.status("manifest_valid") == "pass"
    assert "3 digest(s) match" in result.gate("evidence_complete")["message"]


def test_schema_errors_name_the_json_path(run_dir: Path) -> None:
    manifest = write_manifest(run_dir)
    manifest["artifacts"][1]["sha256"] = "abc"
    (run_dir / "run_manifest.json").write_text(json.dumps(manifest))
    gate = verify_json(run_dir).gate("manifest_valid")
    assert gate["status"] == "fail"
    assert "artifacts[1].sha256: 'abc' does not match" in gate["message"]


def test_tampered_artifact(run_dir: Path) -> None:
    write_manifest(run_dir)
    weights = run_dir / "training_output" / "final_model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # same size, same header: only the digest can tell
    weights.write_bytes(bytes(data))
    result = verify_json(run_dir)
    assert result.code == 1
    assert "model.safetensors does not match its sha256" in result.gate("evidence_complete")["message"]
    assert verify_json(run_dir, "--quick").status("evidence_complete") == "pass"


def test_failed_outcome_and_false_claim(run_dir: Path) -> None:
    write_manifest(run_dir, outcome={"status": "killed", "exit_code": -9, "signal": "SIGKILL"})
    result = verify_json(run_dir)
    assert result.code == 1
    assert "killed" in result.gate("training_completed")["message"]
    assert "no_false_success" in result.failing()


def test_abandoned_running_manifest(run_dir: Path) -> None:
    write_manifest(run_dir, outcome={"status": "running", "heartbeat_at": "2026-01-01T00:00:00Z"})
    gate = verify_json(run_dir).gate("training_completed")
    assert gate["status"] == "fail" and "abandoned" in gate["message"]


def test_manifest_claims_checked(run_dir: Path) -> None:
    write_manifest(run_dir, claims={"total_steps": 41})
    assert verify_json(run_dir).status("claims_consistent") == "fail"


def test_evidence_only_with_dirty_tree(run_dir: Path) -> None:
    write_manifest(run_dir, evidence_only=True, git={"commit": "a" * 40, "dirty": True,
                                                     "changed_files": ["training/train.py"]})
    gate = verify_json(run_dir).gate("code_unchanged")
    assert gate["status"] == "fail" and "training/train.py" in gate["message"]
