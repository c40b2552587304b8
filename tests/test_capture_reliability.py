"""`audit run` when the run misbehaves around it, with real processes through the real CLI: a grandchild that
keeps the output open, a disk that fills, Ctrl-C delivered twice or to both process groups, verify while the
run still writes the folder, and evidence added after the folder was sealed."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, audit, verify_json

from auditor.schemas import validation_errors

AUDIT = [sys.executable, "-m", "auditor"]


def manifest(folder: Path) -> dict:
    data: dict = json.loads((folder / "run_manifest.json").read_text())
    assert validation_errors("run_manifest", data) == [], "the manifest must validate against the published schema"
    return data


def alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie nobody reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_gone(pid: int, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


def kill_quietly(pid_file: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(pid_file.read_text()), signal.SIGKILL)


def write_script(tmp_path: Path, body: str, name: str = "train.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


# -- 1. a left-behind process holding the output ----------------------------------------------------------------
needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="leftovers are named from /proc")


@needs_proc
def test_background_grandchild_holding_stdout_does_not_hang_the_run(tmp_path: Path) -> None:
    out, pid_file = tmp_path / "run", tmp_path / "sleeper.pid"
    try:
        done = subprocess.run([*AUDIT, "run", "--runner", "command", "--out", str(out), "--", "sh", "-c",
                               f"sleep 300 & echo $! > {pid_file}; echo done"],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
        outcome = manifest(out)["outcome"]
        assert (outcome["status"], outcome["exit_code"]) == ("succeeded", 0), done.stderr
        sleeper = int(pid_file.read_text())
        (left,) = outcome["leftover_processes"]
        assert left["pid"] == sleeper and left["command"] == "sleep 300" and left["held_output"] is True
        assert "1 process(es) of the training still ran after it ended" in done.stderr
        assert wait_gone(sleeper), "the left-behind process is sent SIGTERM"
        assert "done" in (out / "training_log.txt").read_text()
    finally:
        kill_quietly(pid_file)


@needs_proc
def test_daemonised_worker_outside_the_group_is_found_by_the_pipe_it_holds(tmp_path: Path) -> None:
    out, pid_file = tmp_path / "run", tmp_path / "worker.pid"
    train = write_script(tmp_path, f"""\
        import os, sys, time
        if os.fork() == 0:
            os.setsid()  # a daemonised worker: its own session, still writing to the training's stdout
            open({str(pid_file)!r}, "w").write(str(os.getpid()))
            print("worker up", flush=True)
            time.sleep(300)
            sys.exit(0)
        while not os.path.exists({str(pid_file)!r}):
            time.sleep(0.01)
        print("main done", flush=True)
        """)
    try:
        done = subprocess.run([*AUDIT, "run", "--runner", "command", "--out", str(out), "--", sys.executable,
                               str(train)], cwd=ROOT, capture_output=True, text=True, timeout=120)
        outcome = manifest(out)["outcome"]
        assert outcome["status"] == "succeeded", done.stderr
        worker = int(pid_file.read_text())
        assert [(p["pid"], p["held_output"]) for p in outcome["leftover_processes"]] == [(worker, True)]
        assert wait_gone(worker)
    finally:
        kill_quietly(pid_file)


def test_a_run_without_leftovers_records_none(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = audit("run", "--runner", "command", "--out", out, "--", sys.executable, "-c", "print('hello')")
    assert manifest(out)["outcome"]["leftover_processes"] == [], result.stderr
    assert "still ran after it ended" not in result.stderr


# -- 2. the disk fills during the run ---------------------------------------------------------------------------
CHATTY = "import sys\nfor i in range(20000):\n    print('step', i, 'x' * 200, flush=True)\n"


def assert_recorded_failure(out: Path, done: subprocess.CompletedProcess[str], says: str) -> None:
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: ") and says in lines[-1] and "Traceback" not in done.stderr, done.stderr
    assert "training_log.txt" in lines[-1] and "cannot start" not in lines[-1], "the message names what failed"
    assert "internal error" not in done.stderr
    outcome = manifest(out)["outcome"]
    assert outcome["status"] == "failed" and outcome["ended_at"], outcome
    assert "training_log.txt" in outcome["reason"] and says in outcome["reason"]
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [], "no temp file and no lock are left"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (needs root and a mount namespace that allows it; skipped elsewhere)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    tool = shutil.which("mount")
    if os.geteuid() != 0 or tool is None:
        pytest.skip("mounting a small tmpfs needs root")
    made = subprocess.run([tool, "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def run_outside_git(tmp_path: Path, out: Path, **options: object) -> subprocess.CompletedProcess[str]:
    """`audit run` of CHATTY from a working directory outside the repository (no git diff to write first)."""
    work = tmp_path / "work"
    work.mkdir()
    return subprocess.run([*AUDIT, "run", "--runner", "command", "--out", str(out), "--", sys.executable, "-c",
                           CHATTY], cwd=work, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, **options)  # type: ignore[call-overload]


def test_disk_full_during_the_run_is_recorded_as_failed(small_disk: Path, tmp_path: Path) -> None:
    out = small_disk / "run"
    done = run_outside_git(tmp_path, out)
    assert_recorded_failure(out, done, "No space left on device")


def test_log_write_failure_is_recorded_as_failed(tmp_path: Path) -> None:
    """The same path without root: a file-size limit makes the kernel refuse the log's growth (EFBIG)."""
    out = tmp_path / "run"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))

    done = run_outside_git(tmp_path, out, preexec_fn=limit)
    assert_recorded_failure(out, done, "File too large")
    assert 0 < (out / "training_log.txt").stat().st_size <= 300_000


