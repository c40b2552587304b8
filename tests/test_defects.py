"""One folder per defect class the seeds describe, each run through the real CLI: the exit code and the
failing gate id are asserted. All start from a real tiny training run."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from conftest import verify_json


def rewrite_metrics(run: Path, change) -> None:  # type: ignore[no-untyped-def]
    """Apply `change(records) -> records` to training_output/metrics.jsonl."""
    path = run / "training_output" / "metrics.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    path.write_text("".join(json.dumps(r) + "\n" for r in change(records)))


def rewrite_lines(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    """Apply `change(lines) -> None` (in place) to a text file's lines."""
    lines = path.read_text().splitlines()
    change(lines)
    path.write_text("\n".join(lines) + "\n")


def test_good_run_passes(run_dir: Path) -> None:
    result = verify_json(run_dir)
    assert result.code == 0, result.stdout
    assert result.report["runs"][0]["verdict"] in ("pass", "warn")
    assert result.failing() == set()
    for gate_id in ("training_completed", "loss_decreased", "checkpoint_saved", "evaluation_ran",
                    "claims_consistent", "model_matches_config", "environment_captured", "no_secrets"):
        assert result.status(gate_id) == "pass", result.gate(gate_id)


def test_crash_after_claimed_completion(run_dir: Path) -> None:
    with (run_dir / "training_log.txt").open("a") as log:
        log.write("Traceback (most recent call last):\n  File \"train.py\", line 9\n"
                  "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n")
    result = verify_json(run_dir)
    assert result.code == 1
    gate = result.gate("no_false_success")
    assert gate["status"] == "fail"
    assert "claims success" in gate["message"] and "training_log.txt:" in gate["message"]


def test_template_evidence(run_dir: Path) -> None:
    (run_dir / "eval_log.txt").write_text("# Evaluation log\n# --- PASTE ACTUAL OUTPUT BELOW THIS LINE ---\n"
                                          "primary_score: X.XXXX\n")
    result = verify_json(run_dir)
    assert result.code == 1
    gate = result.gate("evidence_complete")
    assert gate["status"] == "fail" and gate["evidence"][0] == {"path": "eval_log.txt", "line": 2, "note": None}


def test_flat_loss(run_dir: Path) -> None:
    rewrite_metrics(run_dir, lambda rs: [{**r, "loss": 2.5} if "loss" in r else r for r in rs])
    result = verify_json(run_dir, "--ignore", "claims_consistent")
    assert result.code == 1
    assert result.failing() == {"loss_decreased", "no_false_success"}  # the summary claims it PASS
    assert "flat" in result.gate("loss_decreased")["message"]


def test_nan_loss(run_dir: Path) -> None:
    def nan_at_line_6(lines: list[str]) -> None:
        lines[5] = json.dumps({**json.loads(lines[5]), "loss": 0.0}).replace("0.0", "NaN", 1)

    rewrite_lines(run_dir / "training_output" / "metrics.jsonl", nan_at_line_6)
    result = verify_json(run_dir)
    gate = result.gate("loss_decreased")
    assert result.code == 1 and gate["status"] == "fail"
    assert gate["evidence"][0]["line"] == 6 and "non-finite" in gate["message"]


def test_truncated_checkpoint(run_dir: Path) -> None:
    weights = run_dir / "training_output" / "final_model" / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) - 1000])
    result = verify_json(run_dir, "--quick")
    assert result.code == 1
    gate = result.gate("checkpoint_saved")
    assert gate["status"] == "fail" and "truncated" in gate["message"]


