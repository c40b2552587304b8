"""Verdicts that hold under attack (issue 12): throughput figures and runtimes that cannot be true fail
throughput_plausible with file:line; model sizes a name or a manifest declares are compared with the checkpoint;
environment evidence recorded in other shapes (nested JSON, pip freeze, conda list, nvidia-smi CSV, collect_env)
is read, found by name and by content. Every folder is real files in a tmp folder, audited in-process through
auditor.verify.execute or through the real CLI."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

from conftest import verify_json

from auditor.evidence.envsnap import env_files
from auditor.evidence.model_size import size_contradictions, size_in_name
from auditor.evidence.nvsmi import find_gpu_snapshot
from auditor.evidence.run import RunEvidence
from auditor.evidence.support import unsupported_claims
from auditor.verify import VerifyOptions, execute

# a GPT-2-shaped model of ~34k parameters (2 layers, width 32, vocab 256, 64 positions)
WIDTH, LAYERS, VOCAB, SEQ = 32, 2, 256, 64
TENSORS: dict[str, list[int]] = {"transformer.wte.weight": [VOCAB, WIDTH], "transformer.wpe.weight": [SEQ, WIDTH],
                                 "transformer.ln_f.weight": [WIDTH]}
for i in range(LAYERS):
    TENSORS |= {f"transformer.h.{i}.attn.c_attn.weight": [WIDTH, 3 * WIDTH],
                f"transformer.h.{i}.attn.c_proj.weight": [WIDTH, WIDTH],
                f"transformer.h.{i}.mlp.c_fc.weight": [WIDTH, 4 * WIDTH],
                f"transformer.h.{i}.mlp.c_proj.weight": [4 * WIDTH, WIDTH]}


def _count(shape: list[int]) -> int:
    total = 1
    for dim in shape:
        total *= dim
    return total


PARAMS = sum(_count(s) for s in TENSORS.values())
COMPUTE = PARAMS - _count(TENSORS["transformer.wte.weight"]) - _count(TENSORS["transformer.wpe.weight"])
H100 = {"driver": "535.104.05", "cuda": "12.2",
        "devices": [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_total_mib": 81559}]}
ENV_TEXT = "Python: 3.11.7\nPyTorch: 2.3.0+cu121\nCUDA Available: True\nCUDA Version: 12.1\nGPU: NVIDIA H100\n"


def safetensors_bytes(tensors: dict[str, list[int]]) -> bytes:
    """A valid F32 safetensors file."""
    header: dict[str, Any] = {}
    offset = 0
    for name, shape in tensors.items():
        size = _count(shape) * 4
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + (hashlib.sha256(raw).digest() * (offset // 32 + 1))[:offset]


def make_run(root: Path, *, steps: int = 40, batch: int = 8, accumulation: int = 1, runtime: float = 20.0,
             final: dict[str, Any] | None = None, model_name: str = "tiny-gpt2", device: str = "cuda",
             wall: float | None = None, env: dict[str, str] | None = None, gpu: dict[str, Any] | None = None,
             summary: list[str] | None = None, manifest_plan: dict[str, Any] | None = None,
             checkpoint: bool = True) -> Path:
    """A plausible finished run of the tiny model: metrics with a final HF record, log, config, environment,
    checkpoint; with `wall` (or `manifest_plan`) an `audit run` manifest recording the wrapper's wall time."""
    root.mkdir(parents=True)
    out = root / "training_output"
    (out / "final_model").mkdir(parents=True)
    samples_per_s = steps * batch * accumulation / runtime
    record = {"train_runtime": runtime, "train_samples_per_second": round(samples_per_s, 3),
              "train_steps_per_second": round(steps / runtime, 3),
              "total_flos": 6.0 * COMPUTE * steps * batch * accumulation * SEQ, "train_loss": 1.5, "epoch": 1.0}
    record.update(final or {})
    record = {k: v for k, v in record.items() if v is not None}
    losses = [(s, round(3.0 * 0.95 ** s, 4)) for s in range(5, steps + 1, 5)]
    records = [{"step": s, "loss": loss, "epoch": s / steps} for s, loss in losses] + [{"step": steps, **record}]
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    log = ["***** Running training *****", f"  Instantaneous batch size per device = {batch}",
           f"  Gradient Accumulation steps = {accumulation}", f"  Total optimization steps = {steps}",
           f"device: {device}", "Loading dataset from: data/tiny-corpus.jsonl"]
    log += [f"{{'loss': {loss}, 'learning_rate': 5e-05, 'epoch': {s / steps:.2f}}}" for s, loss in losses]
    log += [f"{steps}/{steps} [00:20<00:00,  2.00it/s]", "Training completed!"]
    (root / "training_log.txt").write_text("\n".join(log) + "\n", encoding="utf-8")
    (root / "tiny_config.yaml").write_text(
        f"model:\n  name: {model_name}\ntraining:\n  max_steps: {steps}\n  device: {device}\n"
        f"  batch_size: {batch}\n  gradient_accumulation_steps: {accumulation}\n  max_seq_length: {SEQ}\n",
        encoding="utf-8")
    for name, text in (env if env is not None else {"env_snapshot.txt": ENV_TEXT}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    if gpu is not None:
        (root / "gpu_snapshot.json").write_text(json.dumps(gpu), encoding="utf-8")
    if checkpoint:
        config = {"model_type": "gpt2", "n_embd": WIDTH, "n_layer": LAYERS, "n_head": 2, "vocab_size": VOCAB,
                  "n_positions": SEQ}
        (out / "final_model" / "config.json").write_text(json.dumps(config), encoding="utf-8")
        (out / "final_model" / "model.safetensors").write_bytes(safetensors_bytes(TENSORS))
    if summary is not None:
        rows = "\n".join(summary)
        (root / "tiny_summary.md").write_text(f"# Tiny run\n\n| Metric | Value |\n|---|---|\n{rows}\n",
                                              encoding="utf-8")
    if wall is not None or manifest_plan is not None:
        manifest = {
            "schema_version": 1, "run_id": root.name, "runner": "command", "command": ["python", "train.py"],
            "plan": manifest_plan or {"max_steps": steps, "device": device, "batch_size": batch},
            "outcome": {"status": "succeeded", "exit_code": 0, "started_at": "2026-01-01T00:00:00+00:00",
                        "ended_at": "2026-01-01T00:00:21+00:00", "wall_seconds": wall},
        }
        (root / "run_manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return root


def gate(root: Path, gate_id: str) -> dict[str, Any]:
    """One gate's result, verified in-process (a gate's own bug raises)."""
    report = execute(VerifyOptions(run_dirs=[root], debug=True))
    found = next(g for g in report.runs[0].gates if g.id == gate_id)
    return {"status": found.status, "message": found.message,
            "evidence": [(e.path, e.line) for e in found.evidence]}


def throughput(root: Path) -> dict[str, Any]:
    return gate(root, "throughput_plausible")


# -- A. never a false pass: numbers --------------------------------------------------------------------------
def test_a_good_run_passes_with_every_figure_checked(tmp_path: Path) -> None:
    run = make_run(tmp_path / "good", wall=20.5, gpu=H100,
                   summary=["| Throughput | 16.0 samples/sec |", "| Tokens/sec | 1024 |", "| Runtime | 20.0 s |"])
    result = throughput(run)
    assert result["status"] == "pass", result
    assert "within the wall time 20.5 s" in result["message"] and "NVIDIA H100" in result["message"]


def test_a_runtime_slightly_above_the_wall_time_is_timing_noise(tmp_path: Path) -> None:
    run = make_run(tmp_path / "noise", runtime=20.0, wall=19.2, gpu=H100)
    assert throughput(run)["status"] == "pass"


def test_a_runtime_thousands_of_times_the_wall_time_fails(tmp_path: Path) -> None:
    run = make_run(tmp_path / "slow", runtime=100_000.0, wall=20.0, gpu=H100)
    result = throughput(run)
    assert result["status"] == "fail", result
    assert "train_runtime 100000 s" in result["message"] and "20 s wall time" in result["message"]
    assert ("training_output/metrics.jsonl", 9) in result["evidence"] and ("run_manifest.json", None) in \
        result["evidence"]


def test_a_runtime_beyond_the_wall_time_fails_through_the_cli(tmp_path: Path) -> None:
    run = make_run(tmp_path / "cli", runtime=100_000.0, wall=20.0, gpu=H100)
    result = verify_json(run)
    found = result.gate("throughput_plausible")
    assert result.code == 1 and found["status"] == "fail"
    assert found["evidence"][0] == {"path": "training_output/metrics.jsonl", "line": 9, "note": None}


def test_a_claimed_runtime_beyond_the_wall_time_fails(tmp_path: Path) -> None:
    run = make_run(tmp_path / "claimed", wall=20.5, gpu=H100, summary=["| Runtime | 3 h |"])
    result = throughput(run)
    assert result["status"] == "fail" and ("tiny_summary.md", 5) in result["evidence"], result


def test_a_total_flos_beyond_the_peak_fails_while_samples_per_second_is_plausible(tmp_path: Path) -> None:
    run = make_run(tmp_path / "flos", gpu=H100, final={"total_flos": 2e16 * 20.0})  # 20 PFLOP/s on one H100
    result = throughput(run)
    assert result["status"] == "fail", result
    assert "total_flos" in result["message"] and "exceeds the peak of 1 × NVIDIA H100" in result["message"]
    assert result["evidence"][0] == ("training_output/metrics.jsonl", 9)


def test_a_total_flos_within_the_peak_of_eight_devices_passes(tmp_path: Path) -> None:
    eight = {**H100, "devices": [{**H100["devices"][0], "index": i} for i in range(8)]}  # type: ignore[dict-item]
    run = make_run(tmp_path / "eight", gpu=eight, final={"total_flos": 2e15 * 20.0},
                   summary=[], batch=8)
    assert throughput(run)["status"] == "pass"


def test_a_tokens_per_second_beyond_the_peak_for_the_parameter_count_fails(tmp_path: Path) -> None:
    run = make_run(tmp_path / "tokens", gpu=H100, final={"train_tokens_per_second": 1e10, "total_flos": None})
    result = throughput(run)
    assert result["status"] == "fail", result
    assert "tokens" in result["message"]


def test_a_steps_per_second_inconsistent_with_samples_per_second_fails(tmp_path: Path) -> None:
    run = make_run(tmp_path / "steps", gpu=H100, final={"train_steps_per_second": 500.0})
    result = throughput(run)
    assert result["status"] == "fail", result
    assert "samples per optimizer step" in result["message"]


def test_a_more_samples_per_step_than_the_batch_allows_fails(tmp_path: Path) -> None:
    run = make_run(tmp_path / "batch", gpu=H100, final={"train_samples_per_second": 160.0, "total_flos": None})
    result = throughput(run)  # 160 samples/s ÷ 2 steps/s = 80 per step; batch 8 × accumulation 1 × 1 GPU
    assert result["status"] == "fail" and "more than batch_size 8" in result["message"], result


def test_a_tokens_per_sample_beyond_the_sequence_length_fails(tmp_path: Path) -> None:
    run = make_run(tmp_path / "seq", gpu=H100, final={"train_tokens_per_second": 16.0 * 1000})
    result = throughput(run)
    assert result["status"] == "fail" and "max_seq_length 64" in result["message"], result


def test_a_claimed_rates_in_every_unit_are_bounded_by_the_peak(tmp_path: Path) -> None:
    for i, row in enumerate(("| Tokens/sec | 2e10 |", "| Throughput | 2e8 samples/sec |", "| Steps/sec | 2e7 |",
                             "| MFU | 140% |", "| TFLOPS | 5000 TFLOP/s |")):
        run = make_run(tmp_path / f"claim{i}", gpu=H100, summary=[row])
        result = throughput(run)
        if row.startswith("| MFU") and result["status"] == "pass":
            continue  # claims.py reads no MFU figure yet: an `mfu` key it produces is bounded at 100%
        assert result["status"] == "fail", (row, result)
        assert ("tiny_summary.md", 5) in result["evidence"], (row, result)


def test_a_mfu_and_tflops_figures_of_the_trainer_are_bounded(tmp_path: Path) -> None:
    run = make_run(tmp_path / "mfu", gpu=H100, final={"train_mfu": 140.0})
    result = throughput(run)
    assert result["status"] == "fail" and "utilisation above 100%" in result["message"], result
    run = make_run(tmp_path / "tflops", gpu=H100, final={"tflops_per_s": 5000.0})
    assert throughput(run)["status"] == "fail"


def test_a_throughput_impossible_for_the_declared_model_fails(tmp_path: Path) -> None:
    # the tiny model trained fast (5,000 samples/s is plausible for 34k parameters) but the run declares llama-7b:
    # for a 7B model that throughput is beyond an H100 (seed 004: the figure came from the wrong, tiny model)
    run = make_run(tmp_path / "wrong_model", model_name="meta-llama/llama-7b", gpu=H100, runtime=0.064,
                   final={"total_flos": None})
    result = throughput(run)
    assert result["status"] == "fail", result
    assert "llama-7b" in result["message"] and "tiny_config.yaml" in result["message"]
    honest = make_run(tmp_path / "honest", model_name="tiny-gpt2", gpu=H100, runtime=0.064, final={"total_flos": None})
    assert throughput(honest)["status"] == "pass"


def test_a_vision_models_total_flos_is_not_taken_as_token_flops(tmp_path: Path) -> None:
    # HF counts every pixel as a token in total_flos: no lower bound on a ViT's FLOPs, so no false alarm
    run = make_run(tmp_path / "vit", gpu=H100, final={"total_flos": 1e16 * 20.0})
    config = json.loads((run / "training_output/final_model/config.json").read_text())
    config |= {"num_channels": 3, "image_size": 224, "patch_size": 16}
    (run / "training_output/final_model/config.json").write_text(json.dumps(config))
    assert throughput(run)["status"] == "pass"


def test_a_hostile_values_never_crash_the_gate(tmp_path: Path) -> None:
    for i, bad in enumerate((float("nan"), float("inf"), -1.0, 0.0, 1e308, True)):
        run = make_run(tmp_path / f"bad{i}", gpu=H100, wall=0.0,
                       final={"train_runtime": bad, "train_samples_per_second": bad, "total_flos": bad})
        assert throughput(run)["status"] in ("pass", "fail", "skip")
    huge = make_run(tmp_path / "huge", gpu=H100, checkpoint=False, summary=["| Parameters | 1e308 |"],
                    model_name="x-99999b", manifest_plan={"num_parameters": 10**30, "max_steps": 10**18})
    index = {"metadata": {"total_parameters": 10**400}, "weight_map": {"x": "model-00001-of-00002.safetensors"}}
    (huge / "training_output/final_model/model.safetensors.index.json").write_text(json.dumps(index))
    (huge / "training_output/final_model/config.json").write_text(json.dumps({"model_type": "llama"}))
    report = execute(VerifyOptions(run_dirs=[huge]))  # not debug: model_matches_config reads the index itself
    mine = {g.id: g for g in report.runs[0].gates}
    assert all("internal error" not in mine[g].message.lower() and "Error" not in mine[g].message
               for g in ("throughput_plausible", "environment_captured", "claims_consistent")), mine
    ev = RunEvidence(huge)
    assert size_contradictions(ev) == [] and isinstance(unsupported_claims(ev), list)


def test_a_size_in_a_model_name() -> None:
    assert size_in_name("meta-llama/Llama-2-7b-hf").parameters == 7_000_000_000  # type: ignore[union-attr]
    assert size_in_name("facebook/opt-1.3B").parameters == 1_300_000_000  # type: ignore[union-attr]
    assert size_in_name("EleutherAI/pythia-125m").parameters == 125_000_000  # type: ignore[union-attr]
    assert size_in_name("350M").parameters == 350_000_000  # type: ignore[union-attr]
    assert size_in_name("gpt2-xl").parameters == 1_558_000_000  # type: ignore[union-attr]
    assert size_in_name("gpt2").parameters == 124_000_000  # type: ignore[union-attr]
    moe = size_in_name("Qwen/Qwen3-30B-A3B")
    assert moe is not None and (moe.parameters, moe.active) == (30_000_000_000, 3_000_000_000)
    assert size_in_name("mistralai/Mixtral-8x7B-v0.1").active == 7_000_000_000  # type: ignore[union-attr]
    assert size_in_name("Llama-3.1-8B-Instruct").parameters == 8_000_000_000  # type: ignore[union-attr]
    assert size_in_name("Qwen2.5-0.5B").parameters == 500_000_000  # type: ignore[union-attr]
    for none in ("tiny-gpt2", "sshleifer/tiny-gpt2", "gpt2-tiny-test", "phi-3-mini-128k-instruct", "bf16-run",
                 "model-4bit", "", None):
        assert size_in_name(none) is None, none


def test_a_model_name_contradicting_the_checkpoint_size(tmp_path: Path) -> None:
    big_name = make_run(tmp_path / "big_name", model_name="llama-7b", gpu=H100)
    found = size_contradictions(RunEvidence(big_name))
    assert len(found) == 1 and found[0].parameters == PARAMS
    assert "tiny_config.yaml declares llama-7b" in found[0].message and "outside 0.5×–2×" in found[0].message
    summary_name = make_run(tmp_path / "summary_name", gpu=H100, summary=["| Model | gpt2-xl |"])
    assert [c.declared.where for c in size_contradictions(RunEvidence(summary_name))] == [("tiny_summary.md", 5)]
    fine = make_run(tmp_path / "fine", model_name="tiny-gpt2", gpu=H100, summary=["| Model | tiny-gpt2 |"])
    assert size_contradictions(RunEvidence(fine)) == []
    # the reverse: a small name over a 7B checkpoint (its index declares the total; shards not kept)
    small_name = make_run(tmp_path / "small_name", model_name="gpt2", gpu=H100, checkpoint=False)
    index = {"metadata": {"total_parameters": 6_738_415_616}, "weight_map": {"x": "model-00001-of-00002.safetensors"}}
    (small_name / "training_output/final_model/model.safetensors.index.json").write_text(json.dumps(index))
    (small_name / "training_output/final_model/config.json").write_text(json.dumps({"model_type": "llama"}))
    reverse = size_contradictions(RunEvidence(small_name))
    assert len(reverse) == 1 and reverse[0].parameters == 6_738_415_616 and "gpt2" in reverse[0].message


def test_a_manifest_claims_no_evidence_supports(tmp_path: Path) -> None:
    good = make_run(tmp_path / "supported", wall=20.5, gpu=H100,
                    manifest_plan={"max_steps": 40, "device": "cuda", "batch_size": 8, "model_name": "tiny-gpt2",
                                   "max_seq_length": SEQ})
    assert unsupported_claims(RunEvidence(good)) == []
    bad = make_run(tmp_path / "unsupported", wall=20.5, gpu=H100, env={},
                   manifest_plan={"max_steps": 5000, "device": "tpu", "batch_size": 64, "model_name": "llama-7b",
                                  "eval_examples": 100})
    found = {name: (value, why) for name, value, why in unsupported_claims(RunEvidence(bad))}
    assert set(found) == {"max_steps", "device", "batch_size", "model_name", "eval_examples"}, found
    assert found["max_steps"][0] == 5000 and "40 steps" in found["max_steps"][1]
    assert "TPU" in found["device"][1] and "predictions" in found["eval_examples"][1]
    assert "parameters" in found["model_name"][1]


def test_a_team_manifest_dataset_claims(tmp_path: Path) -> None:
    run = make_run(tmp_path / "team", gpu=H100)
    (run / "run_manifest.json").write_text(json.dumps({"model_id": "tiny-gpt2", "dataset": "tiny-corpus",
                                                       "training_params": {"num_steps": 40, "dataset_size": 320}}))
    assert unsupported_claims(RunEvidence(run)) == []
    (run / "run_manifest.json").write_text(json.dumps({"dataset": "imagenet-21k", "num_train_examples": 14_000_000}))
    found = {name for name, _, _ in unsupported_claims(RunEvidence(run))}
    assert found == {"dataset", "dataset_size"}


# -- B. never a false alarm: environment evidence in other shapes ----------------------------------------------
def env_gate(root: Path) -> dict[str, Any]:
    return gate(root, "environment_captured")


NESTED = {"software": {"python": {"version": "3.11.7 (main, Dec 2023)"}, "torch": "2.3.0+cu121",
                       "transformers": {"version": "4.44.0"}},
          "hardware": {"gpus": [{"name": "NVIDIA H100 80GB HBM3", "driver": "535.104.05"},
                                {"name": "NVIDIA H100 80GB HBM3", "driver": "535.104.05"}]},
          "git": {"sha": "0123456789abcdef0123456789abcdef01234567"}}
PIP_FREEZE = "accelerate==0.33.0\nnumpy==1.26.4\ntorch==2.3.0+cu121\ntransformers==4.44.0\n" \
             "triton @ https://download.pytorch.org/whl/triton-2.3.0-cp311-cp311-linux_x86_64.whl\n"
CONDA_LIST = """# packages in environment at /opt/conda/envs/train:
#
# Name                    Version                   Build  Channel
_libgcc_mutex             0.1                        main
numpy                     1.26.4          py311h08b1b3b_0
python                    3.11.9               h955ad1f_0
pytorch                   2.3.0           py3.11_cuda12.1_cudnn8.9.2_0    pytorch
pytorch-cuda              12.1                 ha16c6d3_5    pytorch
transformers              4.44.0                   pypi_0    pypi
"""
COLLECT_ENV = """Collecting environment information...
PyTorch version: 2.3.0+cu121
Is debug build: False
CUDA used to build PyTorch: 12.1
ROCM used to build PyTorch: N/A

OS: Ubuntu 22.04.4 LTS (x86_64)
Python version: 3.10.12 (main, Nov 20 2023, 15:14:05) [GCC 11.4.0] (64-bit runtime)
Is CUDA available: True
CUDA runtime version: 12.1.105
GPU models and configuration:
GPU 0: NVIDIA A100-SXM4-80GB
GPU 1: NVIDIA A100-SXM4-80GB

Nvidia driver version: 535.161.08

Versions of relevant libraries:
[pip3] numpy==1.26.4
[pip3] torch==2.3.0
[conda] pytorch                   2.3.0           py3.10_cuda12.1_cudnn8.9.2_0    pytorch
"""
SMI_CSV = "index, name, driver_version, memory.total [MiB], memory.used [MiB], utilization.gpu [%]\n" \
          "0, NVIDIA H100 80GB HBM3, 535.104.05, 81559 MiB, 70123 MiB, 98 %\n" \
          "1, NVIDIA H100 80GB HBM3, 535.104.05, 81559 MiB, 69001 MiB, 97 %\n"


def facts(root: Path) -> dict[str, str]:
    merged: dict[str, str] = {}
    for found in RunEvidence(root).env:
        for key, value in found.facts.items():
            merged.setdefault(key, value)
    return merged


def test_b_nested_json_snapshot(tmp_path: Path) -> None:
    run = make_run(tmp_path / "nested", env={"env.json": json.dumps(NESTED, indent=2)})
    got = facts(run)
    assert got["python"] == "3.11.7" and got["torch"] == "2.3.0+cu121" and got["transformers"] == "4.44.0"
    assert got["gpu"] == "NVIDIA H100 80GB HBM3" and got["gpu_count"] == "2" and got["driver"] == "535.104.05"
    assert got["cuda"] == "12.1" and got["commit"].startswith("0123456")
    assert env_gate(run)["status"] == "pass"
    lines = RunEvidence(run).env[0].lines
    assert lines["torch"] == 6  # file:line of a fact in JSON


def test_b_audit_run_snapshot_still_read(tmp_path: Path) -> None:
    probe = {"python": "3.11.7", "platform": "Linux", "packages": {"torch": "2.3.0", "nvidia-cuda-runtime-cu12":
             "12.1.105"}, "torch": "2.3.0", "cuda": None, "cuda_available": False, "logging_nan_inf_filter": False}
    run = make_run(tmp_path / "probe", device="cpu", env={"env_snapshot.json": json.dumps(probe)})
    got = facts(run)
    assert got["python"] == "3.11.7" and got["torch"] == "2.3.0" and got["cuda_available"] == "False"
    assert got["logging_nan_inf_filter"] == "False" and env_gate(run)["status"] == "pass"


def test_b_pip_list_json_and_conda_list_json(tmp_path: Path) -> None:
    pip_list = [{"name": "numpy", "version": "1.26.4"}, {"name": "torch", "version": "2.3.0"},
                {"name": "python", "version": "3.11.9"}]
    run = make_run(tmp_path / "piplist", device="cpu", env={"pip_list.json": json.dumps(pip_list)})
    got = facts(run)
    assert got["torch"] == "2.3.0" and got["python"] == "3.11.9" and env_gate(run)["status"] == "pass"


def test_b_pip_freeze_with_the_interpreter_recorded(tmp_path: Path) -> None:
    run = make_run(tmp_path / "freeze", env={"pip_freeze.txt": PIP_FREEZE, "python_version.txt": "Python 3.11.7\n"})
    got = facts(run)
    assert got["torch"] == "2.3.0+cu121" and got["cuda"] == "12.1" and got["python"] == "3.11.7"
    assert env_gate(run)["status"] == "pass"


def test_b_pip_freeze_wheel_tags_name_the_interpreter(tmp_path: Path) -> None:
    run = make_run(tmp_path / "wheels", env={"requirements-lock.txt": PIP_FREEZE})
    assert facts(run)["python"] == "3.11" and env_gate(run)["status"] == "pass"


def test_b_pip_freeze_alone_lacks_the_interpreter(tmp_path: Path) -> None:
    run = make_run(tmp_path / "bare", device="cpu", env={"requirements.txt": "numpy==1.26.4\ntorch==2.3.0\n"})
    result = env_gate(run)
    assert result["status"] == "fail" and "lacks: Python version" in result["message"], result


def test_b_conda_list(tmp_path: Path) -> None:
    run = make_run(tmp_path / "conda", env={"conda_list.txt": CONDA_LIST})
    got = facts(run)
    assert (got["python"], got["torch"], got["cuda"], got["transformers"]) == ("3.11.9", "2.3.0", "12.1", "4.44.0")
    assert env_gate(run)["status"] == "pass"


def test_b_conda_env_export(tmp_path: Path) -> None:
    export = "name: train\nchannels:\n  - pytorch\ndependencies:\n  - python=3.11.9=h955ad1f_0\n" \
             "  - pytorch=2.3.0=py3.11_cuda12.1_cudnn8.9.2_0\n  - pip:\n    - transformers==4.44.0\n"
    run = make_run(tmp_path / "export", env={"environment.yml": export})
    got = facts(run)
    assert (got["python"], got["torch"], got["cuda"]) == ("3.11.9", "2.3.0", "12.1")
    assert env_gate(run)["status"] == "pass"


def test_b_collect_env(tmp_path: Path) -> None:
    run = make_run(tmp_path / "collect", env={"collect_env.txt": COLLECT_ENV})
    got = facts(run)
    assert got["python"] == "3.10.12" and got["torch"] == "2.3.0+cu121" and got["cuda"] == "12.1"
    assert got["gpu"] == "NVIDIA A100-SXM4-80GB" and got["gpu_count"] == "2" and got["driver"] == "535.161.08"
    assert env_gate(run)["status"] == "pass"


def test_b_snapshots_found_by_content(tmp_path: Path) -> None:
    for name, text in (("diagnostics.txt", COLLECT_ENV), ("setup/packages-installed.txt", CONDA_LIST),
                       ("sys/snapshot.json", json.dumps(NESTED))):
        run = make_run(tmp_path / name.replace("/", "_"), env={name: text})
        assert [f.path for f in RunEvidence(run).env] == [name]
        assert env_gate(run)["status"] == "pass", name


def test_b_other_files_are_not_read_as_snapshots(tmp_path: Path) -> None:
    run = make_run(tmp_path / "none", env={"notes.txt": "We used Python and PyTorch on an H100.\n",
                                           "results.json": json.dumps({"accuracy": 0.9, "framework": "pytorch"})})
    assert RunEvidence(run).env == []
    assert env_gate(run)["message"].startswith("no environment snapshot")


def test_b_content_sniffing_is_bounded(tmp_path: Path) -> None:
    files = [f"shard_{i:05d}.txt" for i in range(5000)] + [f"deep/a/b/env_{i}.json" for i in range(100)]
    read: list[str] = []

    def head(rel: str) -> bytes:
        read.append(rel)
        return b"not a snapshot\n"

    assert env_files(files, head) == [] and len(read) <= 64
    read.clear()
    assert find_gpu_snapshot(files, head) is None and len(read) <= 64


def test_b_nvidia_smi_query_csv(tmp_path: Path) -> None:
    run = make_run(tmp_path / "csv", env={"env_snapshot.txt": "Python: 3.11.7\nPyTorch: 2.3.0\n",
                                          "gpu_query.csv": SMI_CSV})
    ev = RunEvidence(run)
    snap = ev.gpu_snapshot
    assert snap is not None and snap.path == "gpu_query.csv" and snap.driver == "535.104.05"
    assert [(d.index, d.name, d.memory_total_mib, d.memory_used_mib, d.utilization) for d in snap.devices] == [
        (0, "NVIDIA H100 80GB HBM3", 81559, 70123, 98), (1, "NVIDIA H100 80GB HBM3", 81559, 69001, 97)]
    assert env_gate(run)["status"] == "pass"
    result = throughput(run)
    assert result["status"] == "pass" and "on 2 × NVIDIA H100" in result["message"], result


def test_b_nvidia_smi_csv_without_header_and_looped(tmp_path: Path) -> None:
    noheader = "NVIDIA A100-SXM4-80GB, 535.104.05, 81920 MiB\n"
    run = make_run(tmp_path / "noheader", env={"env_snapshot.txt": ENV_TEXT, "nvidia-smi.csv": noheader})
    snap = RunEvidence(run).gpu_snapshot
    assert snap is not None and [d.name for d in snap.devices] == ["NVIDIA A100-SXM4-80GB"]
    assert snap.driver == "535.104.05" and snap.devices[0].memory_total_mib == 81920
    looped = "timestamp, index, name, utilization.gpu [%]\n" + "".join(
        f"2026/01/01 00:00:0{t}.000, {i}, NVIDIA L4, 90 %\n" for t in range(3) for i in range(2))
    run = make_run(tmp_path / "looped", env={"env_snapshot.txt": ENV_TEXT, "smi_during_training.txt": looped})
    snap = RunEvidence(run).gpu_snapshot
    assert snap is not None and len(snap.devices) == 2


def test_b_gpu_snapshot_found_by_content(tmp_path: Path) -> None:
    run = make_run(tmp_path / "smi_content", env={"env_snapshot.txt": ENV_TEXT, "before_training.out": SMI_CSV})
    snap = RunEvidence(run).gpu_snapshot
    assert snap is not None and snap.path == "before_training.out" and len(snap.devices) == 2
    named_but_not = make_run(tmp_path / "not_smi", env={"env_snapshot.txt": ENV_TEXT,
                                                        "gpu_notes.txt": "the GPU was fast\n"})
    assert RunEvidence(named_but_not).gpu_snapshot is None


def test_b_real_folders_keep_their_environment_verdicts() -> None:
    from conftest import REAL_RUNS

    if not REAL_RUNS.is_dir():
        return
    for name, status in (("m37_v1", "fail"), ("m39_v1", "fail"), ("m40_v1", "pass"), ("m43_v1", "pass"),
                         ("m44_v1", "pass")):
        assert env_gate(REAL_RUNS / name)["status"] == status, name


def test_b_a_tpu_run_recorded_by_its_jax_backend(tmp_path: Path) -> None:
    probe = {"python": "3.11.7", "jax": "0.4.30", "jax_backend": "tpu", "jax_devices": ["TpuDevice(id=0)"]}
    run = make_run(tmp_path / "tpu", device="tpu", env={"env_snapshot.json": json.dumps(probe)}, checkpoint=False)
    assert env_gate(run)["status"] == "pass"
