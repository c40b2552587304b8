"""The NVML sampler without a GPU: NVML itself cannot run here, so a replay of raw readings (NVML's units:
bytes, milliwatts, percent; tests/data/nvml_readings.json) stands in at the one boundary, NvmlSource. Everything
after it is real: the process-tree walk over /proc, the sample records, the file, verify's aggregation and the
gpu_used gate through the CLI. The real-GPU version of this is tests/test_gpu.py (marked `gpu`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, verify_json

from auditor.capture.files import write_json_atomic
from auditor.capture.gpu import Sampler, process_tree
from auditor.evidence.nvsmi import read_gpu_samples

READINGS = json.loads((ROOT / "tests" / "data" / "nvml_readings.json").read_text())


class Replay:
    """Recorded readings, one round per sample_once; OURS is this process, OTHER is pid 1 (never our child)."""

    def __init__(self, rounds: list[list[dict[str, Any]]]) -> None:
        self.rounds, self.round, self.closed = rounds, 0, False

    def facts(self) -> dict[str, Any]:
        return dict(READINGS["facts"])

    def count(self) -> int:
        return len(self.rounds[0])

    def read(self, index: int) -> dict[str, Any]:
        raw = dict(self.rounds[self.round][index])
        raw["processes"] = [(os.getpid() if pid == "OURS" else 1, used) for pid, used in raw["processes"]]
        if index == self.count() - 1:
            self.round += 1
        return raw

    def close(self) -> None:
        self.closed = True


def sample_folder(folder: Path, rounds: list[list[dict[str, Any]]]) -> Sampler:
    folder.mkdir(parents=True, exist_ok=True)
    sampler = Sampler(Replay(rounds), folder, interval=1.0)
    with (folder / "gpu_samples.jsonl").open("w") as out:
        for _ in rounds:
            sampler.sample_once(os.getpid(), out)
    return sampler


def test_samples_count_only_the_runs_process_tree(tmp_path: Path) -> None:
    sampler = sample_folder(tmp_path, READINGS["rounds"])
    lines = [json.loads(line) for line in (tmp_path / "gpu_samples.jsonl").read_text().splitlines()]
    assert len(lines) == 12 and {line["gpu"] for line in lines} == {0, 1}
    peak = lines[10]  # round 6, GPU 0: 22 GiB held by us, 699 W
    assert peak["process_memory_mib"] == 22 * 1024 and peak["power_w"] == 699.0 and peak["processes"] == 1
    other = lines[11]  # GPU 1 is busy, but with someone else's process
    assert other["utilization_gpu"] == 100 and other["process_memory_mib"] == 0 and other["other_processes"] == 1
    stats = read_gpu_samples(tmp_path / "gpu_samples.jsonl", "gpu_samples.jsonl")
    assert stats.samples == 12 and stats.devices == {0, 1}
    assert stats.max_process_memory_mib == 22 * 1024, "the other job's 39.5 GiB must not count as ours"
    assert stats.max_memory_used_mib == 40 * 1024 and stats.max_power_w == 699.0
    utils = [0, 12, 97, 99, 98, 100] + [100] * 6
    assert stats.mean_utilization == pytest.approx(sum(utils) / 12)
    assert sampler.rounds == 6 and sampler.cpu_seconds >= 0


def gpu_folder(tmp_path: Path, rounds: list[list[dict[str, Any]]]) -> Path:
    folder = tmp_path / "run"
    sample_folder(folder, rounds)
    write_json_atomic(folder / "gpu_snapshot.json", READINGS["facts"])
    (folder / "config.yaml").write_text("training:\n  device: cuda\n")
    (folder / "training_log.txt").write_text("step 1 loss 2.0\n")
    return folder


def test_gpu_used_passes_on_samples_of_our_processes(tmp_path: Path) -> None:
    gate = verify_json(gpu_folder(tmp_path, READINGS["rounds"])).gate("gpu_used")
    assert gate["status"] == "pass" and "22528 MiB" in gate["message"], gate


def test_gpu_used_fails_when_only_another_job_used_the_gpu(tmp_path: Path) -> None:
    idle = [[{**dev, "processes": [p for p in dev["processes"] if p[0] != "OURS"],
              "utilization_gpu": 0 if i == 0 else dev["utilization_gpu"]} for i, dev in enumerate(round_)]
            for round_ in READINGS["rounds"]]
    for round_ in idle:
        round_[1]["utilization_gpu"] = 0  # a busy neighbour would still show utilisation: make both idle
    gate = verify_json(gpu_folder(tmp_path, idle)).gate("gpu_used")
    assert gate["status"] == "fail" and "sat idle" in gate["message"], gate


def test_process_tree_finds_grandchildren() -> None:
    code = "import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])"
    code += "; print(p.pid, flush=True); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        grandchild = int(child.stdout.readline())
        time.sleep(0.1)
        tree = process_tree(os.getpid())
        assert {os.getpid(), child.pid, grandchild} <= tree and 1 not in tree
    finally:
        child.kill()
        subprocess.run(["kill", "-9", str(grandchild)], check=False)
        child.wait()


def test_run_without_nvml_says_why(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: tests/test_gpu.py covers it")
    from conftest import audit

    folder = tmp_path / "run"
    result = audit("run", "--runner", "command", "--out", folder, "--", sys.executable, "-c", "print('hi')")
    assert result.code in (0, 1), result.stderr
    env = json.loads((folder / "env_snapshot.json").read_text())
    assert env["nvml"].startswith("not captured:"), env["nvml"]
    assert not (folder / "gpu_samples.jsonl").exists() and not (folder / "gpu_snapshot.json").exists()
