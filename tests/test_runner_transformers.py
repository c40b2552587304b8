"""`audit run --runner transformers` through the real CLI: the reference Trainer run, and an unmodified user
Trainer script that gets the evidence callback injected (including one whose loss goes NaN, which Trainer's
default logging_nan_inf_filter hides from the logged loss)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import ROOT, audit, verify_json
from test_run import manifest

pytest.importorskip("transformers")
USER_SCRIPT = ROOT / "tests" / "hf_user_script.py"


def test_reference_trainer_run_verifies(tmp_path: Path) -> None:
    folder = tmp_path / "hf_ref"
    result = audit("run", "--runner", "transformers", "--device", "cpu", "--out", folder)
    assert result.code == 0, result.stdout[-3000:] + result.stderr
    data = manifest(folder)
    assert data["outcome"]["status"] == "succeeded" and data["plan"]["max_steps"] == 300
    env = json.loads((folder / "env_snapshot.json").read_text())
    assert env["logging_nan_inf_filter"] is False and env["transformers"]
    assert (folder / "training_output" / "checkpoints" / "checkpoint-300" / "trainer_state.json").is_file()
    report = verify_json(folder, "--strict")
    assert report.code == 0 and report.failing() == set()
    for gate_id in ("training_completed", "loss_decreased", "checkpoint_saved", "evaluation_ran",
                    "model_matches_config", "throughput_plausible"):
        assert report.status(gate_id) == "pass", report.gate(gate_id)


def test_user_trainer_script_gets_the_callback(tmp_path: Path) -> None:
    folder, output_dir = tmp_path / "run", tmp_path / "outside"
    result = audit("run", "--runner", "transformers", "--out", folder, "--",
                   sys.executable, USER_SCRIPT, "--output_dir", output_dir, "--steps", "30")
    assert result.code == 0, result.stdout[-3000:] + result.stderr
    records = [json.loads(line) for line in (folder / "training_output" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [5, 10, 15, 20, 25, 30]
    assert "train_runtime" in records[-1]
    data = manifest(folder)
    plan = data["plan"]  # the script declared nothing: the plan comes from the Trainer's own arguments
    assert plan["max_steps"] == 30 and plan["batch_size"] == 8 and plan["architecture"]["n_embd"] == 32
    assert plan["source"]["max_steps"] == "training_output/trainer_run.json"
    assert data["environment"]["logging_nan_inf_filter"] is True
    # checkpoints and the final model saved outside the folder were brought in, byte for byte
    final = folder / "training_output" / "final_model" / "model.safetensors"
    assert final.read_bytes() == (output_dir / "model.safetensors").read_bytes()
    assert (folder / "training_output" / "checkpoints" / "checkpoint-15" / "trainer_state.json").is_file()
    report = verify_json(folder)
    assert report.code == 0 and report.failing() == set()
    assert report.status("model_matches_config") == "pass" and report.status("checkpoint_saved") == "pass"


def test_nan_hidden_by_logging_filter_is_caught(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    result = audit("run", "--runner", "transformers", "--out", folder, "--",
                   sys.executable, USER_SCRIPT, "--output_dir", tmp_path / "out", "--steps", "30", "--nan-from", "12")
    assert result.code == 1, "training exits 0 but its evidence must fail"
    losses = [json.loads(line).get("loss") for line in
              (folder / "training_output" / "metrics.jsonl").read_text().splitlines()]
    assert all(loss is None or loss == loss for loss in losses), "the filter hid every NaN from the logged loss"
    report = verify_json(folder)
    gate = report.gate("loss_decreased")
    assert gate["status"] == "fail" and "grad_norm" in gate["message"]
    assert "logging_nan_inf_filter is on" in gate["message"]
    assert gate["evidence"][0]["path"] == "training_output/metrics.jsonl" and gate["evidence"][0]["line"] == 3


def test_script_without_trainer_records_why(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    script = tmp_path / "plain.py"
    script.write_text("from auditor import runtime\nfor s in range(1, 4):\n    runtime.log_metrics(s, loss=3.0 / s)\n")
    result = audit("run", "--runner", "transformers", "--out", folder, "--", sys.executable, script)
    assert result.code in (0, 1), result.stderr
    env = json.loads((folder / "env_snapshot.json").read_text())
    assert env["hf_callback"].startswith("no Trainer started training")


def test_device_tpu_without_torch_xla_is_refused(tmp_path: Path) -> None:
    result = audit("run", "--runner", "transformers", "--device", "tpu", "--out", tmp_path / "run")
    assert result.code == 2 and result.stderr.startswith("Error:") and "torch_xla" in result.stderr
    assert not (tmp_path / "run").exists()
