"""`audit run --runner jax` through the real CLI: the JAX + optax reference trains and verifies on CPU; a
missing TPU or GPU stops the run before launch with what JAX found, and forcing it past preflight leaves a failed
run (JAX_PLATFORMS makes JAX raise instead of quietly training on the CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import audit, verify_json
from test_run import manifest

pytest.importorskip("jax")
pytest.importorskip("optax")


def test_reference_jax_run_verifies(tmp_path: Path) -> None:
    folder = tmp_path / "jax_ref"
    result = audit("run", "--runner", "jax", "--device", "cpu", "--out", folder)
    assert result.code == 0, result.stdout[-3000:] + result.stderr
    data = manifest(folder)
    assert data["outcome"]["status"] == "succeeded" and data["plan"]["device"] == "cpu"
    assert data["environment"]["jax_backend"] == "cpu" and data["environment"]["jax_device_count"] >= 1
    env = json.loads((folder / "env_snapshot.json").read_text())
    assert env["env"]["JAX_PLATFORMS"] == "cpu" and env["jax_run_devices"][0]["platform"] == "cpu"
    report = verify_json(folder, "--strict")
    assert report.code == 0 and report.failing() == set()
    for gate_id in ("training_completed", "loss_decreased", "checkpoint_saved", "evaluation_ran",
                    "model_matches_config", "throughput_plausible"):
        assert report.status(gate_id) == "pass", report.gate(gate_id)


@pytest.mark.parametrize("device", ["tpu", "gpu"])
def test_missing_accelerator_is_refused_before_launch(tmp_path: Path, device: str) -> None:
    result = audit("run", "--runner", "jax", "--device", device, "--out", tmp_path / "run")
    assert result.code == 2 and result.stderr.startswith("Error: preflight: --device")
    assert "it sees: cpu:0" in result.stderr and "use --device cpu" in result.stderr
    assert not (tmp_path / "run").exists(), "nothing is launched or written"


def test_forced_past_preflight_the_run_fails_instead_of_using_the_cpu(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    result = audit("run", "--runner", "jax", "--device", "tpu", "--force", "--out", folder)
    assert result.code == 1
    data = manifest(folder)
    assert data["outcome"]["status"] == "failed" and data["outcome"]["exit_code"] != 0
    assert data["plan"]["device"] == "tpu"
    assert "tpu" in (folder / "training_log.txt").read_text().lower()
    report = verify_json(folder)
    assert report.code == 1 and {"training_completed", "gpu_used"} <= report.failing()
