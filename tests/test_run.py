"""`audit run` end to end through the real CLI: a real reference training, and children that raise, kill
themselves, are stopped, or lose their wrapper. Each leaves a manifest that validates and says what happened."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import ROOT, audit, verify_json

from auditor.evidence.digests import sha256_file
from auditor.schemas import validation_errors


def manifest(folder: Path) -> dict:
    data: dict = json.loads((folder / "run_manifest.json").read_text())
    assert validation_errors("run_manifest", data) == [], "the manifest must validate against the published schema"
    return data


def script(tmp_path: Path, body: str) -> Path:
    """A training script that logs through auditor.runtime before doing `body`."""
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent("""\
        import os, signal, sys, time
        from pathlib import Path
        from auditor import runtime
        Path(os.environ["PID_FILE"]).write_text(str(os.getpid())) if "PID_FILE" in os.environ else None
        for step in range(1, 6):
            runtime.log_metrics(step, loss=3.0 / step)
            print(f"step {step}", flush=True)
        """) + textwrap.dedent(body))
    return path


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str]:
    """The README's first command, on CPU: the built-in pytorch reference trainer."""
    folder = tmp_path_factory.mktemp("runs") / "ref_v1"
    result = audit("run", "--runner", "pytorch", "--device", "cpu", "--out", folder)
    return folder, result.code, result.stdout + result.stderr


def test_reference_run_verifies(reference_run: tuple[Path, int, str]) -> None:
    folder, code, output = reference_run
    assert code == 0, output
    data = manifest(folder)
    assert data["outcome"]["status"] == "succeeded" and data["outcome"]["exit_code"] == 0
    assert data["plan"]["max_steps"] == 300 and data["plan"]["device"] == "cpu"
    for artifact in data["artifacts"]:  # every artifact digest is the file's real digest
        assert sha256_file(folder / artifact["path"]) == artifact["sha256"]
    roles = {a["role"] for a in data["artifacts"]}
    assert {"metrics", "checkpoint", "log", "predictions", "env"} <= roles
    env = json.loads((folder / "env_snapshot.json").read_text())
    assert env["torch"] and env["cuda_available"] is False and env["python"]
    log = (folder / "training_log.txt").read_text()
    assert "step 300/300" in log and "device: cpu" in log
    result = verify_json(folder)
    assert result.code == 0 and result.failing() == set()
    for gate_id in ("training_completed", "loss_decreased", "checkpoint_saved", "evaluation_ran",
                    "model_matches_config", "environment_captured", "evidence_complete", "throughput_plausible"):
        assert result.status(gate_id) == "pass", result.gate(gate_id)


def test_reference_run_tampered_after_capture_fails(reference_run: tuple[Path, int, str], tmp_path: Path) -> None:
    import shutil

    folder = Path(shutil.copytree(reference_run[0], tmp_path / "copy"))
    with (folder / "predictions.jsonl").open("a") as f:
        f.write(json.dumps({"id": 99, "prediction": "added later"}) + "\n")
    result = verify_json(folder)
    assert result.code == 1 and result.status("evidence_complete") == "fail"


def test_child_that_raises(tmp_path: Path) -> None:
    train = script(tmp_path, 'raise RuntimeError("CUDA out of memory")\n')
    out = tmp_path / "run"
    result = audit("run", "--runner", "command", "--out", out, "--", sys.executable, train)
    assert result.code == 1
    data = manifest(out)
    assert data["outcome"]["status"] == "failed" and data["outcome"]["exit_code"] == 1
    assert "RuntimeError: CUDA out of memory" in (out / "training_log.txt").read_text()
    assert verify_json(out).status("training_completed") == "fail"


def test_child_killed_by_sigkill(tmp_path: Path) -> None:
    train = script(tmp_path, "os.kill(os.getpid(), signal.SIGKILL)\n")
    out = tmp_path / "run"
    result = audit("run", "--runner", "command", "--out", out, "--", sys.executable, train)
    assert result.code == 1
    outcome = manifest(out)["outcome"]
    assert (outcome["status"], outcome["signal"], outcome["exit_code"]) == ("killed", "SIGKILL", None)
    gate = verify_json(out).gate("training_completed")
    assert gate["status"] == "fail" and "killed" in gate["message"] and "SIGKILL" in gate["message"]


def _start(tmp_path: Path, body: str) -> tuple[subprocess.Popen[str], Path, Path]:
    train = script(tmp_path, body)
    out, pid_file = tmp_path / "run", tmp_path / "child.pid"
    wrapper = subprocess.Popen([sys.executable, "-m", "auditor", "run", "--runner", "command", "--out", str(out),
                                "--", sys.executable, str(train)], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, env={**os.environ, "PID_FILE": str(pid_file)})
    deadline = time.monotonic() + 60
    while not (out / "training_output" / "metrics.jsonl").exists() or not pid_file.exists():
        assert time.monotonic() < deadline and wrapper.poll() is None, "the child never started logging"
        time.sleep(0.05)
    time.sleep(0.3)
    return wrapper, out, pid_file


