"""Shared fixtures: real tiny training runs (once per session) and the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_RUNS = ROOT.parent / "shared" / "real_runs"


def train(out: Path, *extra: str) -> Path:
    """Run tests/tiny_train.py for real, teeing its output into training_log.txt as a wrapper would."""
    log = subprocess.run([sys.executable, str(ROOT / "tests" / "tiny_train.py"), str(out), *extra],
                         capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONHASHSEED": "0"})
    if log.returncode != 0:
        raise RuntimeError(f"tiny training failed:\n{log.stdout}\n{log.stderr}")
    (out / "training_log.txt").write_text(log.stdout + log.stderr, encoding="utf-8")
    return out


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A good seed-style folder from a real 40-step HF Trainer run (read-only: copy before changing)."""
    return train(tmp_path_factory.mktemp("trained") / "tiny_v1")


@pytest.fixture(scope="session")
def sharded_trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Like trained_run, but the final model saved in several safetensors shards with an index."""
    return train(tmp_path_factory.mktemp("sharded") / "tiny_sharded_v1", "--shard-size", "40KB", "--steps", "20")


@pytest.fixture
def run_dir(trained_run: Path, tmp_path: Path) -> Path:
    """A private copy of the good run folder to break."""
    return Path(shutil.copytree(trained_run, tmp_path / "run"))


@dataclass
class CliResult:
    """Exit code, parsed JSON report (when any), stdout and stderr of one `audit` invocation."""

    code: int
    report: dict[str, Any] | None
    stdout: str
    stderr: str

    def gate(self, gate_id: str, run: int = 0) -> dict[str, Any]:
        """One gate's result from the JSON report."""
        assert self.report is not None, self.stderr
        return next(g for g in self.report["runs"][run]["gates"] if g["id"] == gate_id)

    def status(self, gate_id: str, run: int = 0) -> str:
        """One gate's status."""
        return str(self.gate(gate_id, run)["status"])

    def failing(self, run: int = 0) -> set[str]:
        """Ids of failing gates."""
        assert self.report is not None, self.stderr
        return {g["id"] for g in self.report["runs"][run]["gates"] if g["status"] == "fail"}


def audit(*args: str | Path, env: dict[str, str] | None = None, cwd: Path = ROOT) -> CliResult:
    """Run the real CLI (`python -m auditor`, from `cwd`) and parse JSON output when --format json was asked."""
    proc = subprocess.run([sys.executable, "-m", "auditor", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env={**os.environ, **(env or {})})
    report = None
    if "json" in args and proc.stdout.strip().startswith("{"):
        report = json.loads(proc.stdout)
    return CliResult(proc.returncode, report, proc.stdout, proc.stderr)


def verify_json(path: Path, *args: str) -> CliResult:
    """`audit verify PATH --format json ...`."""
    return audit("verify", path, "--format", "json", *args)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`gpu` tests run only where torch sees a CUDA device (torch is imported only when such tests exist)."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    try:
        import torch

        reason = None if torch.cuda.is_available() else f"no CUDA device (torch {torch.__version__})"
    except ImportError:
        reason = "torch is not installed"
    if reason:
        for item in gpu_items:
            item.add_marker(pytest.mark.skip(reason=f"gpu test: {reason}"))
