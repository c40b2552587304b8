"""`audit reproduce` through the real CLI: the pytorch reference run repeated from its manifest is bitwise
identical on CPU (every logged loss and the final checkpoint), a deliberately changed seed diverges at the first
logged step, and a folder not made by `audit run` cannot be reproduced (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REAL_RUNS, audit


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reproduce")
    config = root / "short.yaml"
    config.write_text("training:\n  max_steps: 60\n  save_steps: 30\n")
    folder = root / "orig"
    result = audit("run", "--runner", "pytorch", "--device", "cpu", "--config", config, "--out", folder)
    assert result.code == 0, result.stdout[-2000:] + result.stderr
    return folder


def test_reference_run_reproduces_bitwise(original: Path, tmp_path: Path) -> None:
    result = audit("reproduce", original, "--out", tmp_path / "again", "--format", "json")
    assert result.code == 0, result.stdout + result.stderr[-2000:]
    data = json.loads(result.stdout)
    assert data["verdict"] == "bitwise" and data["steps_compared"] == 6 and data["max_abs_diff"] == 0
    assert data["checkpoint_identical"] is True and data["first_divergence"] is None
    rerun = json.loads((tmp_path / "again" / "run_manifest.json").read_text())
    assert rerun["seed"] == 0 and rerun["plan"]["max_steps"] == 60 and rerun["outcome"]["status"] == "succeeded"


def test_changed_seed_diverges_at_the_first_step(original: Path, tmp_path: Path) -> None:
    result = audit("reproduce", original, "--out", tmp_path / "seed1", "--seed", "1")
    assert result.code == 1
    assert result.stdout.startswith("reproduce: DIVERGED") and "first diverging step: 10 " in result.stdout
    assert "final checkpoint: differs (model.safetensors)" in result.stdout
    compared = json.loads(audit("compare", original, tmp_path / "seed1", "--format", "json").stdout)
    assert compared["differences"]["config"] == {"run.seed": [0, 1]}, "the seed is the one setting that differs"
    loose = audit("reproduce", original, "--out", tmp_path / "loose", "--seed", "1", "--rtol", "1")
    assert loose.code == 0 and loose.stdout.startswith("reproduce: WITHIN-TOLERANCE")


def test_seed_style_folder_cannot_be_reproduced(tmp_path: Path) -> None:
    seed = REAL_RUNS / "m44_v1"
    if not seed.is_dir():
        pytest.skip("../shared/real_runs is not beside the checkout")
    result = audit("reproduce", seed, "--out", tmp_path / "x")
    assert result.code == 2 and result.stderr.startswith("Error:") and "only runs made by `audit run`" in result.stderr
    assert not (tmp_path / "x").exists()