# -- 3. Ctrl-C --------------------------------------------------------------------------------------------------
def start_wrapper(tmp_path: Path, body: str) -> tuple[subprocess.Popen[str], Path, int]:
    """`audit run` in its own session (as a terminal's foreground job), once its child has printed `ready PID`."""
    train = write_script(tmp_path, body)
    out = tmp_path / "run"
    wrapper = subprocess.Popen([*AUDIT, "run", "--runner", "command", "--out", str(out), "--", sys.executable,
                                str(train)], cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    assert wrapper.stdout is not None
    for line in wrapper.stdout:
        if line.startswith("ready "):
            return wrapper, out, int(line.split()[1])
    raise AssertionError(f"the child never became ready (exit {wrapper.wait()})")


LOOP = """\
    import os, signal, sys, time
    try:
        print("ready", os.getpid(), flush=True)  # inside the try: the test may interrupt right after it
        for i in range(6000):
            print("step", i, flush=True)
            time.sleep(0.05)
    except KeyboardInterrupt:
        print("stopping", flush=True)
        time.sleep(0.5)  # saving a checkpoint on the way out
        print("saved", flush=True)
        raise
    """


def finish(wrapper: subprocess.Popen[str]) -> str:
    output, _ = wrapper.communicate(timeout=120)
    return output


def test_ctrl_c_to_the_foreground_group_is_recorded_as_sigint(tmp_path: Path) -> None:
    wrapper, out, _ = start_wrapper(tmp_path, LOOP)
    os.killpg(wrapper.pid, signal.SIGINT)
    output = finish(wrapper)
    outcome = manifest(out)["outcome"]
    assert (outcome["status"], outcome["signal"], outcome["reason"]) == ("interrupted", "SIGINT", None), output
    assert wrapper.returncode == 1 and "saved" in (out / "training_log.txt").read_text()


def test_one_ctrl_c_delivered_twice_is_one_interrupt(tmp_path: Path) -> None:
    """The terminal signals the whole group, and a launcher in it (uv run, make, a trap) forwards it again."""
    wrapper, out, _ = start_wrapper(tmp_path, LOOP)
    os.killpg(wrapper.pid, signal.SIGINT)
    time.sleep(0.05)
    os.kill(wrapper.pid, signal.SIGINT)
    output = finish(wrapper)
    outcome = manifest(out)["outcome"]
    assert (outcome["status"], outcome["signal"]) == ("interrupted", "SIGINT"), output
    assert "saved" in (out / "training_log.txt").read_text(), "the duplicate must not SIGKILL the cleanup"
    assert wrapper.returncode == 1 and "Error:" not in output


def test_sigint_reaching_both_process_groups_is_recorded_as_sigint(tmp_path: Path) -> None:
    """As if the training shared the terminal's foreground group: it and the wrapper get the same SIGINT."""
    wrapper, out, training = start_wrapper(tmp_path, LOOP)
    os.killpg(training, signal.SIGINT)
    os.killpg(wrapper.pid, signal.SIGINT)
    output = finish(wrapper)
    outcome = manifest(out)["outcome"]
    assert (outcome["status"], outcome["signal"]) == ("interrupted", "SIGINT"), output


def test_a_real_second_ctrl_c_kills_and_says_so(tmp_path: Path) -> None:
    wrapper, out, _ = start_wrapper(tmp_path, """\
        import os, signal, time
        signal.signal(signal.SIGINT, lambda *_: print("ignoring SIGINT", flush=True))
        print("ready", os.getpid(), flush=True)
        while True:
            time.sleep(0.05)
        """)
    assert wrapper.stdout is not None
    os.killpg(wrapper.pid, signal.SIGINT)
    assert wrapper.stdout.readline().strip() == "ignoring SIGINT"
    time.sleep(1.5)  # well past the window in which a second signal is the same Ctrl-C
    os.killpg(wrapper.pid, signal.SIGINT)
    finish(wrapper)
    outcome = manifest(out)["outcome"]
    assert (outcome["status"], outcome["signal"]) == ("interrupted", "SIGKILL")
    assert "second signal" in outcome["reason"]


# -- 4. verify while the run still writes the folder -------------------------------------------------------------
CHURN = """\
    import json, os, time
    from pathlib import Path
    from auditor import runtime
    run = Path(os.environ[runtime.ENV_RUN_DIR])
    ckpts = run / "training_output" / "checkpoints"
    step = 0
    while not os.path.exists(os.environ["STOP_FILE"]):
        step += 1
        runtime.log_metrics(step, loss=3.0 / step)
        print("step", step, flush=True)
        current = ckpts / f"checkpoint-{step}"
        current.mkdir(parents=True)
        (current / "config.json").write_text(json.dumps({"n_embd": 8}))
        tmp = ckpts / "latest.tmp"
        tmp.write_bytes(os.urandom(4096))
        os.replace(tmp, ckpts / "latest.bin")  # saved atomically, as trainers do
        old = ckpts / f"checkpoint-{step - 2}"
        if old.exists():  # rotation: only the last two are kept
            (old / "config.json").unlink()
            old.rmdir()
    """


def test_verify_while_the_run_writes_the_folder_reports_it_running(tmp_path: Path) -> None:
    train = write_script(tmp_path, CHURN)
    out, stop = tmp_path / "run", tmp_path / "stop"
    wrapper = subprocess.Popen([*AUDIT, "run", "--runner", "command", "--out", str(out), "--", sys.executable,
                                str(train)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "STOP_FILE": str(stop)})
    try:
        deadline = time.monotonic() + 60
        while not (out / "training_output" / "checkpoints").is_dir():
            assert time.monotonic() < deadline and wrapper.poll() is None, "the run never started writing"
            time.sleep(0.05)
        for _ in range(5):
            result = verify_json(out)
            assert result.code == 1 and "Error:" not in result.stderr, result.stderr
            assert result.report is not None
            broken = [g for g in result.report["runs"][0]["gates"] if "internal error" in g["message"]]
            assert broken == [], broken
            gate = result.gate("training_completed")
            assert gate["status"] == "fail" and "still running" in gate["message"]
    finally:
        stop.write_text("")
        wrapper.wait(timeout=120)
    assert manifest(out)["outcome"]["status"] == "succeeded"


# -- 5. evidence written after the folder was sealed --------------------------------------------------------------
@pytest.fixture(scope="module")
def sealed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("sealed")
    train = write_script(base, """\
        from auditor import runtime
        for step in range(1, 21):
            runtime.log_metrics(step, loss=3.0 / step)
            print("step", step, flush=True)
        """)
    out = base / "run_v1"
    audit("run", "--runner", "command", "--out", out, "--", sys.executable, train)
    assert manifest(out)["sealed_at"]
    assert verify_json(out).status("evidence_complete") == "pass"
    return out


@pytest.fixture
def sealed_copy(sealed_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(sealed_run, tmp_path / "run_v1"))


def test_a_file_added_after_sealing_is_reported(sealed_copy: Path) -> None:
    extra = sealed_copy / "training_output" / "checkpoints" / "checkpoint-20" / "config.json"
    extra.parent.mkdir(parents=True)
    extra.write_text(json.dumps({"n_embd": 8}))
    gate = verify_json(sealed_copy).gate("evidence_complete")
    assert gate["status"] == "fail"
    assert "training_output/checkpoints/checkpoint-20/config.json was written after the run was sealed" in \
        gate["message"]


def test_a_file_changed_after_sealing_is_reported(sealed_copy: Path) -> None:
    with (sealed_copy / "training_log.txt").open("a") as log:
        log.write("step 21\n")
    gate = verify_json(sealed_copy).gate("evidence_complete")
    assert gate["status"] == "fail" and "training_log.txt does not match its sha256" in gate["message"]


def test_a_summary_rendered_after_sealing_is_not_evidence(sealed_copy: Path) -> None:
    (sealed_copy / "run_v1_summary.md").write_text("# run_v1\n\nTwenty steps on CPU.\n")
    gate = verify_json(sealed_copy).gate("evidence_complete")
    assert gate["status"] == "pass", gate