def test_missing_shard(sharded_trained_run: Path, tmp_path: Path) -> None:
    run = Path(shutil.copytree(sharded_trained_run, tmp_path / "run"))
    final = run / "training_output" / "final_model"
    index = json.loads((final / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) >= 2, "fixture must produce a sharded checkpoint"
    assert verify_json(run).status("checkpoint_saved") == "pass"
    (final / shards[-1]).unlink()
    result = verify_json(run)
    assert result.code == 1
    gate = result.gate("checkpoint_saved")
    assert gate["status"] == "fail" and shards[-1] in gate["message"]


def test_gpu_claimed_but_not_used(run_dir: Path) -> None:
    config = run_dir / "tiny_config.yaml"
    config.write_text(config.read_text().replace("device: cpu", "device: cuda"))
    result = verify_json(run_dir)
    assert result.code == 1
    gate = result.gate("gpu_used")
    assert gate["status"] == "fail" and "CPU" in gate["message"]
    assert gate["evidence"][1]["path"] == "training_log.txt"


def test_gpu_planned_without_any_evidence(run_dir: Path) -> None:
    config = run_dir / "tiny_config.yaml"
    config.write_text(config.read_text().replace("device: cpu", "device: cuda"))
    log = run_dir / "training_log.txt"
    log.write_text(log.read_text().replace("Device: cpu", "Starting"))
    env = run_dir / "env_snapshot.json"
    env.write_text(json.dumps({k: v for k, v in json.loads(env.read_text()).items() if k != "cuda_available"}))
    result = verify_json(run_dir)
    assert result.status("gpu_used") == "fail"
    assert "no evidence" in result.gate("gpu_used")["message"]


def test_wrong_model_for_declared_config(run_dir: Path) -> None:
    config = run_dir / "tiny_config.yaml"
    config.write_text(config.read_text().replace("n_embd: 32", "n_embd: 768").replace("n_layer: 2", "n_layer: 12"))
    result = verify_json(run_dir)
    assert result.code == 1
    gate = result.gate("model_matches_config")
    assert gate["status"] == "fail" and "declared 768" in gate["message"]


def test_short_predictions(run_dir: Path) -> None:
    path = run_dir / "predictions.jsonl"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:5]))
    result = verify_json(run_dir)
    assert result.code == 1
    assert "evaluation_ran" in result.failing()
    assert "5 predictions, but 8 expected" in result.gate("evaluation_ran")["message"]


def test_malformed_predictions(run_dir: Path) -> None:
    def break_two(lines: list[str]) -> None:
        lines[2] = '{"id": 2, "prediction": ""}'
        lines[4] = "not json at all"

    rewrite_lines(run_dir / "predictions.jsonl", break_two)
    result = verify_json(run_dir)
    gate = result.gate("evaluation_ran")
    assert result.code == 1 and gate["status"] == "fail"
    assert gate["evidence"][0]["line"] == 3 and "2 of 8" in gate["message"]


def test_leaked_token(run_dir: Path) -> None:
    with (run_dir / "training_log.txt").open("a") as log:
        log.write("export HF_TOKEN=hf_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z" + "\n")
    result = verify_json(run_dir)
    gate = result.gate("no_secrets")
    assert result.code == 1 and gate["status"] == "fail"
    assert "Hugging Face token" in gate["message"]
    assert "aB3dE5fG7hJ9" not in result.stdout, "the report must not repeat the secret"


def test_token_inside_metrics_records(run_dir: Path) -> None:
    """metrics.jsonl is read by a fast path; a line it does not match is still scanned, at its own line."""
    rewrite_lines(run_dir / "training_output" / "metrics.jsonl", lambda lines: lines.insert(
        3, json.dumps({"step": 3, "hub_token": "hf_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z"})))
    gate = verify_json(run_dir).gate("no_secrets")
    assert gate["status"] == "fail"
    assert gate["evidence"][0]["path"] == "training_output/metrics.jsonl" and gate["evidence"][0]["line"] == 4


def test_generic_high_entropy_key(run_dir: Path) -> None:
    (run_dir / "env_snapshot.txt").write_text("Python: 3.11\nWANDB_API_KEY=9f8e7d6c5b4a39281706f5e4d3c2b1a0ffee1234\n")
    assert verify_json(run_dir).status("no_secrets") == "fail"


def test_claimed_total_disagrees(run_dir: Path) -> None:
    summary = run_dir / "tiny_summary.md"
    summary.write_text(summary.read_text().replace("| Total Steps | 40 |", "| Total Steps | 400 |"))
    result = verify_json(run_dir)
    assert result.code == 1
    assert {"claims_consistent", "no_false_success"} <= result.failing()
    assert "400" in result.gate("claims_consistent")["message"]


def test_claimed_loss_curve_row_disagrees(run_dir: Path) -> None:
    summary = run_dir / "tiny_summary.md"
    lines = summary.read_text().splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("| 10 |"))
    lines[row] = "| 10 | 0.01 |"
    summary.write_text("\n".join(lines) + "\n")
    result = verify_json(run_dir)
    gate = result.gate("claims_consistent")
    assert result.code == 1 and gate["status"] == "fail"
    assert gate["evidence"][0] == {"path": "tiny_summary.md", "line": row + 1, "note": None}


