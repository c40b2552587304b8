"""Issue 12's classes, each through the real CLI over a real trained folder: never a hang or a crash on hostile
files, never a write or a read outside the folder, and the numbers a metrics line can hide."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from conftest import audit

from auditor.evidence.jsonload import JsonProblem, load_json
from auditor.evidence.opener import OVERLONG_LINE, bounded_lines, open_file


def _json(run: Path, *extra: str) -> dict:
    result = audit("verify", run, "--format", "json", *extra)
    assert result.code in (0, 1), result.stderr
    assert "internal error" not in result.stdout + result.stderr
    assert result.report is not None
    return {g["id"]: g for g in result.report["runs"][0]["gates"]}


# -- never hang, never crash ---------------------------------------------------------------------------------
@pytest.mark.parametrize("rel", ["predictions.jsonl", "gpu_samples.jsonl", "env_snapshot.json",
                                 "gpu_snapshot.json", "trainer_state.json", "rank_0.json", "results.json",
                                 "training_output/final_model/model.safetensors"])
def test_a_fifo_in_place_of_any_evidence_file_is_reported_not_waited_on(run_dir: Path, rel: str) -> None:
    """Each of these readers used to open the path itself and block forever on a FIFO (verify hung)."""
    path = run_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    os.mkfifo(path)
    gates = _json(run_dir)
    complete = gates["evidence_complete"]
    assert complete["status"] == "fail" and rel in complete["message"] and "not a regular file" in complete["message"]


def test_json_nested_100000_deep_is_a_manifest_problem_not_a_crash(run_dir: Path) -> None:
    (run_dir / "run_manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    (run_dir / "stray.json").write_text("{\"a\":" * 100_000 + "1" + "}" * 100_000)
    gates = _json(run_dir)
    assert gates["manifest_valid"]["status"] == "fail"
    assert "nested too deeply" in gates["manifest_valid"]["message"]


def test_a_manifest_bigger_than_the_text_limit_is_read_as_json(run_dir: Path) -> None:
    """A valid 80 MB manifest was "not valid JSON": it was cut at the 64 MiB text limit."""
    manifest = {"run_id": "tiny", "padding": "x" * (80 << 20)}
    (run_dir / "run_manifest.json").write_text(json.dumps(manifest))
    gates = _json(run_dir)
    assert "not valid JSON" not in gates["manifest_valid"]["message"]


def test_loader_names_each_hostile_json() -> None:
    for text, why in (("[" * 50_000, "nested too deeply"), ("1" * 5000, "not usable JSON"),
                      ("{\"a\": 1.2.3-4e}", "not valid JSON"), (b"\xff\xfe\x00", "not valid JSON")):
        with pytest.raises(JsonProblem, match=why):
            load_json(text)


@pytest.mark.parametrize("line, reason", [
    ('{"step": 99999999999999999999999, "loss": 0.5}', "beyond a 64-bit step counter"),
    ('{"step": 1e30, "loss": 0.5}', "beyond a 64-bit step counter"),
    ('{"step": 7, "loss": ' + "9" * 400 + "}", "loss is not a number"),
    ('{"step": 7, "loss": 1.2.3-4e}', "not valid JSON"),
])
def test_numbers_no_counter_or_float_holds_are_bad_lines(run_dir: Path, line: str, reason: str) -> None:
    with (run_dir / "metrics.jsonl").open("a") as handle:
        handle.write(line + "\n")
    complete = _json(run_dir)["evidence_complete"]
    assert complete["status"] == "fail" and reason in complete["message"], complete["message"]


def test_an_overflowing_loss_literal_in_any_source_fails_loss_decreased(run_dir: Path) -> None:
    """`1e400` parses as inf: a second source's non-finite loss used to pass because only the longest source
    was checked."""
    (run_dir / "extra_metrics").mkdir()
    (run_dir / "extra_metrics" / "metrics.jsonl").write_text('{"step": 1, "loss": 1e400}\n')
    loss = _json(run_dir)["loss_decreased"]
    assert loss["status"] == "fail" and "non-finite loss" in loss["message"]


def _metrics(run: Path, grads: list[str]) -> None:
    lines = [f'{{"step": {i + 1}, "loss": {2.0 - i * 0.01:.3f}, "grad_norm": {g}, "epoch": {i / 100:.2f}}}'
             for i, g in enumerate(grads)]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def test_grad_norm_overflow_literal_at_the_end_fails(run_dir: Path) -> None:
    """The fast metrics path did not read grad_norm: `1e999` (inf) was never seen."""
    _metrics(run_dir, ["1.5"] * 99 + ["1e999"])
    loss = _json(run_dir)["loss_decreased"]
    assert loss["status"] == "fail" and "non-finite grad_norm" in loss["message"]


def test_fp16_overflow_steps_followed_by_finite_gradients_warn(run_dir: Path) -> None:
    """A loss scaler skips a few overflowing steps by design: warn, say what was tolerated, never fail."""
    _metrics(run_dir, ["Infinity", "Infinity"] + ["1.5"] * 98)
    loss = _json(run_dir)["loss_decreased"]
    assert loss["status"] == "warn" and "tolerated 2 non-finite grad_norm" in loss["message"]


def test_an_overlong_line_is_skipped_to_its_end(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"a": 1}\n' + b"x" * 5000 + b"\n" + b'{"b": 2}\n')
    with open_file(path) as handle:
        lines = list(bounded_lines(handle, limit=1000))
    assert lines == [b'{"a": 1}\n', OVERLONG_LINE + b"\n", b'{"b": 2}\n']


def test_evidence_text_is_printed_literally(run_dir: Path) -> None:
    """Rich read `[/tmp/x]` and `[bold]` in a gate message as markup: swallowed or a crash."""
    with (run_dir / "training_log.txt").open("a") as handle:
        handle.write("[rank0]: Traceback (most recent call last): [/tmp/x] [bold]y[/bold]\n")
    quoted = _json(run_dir)["no_false_success"]["message"]
    assert "[rank0]: Traceback (most recent call last): [/tmp/x] [bold]y[/bold]" in quoted
    result = audit("verify", run_dir)
    assert result.code == 1 and "internal error" not in result.stderr
    flat = "".join(result.stdout.replace("│", "").split())
    assert "[rank0]:Traceback(mostrecentcalllast):[/tmp/x][bold]y[/bold]" in flat


def test_an_unwritable_step_summary_warns_and_keeps_the_verdict(run_dir: Path, tmp_path: Path) -> None:
    result = audit("verify", run_dir, "--format", "github",
                   env={"GITHUB_STEP_SUMMARY": str(tmp_path / "missing" / "summary.md")})
    assert result.code in (0, 1) and "internal error" not in result.stderr
    assert result.stderr.startswith("Warning: cannot append the job summary")


# -- never write or read outside -----------------------------------------------------------------------------
def test_verify_output_inside_the_audited_folder_is_refused(run_dir: Path) -> None:
    before = sorted(p.name for p in run_dir.iterdir())
    result = audit("verify", run_dir, "--format", "json", "--output", run_dir / "report.json")
    assert result.code == 2 and result.stderr.startswith("Error: --output") and "inside the audited" in result.stderr
    assert sorted(p.name for p in run_dir.iterdir()) == before


def test_verify_output_replaces_a_link_instead_of_writing_through_it(run_dir: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "report.json"
    link.symlink_to(victim)
    audit("verify", run_dir, "--format", "json", "--output", link)
    assert victim.read_text() == "keep me" and not link.is_symlink() and link.read_text().startswith("{")


def _command_run(tmp_path: Path) -> Path:
    folder = tmp_path / "cmd_run"
    script = "import sys\nfor i in range(1, 41):\n    print(f'step {i}/40 loss {3.0 - i * 0.05:.3f}')\n"
    result = audit("run", "--runner", "command", "--out", folder, "--", sys.executable, "-c", script)
    assert (folder / "run_manifest.json").is_file(), result.stdout[-2000:] + result.stderr
    return folder


def test_summary_name_never_comes_from_the_manifest(tmp_path: Path) -> None:
    folder = _command_run(tmp_path)
    manifest = json.loads((folder / "run_manifest.json").read_text())
    for run_id in ("../escaped", str(tmp_path / "abs"), "new_dir/x"):
        manifest["run_id"] = run_id
        (folder / "run_manifest.json").write_text(json.dumps(manifest))
        result = audit("summary", folder)
        assert result.code in (0, 1), result.stderr
    assert not (tmp_path / "escaped_summary.md").exists() and not (tmp_path / "abs_summary.md").exists()
    assert not (folder / "new_dir").exists() and (folder / "cmd_run_summary.md").is_file()


def test_summary_never_writes_through_a_linked_summary(tmp_path: Path) -> None:
    folder = _command_run(tmp_path)
    victim = tmp_path / "victim.md"
    victim.write_text("keep me")
    (folder / "cmd_run_summary.md").symlink_to(victim)
    result = audit("summary", folder)
    assert result.code == 2 and result.stderr.startswith("Error:") and "is a link" in result.stderr
    assert victim.read_text() == "keep me"


def test_reproduce_shows_a_recorded_command_and_needs_yes(tmp_path: Path) -> None:
    folder = _command_run(tmp_path)
    marker = tmp_path / "ran.txt"
    manifest = json.loads((folder / "run_manifest.json").read_text())
    manifest["command"] = [sys.executable, "-c", f"open({str(marker)!r}, 'w').write('x')"]
    (folder / "run_manifest.json").write_text(json.dumps(manifest))
    result = audit("reproduce", folder, "--out", tmp_path / "again")
    assert result.code == 2 and "open(" in result.stderr and "--yes" in result.stderr.splitlines()[-1]
    assert not marker.exists() and not (tmp_path / "again").exists()
    confirmed = audit("reproduce", folder, "--out", tmp_path / "again", "--yes")
    assert confirmed.code in (0, 1) and marker.exists()


def test_reproduce_refuses_a_config_from_outside_the_folder(tmp_path: Path) -> None:
    folder = _command_run(tmp_path)
    outside = tmp_path / "outside.yaml"
    outside.write_text("training:\n  max_steps: 5\n")
    manifest = json.loads((folder / "run_manifest.json").read_text())
    for path in ("../outside.yaml", str(outside)):
        manifest["config_path"] = path
        (folder / "run_manifest.json").write_text(json.dumps(manifest))
        result = audit("reproduce", folder, "--out", tmp_path / "again", "--yes")
        assert result.code == 2 and "leads outside the run folder" in result.stderr, result.stderr
    (folder / "cfg.yaml").symlink_to(outside)
    manifest["config_path"] = "cfg.yaml"
    (folder / "run_manifest.json").write_text(json.dumps(manifest))
    result = audit("reproduce", folder, "--out", tmp_path / "again", "--yes")
    assert result.code == 2 and "leads outside the run folder" in result.stderr
    shutil.rmtree(tmp_path / "again", ignore_errors=True)


# -- hidden text ---------------------------------------------------------------------------------------------
TOKEN = "hf_" + "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE3fG"
TRACE = "Traceback (most recent call last):"


@pytest.mark.parametrize("rel, data", [
    ("notes.txt", b"\xef\xbb\xbf" + f"HF_TOKEN={TOKEN}\n".encode()),
    ("notes.txt", b"\x00\x00\x00\x00" + f"token {TOKEN}\n".encode()),
    ("analysis.ipynb", json.dumps({"cells": [{"cell_type": "code", "source": [f"login('{TOKEN}')"],
                                              "outputs": []}]}).encode()),
    ("extra.json", json.dumps({"t": TOKEN}).replace("hf_", "\\u0068f_").encode()),
    ("slurm-1234.err", f"export HF_TOKEN={TOKEN}\n".encode()),
])
def test_a_secret_is_found_however_the_file_hides_it(run_dir: Path, rel: str, data: bytes) -> None:
    (run_dir / rel).write_bytes(data)
    secrets = _json(run_dir)["no_secrets"]
    assert secrets["status"] == "fail" and rel in secrets["message"]


@pytest.mark.parametrize("rel, data", [
    ("stdout.txt", b"\x00\x00" + f"{TRACE}\nRuntimeError: boom\n".encode()),
    ("slurm-1234.out", f"step 1\n{TRACE}\n  File x\nRuntimeError: CUDA error\n".encode()),
    ("train.err", f"{TRACE}\nValueError: x\n".encode()),
    ("result.json", json.dumps({"error": f"{TRACE}\nRuntimeError: x"}).replace("Traceback", "\\u0054raceback")
     .encode()),
    ("output.txt", f"{TRACE}\nRuntimeError: x\n".encode()),
])
def test_a_traceback_in_any_text_file_contradicts_a_success_claim(run_dir: Path, rel: str, data: bytes) -> None:
    """Only files named *log* were read for failures: a crash in stdout.txt or slurm-N.out passed."""
    (run_dir / rel).write_bytes(data)
    nfs = _json(run_dir)["no_false_success"]
    assert nfs["status"] == "fail" and f"{rel}:" in nfs["message"]


def test_a_secret_and_a_traceback_past_the_text_limit_are_seen(run_dir: Path) -> None:
    """The scans read the decoded first 64 MiB: whatever came after was never looked at."""
    with (run_dir / "training_log.txt").open("a") as handle:
        line = "x" * 1023 + "\n"
        for _ in range(66 * 1024):
            handle.write(line)
        handle.write(f"HF_TOKEN={TOKEN}\n{TRACE}\nRuntimeError: late\n")
    gates = _json(run_dir)
    assert gates["no_secrets"]["status"] == "fail" and "training_log.txt:" in gates["no_secrets"]["message"]
    assert gates["no_false_success"]["status"] == "fail" and TRACE[:20] in gates["no_false_success"]["message"]


# -- never a false alarm -------------------------------------------------------------------------------------
def test_a_failure_the_run_recovered_from_is_said_not_failed(run_dir: Path) -> None:
    """An OOM on a first attempt, then the launcher's retry trains to the end: not a failed run."""
    log = run_dir / "training_log.txt"
    lines = log.read_text().splitlines()
    first_loss = next(i for i, line in enumerate(lines) if "'loss'" in line)
    crash = [TRACE, '  File "train.py", line 3', "torch.OutOfMemoryError: CUDA out of memory.",
             "Retrying with a smaller micro-batch (attempt 2 of 3)"]
    log.write_text("\n".join(lines[:first_loss] + crash + lines[first_loss:]) + "\n")
    gates = _json(run_dir)
    assert gates["no_false_success"]["status"] == "pass", gates["no_false_success"]["message"]
    assert "recovered from training_log.txt:" in gates["no_false_success"]["message"]
    assert gates["training_completed"]["status"] == "pass"


