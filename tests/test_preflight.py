"""Preflight memory fit: parameter counts from shapes equal a real meta-device model's, and the seeds' vectors
hold through the real CLI — full fine-tuning Gemma-2B does not fit a 16 GiB TPU v5e chip (seed 002's OOM), while
bf16 + Adafactor + batch 1 fits a 32 GiB GPU (seed 000's RTX 5090 run). A run that will not fit never starts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import audit

from auditor.preflight import GIB, FitOptions, ModelShape, estimate, parse_size

GEMMA_2B = {"model_type": "gemma", "vocab_size": 256000, "hidden_size": 2048, "num_hidden_layers": 18,
            "num_attention_heads": 8, "num_key_value_heads": 1, "head_dim": 256, "intermediate_size": 16384}
# seed 002's memory-safe TPU config: seq 64, batch 1, bfloat16, Adafactor (it still ran out of HBM)
SEED_TPU_YAML = "model:\n" + "".join(f"  {k}: {v}\n" for k, v in GEMMA_2B.items()) + (
    "training:\n  device: tpu\n  batch_size: 1\n  max_seq_length: 64\n  dtype: bfloat16\n  optimizer: adafactor\n")


@pytest.mark.parametrize("config", [
    GEMMA_2B,
    {"model_type": "llama", "vocab_size": 1000, "hidden_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4,
     "num_key_value_heads": 2, "intermediate_size": 172, "tie_word_embeddings": False},
    {"model_type": "gpt2", "vocab_size": 256, "n_positions": 64, "n_embd": 64, "n_layer": 2, "n_head": 4},
])
def test_parameters_from_shapes_equal_a_meta_device_model(config: dict) -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    hf_config = transformers.AutoConfig.for_model(**config)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(hf_config)
    assert ModelShape.from_config(config).parameters() == sum(p.numel() for p in model.parameters())


def test_gemma_2b_is_two_and_a_half_billion() -> None:
    assert ModelShape.from_config(GEMMA_2B).parameters() == 2_506_172_416


def test_seed_vectors() -> None:
    gemma = ModelShape.from_config(GEMMA_2B)
    full = estimate(gemma, FitOptions(batch_size=8, seq_len=512, device="tpu"), 16 * GIB)
    assert full.fits is False and full.total > 30 * GIB  # fp32 + AdamW: weights, grads and moments alone 37 GiB
    seed_tpu = estimate(gemma, FitOptions(batch_size=1, seq_len=64, dtype="bf16", mixed_precision=True,
                                          optimizer="adafactor", device="tpu"), 16 * GIB)
    assert seed_tpu.fits is False, "seed 002: even seq 64, batch 1, Adafactor ran out of the 16 GiB"
    gpu = estimate(gemma, FitOptions(batch_size=1, seq_len=512, dtype="bf16", optimizer="adafactor"), 32 * GIB)
    assert gpu.fits is True and gpu.total < 16 * GIB
    assert gpu.components["logits"] == 2 * 512 * 256000 * 4


def test_parse_size() -> None:
    assert parse_size("16GiB") == 16 * GIB == parse_size("16 GB") == parse_size("16G")
    assert parse_size("1024MiB") == GIB
    with pytest.raises(ValueError):
        parse_size("sixteen")


def test_cli_preflight_vectors(tmp_path: Path) -> None:
    model = tmp_path / "config.json"
    model.write_text(json.dumps(GEMMA_2B))
    seed_config = tmp_path / "submission_tpu.yaml"
    seed_config.write_text(SEED_TPU_YAML)
    tpu = audit("preflight", "--config", seed_config, "--device", "tpu", "--device-memory", "16GiB")
    assert tpu.code == 1 and "DOES NOT FIT" in tpu.stdout and "2,506,172,416 parameters" in tpu.stdout
    assert "mixed bf16" in tpu.stdout and "lower bound" in tpu.stdout
    gpu = audit("preflight", "--model-config", model, "--device-memory", "32GiB", "--batch-size", "1",
                "--dtype", "bf16", "--optimizer", "adafactor", "--format", "json")
    assert gpu.code == 0, gpu.stdout + gpu.stderr
    data = json.loads(gpu.stdout)
    assert data["fits"] is True and data["parameters"] == 2_506_172_416 and data["device_bytes"] == 32 * GIB
    bad = audit("preflight", "--model-config", model, "--device-memory", "lots")
    assert bad.code == 2 and bad.stderr.startswith("Error: --device-memory")
    none = audit("preflight", "--device-memory", "16GiB")
    assert none.code == 2 and "no architecture to size" in none.stderr


def test_run_that_will_not_fit_never_starts(tmp_path: Path) -> None:
    config = tmp_path / "submission_tpu.yaml"
    config.write_text(SEED_TPU_YAML)
    marker = tmp_path / "started"
    args = ["run", "--runner", "command", "--config", config, "--device-memory", "16GiB"]
    code = f"open({str(marker)!r}, 'w').write('x')"
    refused = audit(*args, "--out", tmp_path / "a", "--", sys.executable, "-c", code)
    assert refused.code == 2 and refused.stderr.startswith("Error: preflight: memory:")
    assert "18.9 GiB" in refused.stderr and not marker.exists() and not (tmp_path / "a").exists()
    forced = audit(*args, "--force", "--out", tmp_path / "b", "--", sys.executable, "-c", code)
    assert marker.exists() and forced.code == 1  # launched; the folder then fails verify (no training evidence)