def test_sigterm_to_the_wrapper_is_forwarded(tmp_path: Path) -> None:
    wrapper, out, _ = _start(tmp_path, "time.sleep(60)\n")
    wrapper.send_signal(signal.SIGTERM)
    output, _ = wrapper.communicate(timeout=60)
    assert wrapper.returncode == 1, output
    outcome = manifest(out)["outcome"]
    assert (outcome["status"], outcome["signal"]) == ("interrupted", "SIGTERM")
    assert verify_json(out).status("training_completed") == "fail"


def test_wrapper_killed_mid_run_is_abandoned(tmp_path: Path) -> None:
    wrapper, out, pid_file = _start(tmp_path, "time.sleep(60)\n")
    wrapper.kill()
    wrapper.wait(timeout=30)
    try:
        data = manifest(out)
        assert data["outcome"]["status"] == "running"
        gate = verify_json(out).gate("training_completed")
        assert gate["status"] == "fail" and "abandoned" in gate["message"]
    finally:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_folder_in_use_or_not_empty_is_refused(tmp_path: Path) -> None:
    used = tmp_path / "used"
    used.mkdir()
    (used / "training_log.txt").write_text("an earlier run\n")
    result = audit("run", "--runner", "command", "--out", used, "--", sys.executable, "-c", "pass")
    assert result.code == 2 and result.stderr.startswith("Error:") and "not empty" in result.stderr
    assert (used / "training_log.txt").read_text() == "an earlier run\n"


@pytest.mark.parametrize(("args", "says"), [
    (["--runner", "nope"], "unknown runner"),
    (["--runner", "command"], "needs the command"),
    (["--runner", "command", "--", "/no/such/program"], "cannot start"),
    (["--runner", "pytorch", "--device", "tpu"], "TPUs need --runner jax"),
    (["--runner", "command", "--nproc-per-node", "2", "--", "true"], "needs a Python command"),
])
def test_runs_that_cannot_start_exit_2(tmp_path: Path, args: list[str], says: str) -> None:
    result = audit("run", "--out", tmp_path / "run", *args)
    assert result.code == 2 and result.stderr.startswith("Error:") and says in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_secrets_are_redacted_from_command_and_env(tmp_path: Path) -> None:
    token = "hf_" + "Zy8Xw7Vu6Ts5Rq4Po3Nm2Lk1Jh0GfEdCbA9"
    train = script(tmp_path, "")
    out = tmp_path / "run"
    result = audit("run", "--runner", "command", "--out", out, "--", sys.executable, train, "--hub-token", token,
                   env={"HF_TOKEN": token, "WANDB_API_KEY": "abc"})
    assert result.code in (0, 1)
    text = (out / "run_manifest.json").read_text() + (out / "env_snapshot.json").read_text()
    assert token not in text and "[REDACTED]" in text
    env = json.loads((out / "env_snapshot.json").read_text())["env"]
    assert env["HF_TOKEN"] == "[REDACTED]"


def test_committed_example_folder_verifies() -> None:
    """submission_runs/example_cpu_v1 was made by `audit run --runner pytorch --device cpu --name example_cpu_v1`."""
    folder = ROOT / "submission_runs" / "example_cpu_v1"
    data = manifest(folder)
    assert data["runner"] == "pytorch" and data["outcome"]["status"] == "succeeded"
    result = verify_json(folder, "--strict")
    assert result.code == 0, result.stdout
    assert result.status("training_completed") == "pass" and result.status("evidence_complete") == "pass"


def test_metrics_regex_reads_the_log(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("training:\n  max_steps: 20\n")
    code = "for s in range(1, 21): print(f'it {s} | loss={3.0 / s:.4f} | tok/s 812.5', flush=True)"
    folder = tmp_path / "run"
    result = audit("run", "--runner", "command", "--config", config, "--out", folder,
                   "--metrics-regex", r"it (?P<step>\d+) \| loss=(?P<loss>[0-9.]+) \| tok/s (?P<tokens_per_s>[0-9.]+)",
                   "--", sys.executable, "-c", code)
    records = [json.loads(line) for line in (folder / "training_output" / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 20 and records[3] == {"step": 4, "loss": 0.75, "tokens_per_s": 812.5}
    report = verify_json(folder)
    assert report.status("training_completed") == "pass" and report.status("loss_decreased") == "pass", result.stdout
    bad = audit("run", "--runner", "command", "--metrics-regex", "loss (", "--out", tmp_path / "x", "--", "true")
    assert bad.code == 2 and "not a valid regex" in bad.stderr


def test_status_line_on_a_terminal(tmp_path: Path) -> None:
    """Through a real pseudo-terminal: the status line shows the step of the plan and the last loss."""
    import pty

    config = tmp_path / "config.yaml"
    config.write_text("training:\n  max_steps: 5\n")
    train = script(tmp_path, "time.sleep(1.5)\n")
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "auditor", "run", "--runner", "command", "--config", str(config),
                             "--out", str(tmp_path / "run"), "--", sys.executable, str(train)],
                            stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, close_fds=True)
    os.close(slave)
    chunks = []
    with contextlib.suppress(OSError):  # EIO once the child side closes
        while data := os.read(master, 65536):
            chunks.append(data)
    os.close(master)
    proc.wait(timeout=120)
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert "step 5/5 · loss 0.6000" in screen and "\x1b[2K" in screen
