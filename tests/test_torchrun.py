"""`audit run --nproc-per-node 2` through the real CLI: torchrun with 2 CPU ranks (gloo). Every rank records
its start and exit; a rank that raises or is killed is named by verify; a rank record that goes missing fails."""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import audit, verify_json
from test_run import manifest

pytest.importorskip("torch.distributed")


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("torchrun") / "ddp"
    result = audit("run", "--runner", "pytorch", "--device", "cpu", "--nproc-per-node", "2", "--out", folder)
    assert result.code == 0, result.stdout[-3000:] + result.stderr
    return folder


def test_two_cpu_ranks_train_and_verify(two_rank_run: Path) -> None:
    folder = two_rank_run
    data = manifest(folder)
    assert data["environment"]["world_size"] == 2 and data["environment"]["launcher"] == "torchrun"
    assert "torch.distributed.run" in data["command"] and "--nproc-per-node=2" in data["command"]
    assert json.loads((folder / "env_snapshot.json").read_text())["world_size"] == 2
    for rank in (0, 1):
        record = json.loads((folder / "ranks" / f"rank{rank}.json").read_text())
        assert record["status"] == "exited" and record["exit_code"] == 0 and record["last_step"] == 300
        assert (folder / "ranks" / f"rank{rank}.stdout.log").stat().st_size > 0
    log = (folder / "ranks" / "rank1.stdout.log").read_text()
    assert "rank 1 of 2: process group gloo" in log
    rank1 = [json.loads(line) for line in (folder / "ranks" / "metrics.rank1.jsonl").read_text().splitlines()]
    rank0 = [json.loads(line) for line in (folder / "training_output" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rank1 if "loss" in r] == [r["step"] for r in rank0 if "loss" in r]
    assert rank1[-1]["train_samples_per_second"] > 0
    report = verify_json(folder)
    assert report.code == 0 and report.failing() == set()
    assert "all 2 ranks exited 0" in report.gate("training_completed")["message"]


def test_missing_rank_record_fails(two_rank_run: Path, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(two_rank_run, tmp_path / "copy"))
    (folder / "ranks" / "rank1.json").unlink()
    gate = verify_json(folder).gate("training_completed")
    assert gate["status"] == "fail" and "rank(s) 1 left no record" in gate["message"]


@pytest.mark.parametrize(("body", "expect"), [
    ("raise RuntimeError('rank one fell over')", "rank 1 exited 1: RuntimeError: rank one fell over"),
    ("os.kill(os.getpid(), signal.SIGKILL)", "rank 1 never recorded its exit"),
])
def test_failing_rank_is_named(tmp_path: Path, body: str, expect: str) -> None:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(f"""\
        import os, signal, time
        from auditor import runtime
        rank = int(os.environ["RANK"])
        for step in range(1, 4):
            runtime.log_metrics(step, loss=3.0 / step)
        if rank == 1:
            {body}
        time.sleep(1)
        """))
    folder = tmp_path / "run"
    result = audit("run", "--runner", "command", "--nproc-per-node", "2", "--out", folder, "--",
                   sys.executable, script)
    assert result.code == 1
    data = manifest(folder)
    assert data["outcome"]["status"] == "failed"
    gate = verify_json(folder).gate("training_completed")
    assert gate["status"] == "fail" and expect in gate["message"], gate
    assert gate["evidence"][-1]["path"] == "ranks/rank1.json"


def test_torchrun_refused_where_it_cannot_apply(tmp_path: Path) -> None:
    jax = audit("run", "--runner", "jax", "--nproc-per-node", "2", "--out", tmp_path / "a")
    assert jax.code == 2 and "does not launch through torchrun" in jax.stderr
    shell = audit("run", "--runner", "command", "--nproc-per-node", "2", "--out", tmp_path / "b", "--",
                  "sh", "-c", "true")
    assert shell.code == 2 and shell.stderr.startswith("Error: --nproc-per-node needs a Python command")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