def test_a_failure_after_the_last_training_record_still_fails(run_dir: Path) -> None:
    with (run_dir / "training_log.txt").open("a") as handle:
        handle.write(f"{TRACE}\ntorch.OutOfMemoryError: CUDA out of memory.\n")
    assert _json(run_dir)["no_false_success"]["status"] == "fail"


# -- digest games --------------------------------------------------------------------------------------------
def test_every_digest_source_must_agree(tmp_path: Path) -> None:
    """A changed file with a fresh SHA256SUMS beside a manifest that still records the old digest passed: the
    SHA256SUMS entry won and the manifest's was never checked."""
    import hashlib

    folder = _command_run(tmp_path)
    log = folder / "training_log.txt"
    log.write_text(log.read_text().replace("loss 2.950", "loss 2.000"))
    (folder / "SHA256SUMS").write_text(f"{hashlib.sha256(log.read_bytes()).hexdigest()}  training_log.txt\n")
    complete = _json(folder)["evidence_complete"]
    # the first problem named is SHA256SUMS itself (written after sealing); the digest mismatch refers to the log
    assert complete["status"] == "fail" and "training_log.txt" in [e["path"] for e in complete["evidence"]]


def test_a_removed_manifest_does_not_buy_the_seed_style_reading(tmp_path: Path) -> None:
    folder = _command_run(tmp_path)
    (folder / "run_manifest.json").unlink()
    manifest = _json(folder)["manifest_valid"]
    assert manifest["status"] == "fail" and "env_snapshot.json was written by `audit run`" in manifest["message"]