def _write_sums(run: Path, names: list[str]) -> None:
    lines = [f"{hashlib.sha256((run / n).read_bytes()).hexdigest()}  {n}\n" for n in names]
    (run / "SHA256SUMS").write_text("".join(lines))


def test_tampered_file_against_sha256sums(run_dir: Path) -> None:
    _write_sums(run_dir, ["training_output/metrics.jsonl", "predictions.jsonl"])
    assert verify_json(run_dir).status("evidence_complete") == "pass"
    with (run_dir / "predictions.jsonl").open("a") as f:
        f.write('{"id": 99, "prediction": "added later"}\n')
    result = verify_json(run_dir, "--ignore", "evaluation_ran")
    gate = result.gate("evidence_complete")
    assert result.code == 1 and gate["status"] == "fail" and "predictions.jsonl does not match" in gate["message"]
    assert verify_json(run_dir, "--quick", "--ignore", "evaluation_ran").status("evidence_complete") == "pass"


def test_digest_list_pointing_outside(run_dir: Path) -> None:
    (run_dir / "SHA256SUMS").write_text("0" * 64 + "  ../../etc/passwd\n" + "1" * 64 + "  /etc/hostname\n")
    result = verify_json(run_dir)
    gate = result.gate("evidence_complete")
    assert result.code == 1 and gate["status"] == "fail" and "outside the folder" in gate["message"]


def test_symlink_escaping_folder(run_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("x")
    (run_dir / "extra_log.txt").symlink_to(outside)
    assert verify_json(run_dir).status("evidence_complete") == "fail"


def test_run_killed_midway(run_dir: Path) -> None:
    rewrite_metrics(run_dir, lambda rs: [r for r in rs if "train_runtime" not in r and r["step"] <= 20])
    log = run_dir / "training_log.txt"
    lines = log.read_text().splitlines()
    eleventh_loss = [i for i, line in enumerate(lines) if "{'loss'" in line][10]
    log.write_text("\n".join(lines[:eleventh_loss]) + "\nKilled\n")  # the process died after step 20
    shutil.rmtree(run_dir / "training_output" / "checkpoints" / "checkpoint-40")
    result = verify_json(run_dir)
    assert result.code == 1
    gate = result.gate("training_completed")
    assert gate["status"] == "fail" and "planned 40 steps" in gate["message"]
    assert "no_false_success" in result.failing(), "the summary still claims completion"


def test_corrupt_metrics_lines(run_dir: Path) -> None:
    path = run_dir / "training_output" / "metrics.jsonl"
    lines = path.read_text().splitlines()
    lines.insert(3, '{"step": 7, "loss": 1.2')
    lines.insert(8, "\x00\xff garbage")
    path.write_text("\n".join(lines) + "\n")
    result = verify_json(run_dir)
    gate = result.gate("evidence_complete")
    assert result.code == 1 and gate["status"] == "fail"
    assert "2 unparseable metrics line(s)" in gate["message"] and gate["evidence"][0]["line"] == 4


def test_missing_environment_snapshot(run_dir: Path) -> None:
    (run_dir / "env_snapshot.json").unlink()
    result = verify_json(run_dir)
    assert result.code == 1 and result.failing() == {"environment_captured"}


def test_impossible_throughput(run_dir: Path) -> None:
    def faster(records):  # type: ignore[no-untyped-def]
        return [{**r, "train_samples_per_second": 5e7} if "train_runtime" in r else r for r in records]

    rewrite_metrics(run_dir, faster)
    result = verify_json(run_dir, "--ignore", "claims_consistent")
    gate = result.gate("throughput_plausible")
    assert result.code == 1 and gate["status"] == "fail" and "impossible" in gate["message"]


def test_summary_gate_table_claims_pass_where_gate_fails(run_dir: Path) -> None:
    (run_dir / "predictions.jsonl").unlink()
    result = verify_json(run_dir)
    assert {"evaluation_ran", "no_false_success"} <= result.failing()
    assert "claims evaluation_ran PASS" in result.gate("no_false_success")["message"]
