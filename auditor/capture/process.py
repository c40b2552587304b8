"""Launch the training as a child process: its output streams live to the terminal and into the log, signals
are forwarded, and how it ended is recorded truthfully (exit code, signal, wall/CPU time, peak RSS)."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from auditor.models.manifest import RunStatus

# Signals that end a process from outside (a scheduler, the OOM killer, a user): the run was killed.
_EXTERNAL = {signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT}
_FORWARDED = (signal.SIGINT, signal.SIGTERM)


class Echo(Protocol):
    """Where the child's output is echoed: the terminal's byte stream, or the status line wrapping it."""

    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...


@dataclass
class ProcessResult:
    """How the child ended."""

    status: RunStatus
    exit_code: int | None
    signal: str | None
    wall_seconds: float
    cpu_seconds: float
    peak_rss_mib: float | None


def classify(returncode: int, forwarded: int | None) -> tuple[RunStatus, int | None, str | None]:
    """(status, exit code, signal name) from a Popen return code and the signal we forwarded, if any."""
    if returncode == 0:
        return "succeeded", 0, None
    if returncode > 0:
        if returncode in (128 + signal.SIGKILL, 128 + signal.SIGTERM):  # a shell or launcher reporting a kill
            sig = signal.Signals(returncode - 128)
            return ("interrupted" if forwarded else "killed"), returncode, sig.name
        return "failed", returncode, None
    sig = signal.Signals(-returncode)
    if forwarded is not None and sig in (forwarded, signal.SIGKILL, *_FORWARDED):
        return "interrupted", None, sig.name
    if sig in _EXTERNAL:
        return "killed", None, sig.name
    return "failed", None, sig.name  # SIGSEGV, SIGABRT, SIGBUS...: the program crashed


def run_child(cmd: list[str], env: dict[str, str], cwd: Path, log_path: Path, *, echo: Echo | None = None,
              on_output: Callable[[bytes], None] | None = None, on_start: Callable[[int], None] | None = None,
              ) -> ProcessResult:
    """Run `cmd` in its own process group, tee its merged stdout/stderr into `log_path` (appending, flushed as
    it arrives) and `echo`. SIGINT/SIGTERM sent to us are forwarded to the child's group; a second one kills
    it. Raises OSError when the command cannot be started."""
    forwarded: list[int] = []
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: object) -> None:
        if child is None or child.poll() is not None:
            return
        sig = signal.SIGKILL if forwarded else signum
        forwarded.append(signum)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, sig)

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    previous = {s: signal.signal(s, forward) for s in _FORWARDED} if _main_thread() else {}
    try:
        child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env=env, cwd=cwd, start_new_session=True)
        if on_start is not None:
            on_start(child.pid)
        assert child.stdout is not None
        fd = child.stdout.fileno()
        with log_path.open("ab") as log:
            while True:
                data = os.read(fd, 65536)
                if not data:
                    break
                log.write(data)
                log.flush()
                if echo is not None:
                    echo.write(data)
                    echo.flush()
                if on_output is not None:
                    on_output(data)
        returncode = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rss = after.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024) if after.ru_maxrss else None
    status, exit_code, sig_name = classify(returncode, forwarded[0] if forwarded else None)
    return ProcessResult(status, exit_code, sig_name, round(wall, 3), round(cpu, 3), rss)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