def test_digests_ids_and_masked_values_are_not_credentials(run_dir: Path) -> None:
    (run_dir / "cache_info.txt").write_text(
        "cache_key = sha256:3f2a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a\n"
        "run_token: 123e4567-e89b-12d3-a456-426614174000\n"
        "HF_TOKEN=hf_****************************************\n"
        "OPENAI_API_KEY=${OPENAI_API_KEY_FROM_VAULT_STORE}\n"
        "dataset_key: train/shard-00001-of-00008.parquet\n"
        "state_key = model.layers.0.self_attn.q_proj.weight\n")
    assert _json(run_dir)["no_secrets"]["status"] == "pass"


@pytest.mark.parametrize("line", ["WANDB_API_KEY=9f8e7d6c5b4a39281706f5e4d3c2b1a0ffee1234",
                                  "key = AIza" + "SyD4x9Kq2Lm7Np3Rs8Tv1Wx6Yz0Ab5Cd2Ef",
                                  "GITLAB=glpat-" + "aB3dE5gH7jK9mN1pQ3sT"])
def test_provider_formats_and_named_keys_are_credentials(run_dir: Path, line: str) -> None:
    (run_dir / "notes.txt").write_text(line + "\n")
    assert _json(run_dir)["no_secrets"]["status"] == "fail"


