"""Real-GPU runs (marked `gpu`; skipped where torch sees no CUDA device): each runner's reference on CUDA under
`audit run`, with NVML samples proving the device did the work. Results are recorded in docs/gpu-validation.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import audit, verify_json
from test_run import manifest

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("runner", ["pytorch", "transformers"])
def test_reference_on_cuda_verifies_with_nvml_evidence(tmp_path: Path, runner: str) -> None:
    folder = tmp_path / runner
    result = audit("run", "--runner", runner, "--device", "cuda", "--sample-interval", "0.2", "--out", folder)
    assert result.code == 0, result.stdout[-3000:] + result.stderr
    data = manifest(folder)
    assert data["plan"]["device"] == "cuda" and data["environment"]["cuda_available"] is True
    snapshot = json.loads((folder / "gpu_snapshot.json").read_text())
    assert snapshot["driver"] and snapshot["devices"][0]["memory_total_mib"] > 0
    env = json.loads((folder / "env_snapshot.json").read_text())
    assert env["nvml"].startswith("sampled") and env["nvml_sampler"]["samples"] > 0
    samples = [json.loads(line) for line in (folder / "gpu_samples.jsonl").read_text().splitlines()]
    assert max(s["process_memory_mib"] for s in samples) > 0, "the training's own processes held GPU memory"
    report = verify_json(folder, "--strict")
    assert report.code == 0, report.failing()
    assert report.status("gpu_used") == "pass" and "NVML samples" in report.gate("gpu_used")["message"]


def test_jax_reference_on_gpu(tmp_path: Path) -> None:
    pytest.importorskip("jax")
    folder = tmp_path / "jax"
    result = audit("run", "--runner", "jax", "--device", "gpu", "--out", folder)
    if result.code == 2 and "has no cuda device" in result.stderr:
        pytest.skip("this JAX build has no CUDA backend: " + result.stderr.strip()[:200])
    assert result.code == 0, result.stdout[-3000:] + result.stderr
    assert manifest(folder)["environment"]["jax_backend"] == "gpu"
    assert verify_json(folder).status("gpu_used") == "pass"


def test_torchrun_nccl_on_every_gpu(tmp_path: Path) -> None:
    import torch

    count = torch.cuda.device_count()
    if count < 2:
        pytest.skip(f"{count} GPU: NCCL across ranks needs two")
    folder = tmp_path / "ddp"
    result = audit("run", "--runner", "pytorch", "--device", "cuda", "--nproc-per-node", "2", "--out", folder)
    assert result.code == 0, result.stdout[-3000:] + result.stderr
    assert "process group nccl" in (folder / "ranks" / "rank1.stdout.log").read_text()