def test_an_analysis_notebook_beside_the_training_does_not_decide_its_end(run_dir: Path) -> None:
    """A notebook with a cell never run failed training_completed for a run it did not record."""
    (run_dir / "analysis.ipynb").write_text(json.dumps({"cells": [{"cell_type": "code", "source": ["plot()"],
                                                                    "outputs": [], "execution_count": None}],
                                                         "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    assert _json(run_dir)["training_completed"]["status"] == "pass"


def test_unreadable_files_and_folders_are_named_not_skipped(run_dir: Path,
                                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    """PermissionError ended verify in an internal error, then unreadable files were skipped in silence (a pass
    for no_secrets over the files it could read). As root the check runs in process under uid 65534."""
    from auditor.render import RENDERERS, render
    from auditor.verify import VerifyOptions, execute

    locked = run_dir / "locked"
    locked.mkdir()
    (locked / "notes.txt").write_text("hidden\n")
    for path in (run_dir / "training_log.txt", locked):
        path.chmod(0)
    for path in [run_dir, *run_dir.rglob("*")]:
        if path not in (run_dir / "training_log.txt", locked) and not path.is_relative_to(locked):
            path.chmod(0o755 if path.is_dir() else 0o644)
    base = tmp_path_factory.getbasetemp().parent  # pytest's private pytest-of-<user>: uid 65534 must pass it
    for parent in run_dir.parents:
        if not parent.is_relative_to(base):
            break
        parent.chmod(0o755)
    execute(VerifyOptions(run_dirs=[run_dir]))  # everything a verify imports is imported as the test's user
    root = os.geteuid() == 0
    if root:
        os.setegid(65534)
        os.seteuid(65534)
    try:
        report = execute(VerifyOptions(run_dirs=[run_dir]))
    finally:
        if root:
            os.seteuid(0)
            os.setegid(0)
    for fmt in RENDERERS:
        render(fmt, report)
    gates = {g.id: g for g in report.runs[0].gates}
    assert not [g for g in gates.values() if "internal error" in g.message]
    complete = gates["evidence_complete"].message
    assert gates["evidence_complete"].status == "fail" and "Permission denied" in complete
    paths = [e.path for e in gates["evidence_complete"].evidence]
    assert "training_log.txt" in paths and "locked" in paths
    assert gates["no_secrets"].status == "warn" and "not scanned" in gates["no_secrets"].message
    for path in (run_dir / "training_log.txt", locked):
        path.chmod(0o755)


def test_a_running_runs_manifest_is_not_a_template(tmp_path: Path) -> None:
    """A manifest that validates holds nulls where a run has no value yet: the null-share rule called the
    manifest of a running run a template."""
    import subprocess
    import time

    folder, copy = tmp_path / "running", tmp_path / "copy"
    proc = subprocess.Popen([sys.executable, "-m", "auditor", "run", "--runner", "command", "--out", str(folder), "--",
                             sys.executable, "-c", "import time; print('step 1/2 loss 1.0', flush=True); "
                             "time.sleep(8)"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):  # the folder is live: a copy that races a write is taken again
            manifest = folder / "run_manifest.json"
            try:
                if manifest.is_file() and '"running"' in manifest.read_text():
                    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns(".audit.lock", ".*.tmp"))
                    if '"running"' in (copy / "run_manifest.json").read_text():
                        break
            except (OSError, shutil.Error):
                pass
            shutil.rmtree(copy, ignore_errors=True)
            time.sleep(0.05)
    finally:
        proc.wait(timeout=120)
    assert (copy / "run_manifest.json").is_file(), "the run was never seen running"
    gates = _json(copy)
    assert gates["manifest_valid"]["status"] == "pass", gates["manifest_valid"]["message"]
    assert "is a template" not in gates["evidence_complete"]["message"], gates["evidence_complete"]["message"]


def test_a_model_name_the_checkpoint_contradicts_fails(run_dir: Path) -> None:
    config = run_dir / "tiny_config.yaml"
    config.write_text(config.read_text().replace("name: tiny-gpt2-bytes", "name: meta-llama/Llama-2-7b-hf"))
    gate = _json(run_dir)["model_matches_config"]
    assert gate["status"] == "fail" and "7" in gate["message"] and "34,688" in gate["message"]
