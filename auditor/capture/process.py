"""Launch the training as a child process: its output streams live to the terminal and into the log, signals
are forwarded, and how it ended is recorded truthfully (exit code, signal, wall/CPU time, peak RSS).

The run ends when the child's own process ends. Its output is then read until end of file or for DRAIN_S more
seconds at most: a grandchild that was left behind (`cmd &`, a daemonised dataloader worker) may hold the pipe
open for ever and must not hang `audit run`. Processes of the training still alive at that point (in the child's
session or process group, or holding its output pipe) are listed with their command lines and sent SIGTERM: the
run is over, and strays must neither outlive it unseen nor keep writing into its folder.

One Ctrl-C may reach the wrapper twice: the terminal signals its whole foreground group, and a launcher in that
group (`uv run`, make, a shell script that traps) forwards the signal again. A signal within DUPLICATE_S of the
last one acted on is that same interrupt; a later one is a real second interrupt and kills the training.
"""

from __future__ import annotations

import contextlib
import os
import resource
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from auditor.capture.procfs import stat_fields
from auditor.evidence.secrets import redact
from auditor.models.manifest import LeftoverProcess, RunStatus

# Signals that end a process from outside (a scheduler, the OOM killer, a user): the run was killed.
_EXTERNAL = {signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT}
_FORWARDED = (signal.SIGINT, signal.SIGTERM)
DRAIN_S = 2.0  # output still read after the child ended, while a left-behind process holds the pipe
DUPLICATE_S = 1.0  # a signal this soon after the one acted on is the same interrupt delivered twice
STOP_GRACE_S = 10.0  # after the log could not be written: SIGTERM, then SIGKILL this much later
_POLL_S = 0.2  # how often the child is polled where no pidfd tells us it ended
_COMMAND_CHARS = 500


class Echo(Protocol):
    """Where the child's output is echoed: the terminal's byte stream, or the status line wrapping it."""

    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...


class ChildNotStarted(Exception):
    """The command could not be started (no such file, not executable, ...)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error.strerror or str(error))
        self.error = error


@dataclass
class ProcessResult:
    """How the child ended."""

    status: RunStatus
    exit_code: int | None
    signal: str | None
    wall_seconds: float
    cpu_seconds: float
    peak_rss_mib: float | None
    leftovers: list[LeftoverProcess] | None = None
    reason: str | None = None
    capture_error: str | None = None  # the log could not be written: the evidence is incomplete


class Interrupts:
    """SIGINT/SIGTERM while `audit run` holds a run folder. Installed (main thread only) from before the running
    manifest is written until the final one is: while the child runs a signal is forwarded to its process group
    (a real second one sends SIGKILL); before launch it is kept, and the child is not started (or gets it at
    once); after the child ended, while evidence is collected, it raises KeyboardInterrupt so that the session
    records what it has."""

    def __init__(self) -> None:
        self.received: list[int] = []  # signals acted on, duplicates excluded
        self.forwarded: int | None = None  # the first one meant for the child
        self.child: subprocess.Popen[bytes] | None = None
        self.escalated = False
        self.collecting = False
        self.finalising = False
        self._acted_at = float("-inf")
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in _FORWARDED}
        return self

    def __exit__(self, *_exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        now = time.monotonic()
        if now - self._acted_at < DUPLICATE_S or self.finalising:
            return
        self._acted_at = now
        self.received.append(signum)
        child = self.child
        if child is None:
            self.forwarded = self.forwarded or signum  # before launch: run_child does not start (or stops) it
        elif child.poll() is None:
            self.escalated = self.forwarded is not None
            self.forwarded = self.forwarded or signum
            _signal_group(child.pid, signal.SIGKILL if self.escalated else signal.Signals(signum))
        elif self.collecting:
            raise KeyboardInterrupt(signal.Signals(signum).name)


def classify(returncode: int, forwarded: int | None) -> tuple[RunStatus, int | None, str | None]:
    """(status, exit code, signal name) from a Popen return code and the signal we forwarded, if any. SIGINT is
    an interrupt whoever sent it; a child that handled a forwarded signal and exited by itself, with any code,
    was still interrupted by it."""
    code_signal = returncode - 128 if returncode > 128 else -returncode if returncode < 0 else None
    if returncode >= 0 and forwarded is not None:
        if code_signal in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):  # a shell or launcher reporting it
            return "interrupted", returncode, signal.Signals(code_signal).name
        return "interrupted", returncode, signal.Signals(forwarded).name
    if returncode == 0:
        return "succeeded", 0, None
    if returncode > 0:
        if code_signal == signal.SIGINT:
            return "interrupted", returncode, "SIGINT"
        if code_signal in (signal.SIGKILL, signal.SIGTERM):
            return "killed", returncode, signal.Signals(code_signal).name
        return "failed", returncode, None
    sig = signal.Signals(-returncode)
    if sig == signal.SIGINT or (forwarded is not None and sig in (forwarded, signal.SIGKILL, *_FORWARDED)):
        return "interrupted", None, sig.name
    if sig in _EXTERNAL:
        return "killed", None, sig.name
    return "failed", None, sig.name  # SIGSEGV, SIGABRT, SIGBUS...: the program crashed


class _Pump:
    """Copies the child's output to the log and the echo until it has ended and its pipe is drained."""

    def __init__(self, fd: int, log_fd: int, echo: Echo | None, on_output: Callable[[bytes], None] | None) -> None:
        self.fd, self.log_fd, self.echo, self.on_output = fd, log_fd, echo, on_output
        self.log_error: OSError | None = None
        self.eof = False

    def take(self, data: bytes) -> None:
        if self.log_error is None:
            try:
                _write_all(self.log_fd, data)
            except OSError as exc:  # the disk filled, or the folder went away: the evidence cannot be kept
                self.log_error = exc
        if self.echo is not None:
            try:
                self.echo.write(data)
                self.echo.flush()
            except OSError:  # the terminal or pipe we echo to went away: the log still gets everything
                self.echo = None
        if self.on_output is not None:
            self.on_output(data)

    def read(self) -> None:
        data = os.read(self.fd, 65536)
        if data:
            self.take(data)
        else:
            self.eof = True


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when `pid` ends (Linux 5.3+), so the loop needs no polling."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        fd: int = opener(pid)
    except OSError:
        return None
    return fd


def _pump_until_done(child: subprocess.Popen[bytes], pump: _Pump) -> bool:
    """Read until the output is at end of file, or DRAIN_S after the child ended; returns whether the pipe was
    still open then. After a log error the child is stopped: SIGTERM, and SIGKILL STOP_GRACE_S later."""
    selector = selectors.DefaultSelector()
    selector.register(pump.fd, selectors.EVENT_READ, "output")
    pidfd = _pidfd(child.pid)
    if pidfd is not None:
        selector.register(pidfd, selectors.EVENT_READ, "ended")
    ended_at: float | None = None
    kill_at: float | None = None
    try:
        while not pump.eof:
            now = time.monotonic()
            if ended_at is None and child.poll() is not None:
                ended_at = now
            timeout: float | None = None
            if ended_at is not None:
                if now >= ended_at + DRAIN_S:
                    return True
                timeout = ended_at + DRAIN_S - now
            elif pump.log_error is not None:
                if kill_at is None:
                    _signal_group(child.pid, signal.SIGTERM)
                    kill_at = now + STOP_GRACE_S
                elif now >= kill_at:
                    _signal_group(child.pid, signal.SIGKILL)
                    kill_at = float("inf")
                timeout = max(kill_at - now, 0.0) if kill_at != float("inf") else None
            if ended_at is None and pidfd is None:
                timeout = _POLL_S if timeout is None else min(timeout, _POLL_S)
            for key, _ in selector.select(timeout):
                if key.data == "ended":
                    selector.unregister(key.fd)  # it stays readable: once is enough
                else:
                    pump.read()
        return False
    finally:
        selector.close()
        if pidfd is not None:
            os.close(pidfd)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def leftover_processes(pgid: int, pipe_inode: int | None) -> list[LeftoverProcess] | None:
    """Live processes in session or process group `pgid`, or (with `pipe_inode`) holding that pipe open; None
    where /proc cannot be read (not Linux)."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    me = os.getpid()
    found = []
    for entry in entries:
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        fields = stat_fields(pid)
        if fields is None or len(fields) < 4 or fields[0] in (b"Z", b"X"):  # a zombie holds nothing, takes no signal
            continue
        in_group = pgid in (int(fields[2]), int(fields[3]))
        holds = pipe_inode is not None and _holds_pipe(pid, pipe_inode)
        if in_group or holds:
            found.append(LeftoverProcess(pid=pid, command=_command_line(pid), held_output=holds))
    return sorted(found, key=lambda p: p.pid)


def _holds_pipe(pid: int, inode: int) -> bool:
    target = f"pipe:[{inode}]"
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                return True
    return False


def _command_line(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            raw = handle.read(4 * _COMMAND_CHARS)
    except OSError:
        return None
    text = " ".join(part.decode("utf-8", "replace") for part in raw.split(b"\0") if part)
    return redact(text)[:_COMMAND_CHARS] or None


def stop_leftovers(pgid: int, pipe_inode: int | None) -> list[LeftoverProcess] | None:
    """List the training's processes still alive after it ended and send each SIGTERM (see the module doc)."""
    found = leftover_processes(pgid, pipe_inode)
    if found is None:  # no /proc: the group is all we can name
        _signal_group(pgid, signal.SIGTERM)
        return None
    for proc in found:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(proc.pid, signal.SIGTERM)
    return found


def run_child(cmd: list[str], env: dict[str, str], cwd: Path, log_path: Path, *, echo: Echo | None = None,
              on_output: Callable[[bytes], None] | None = None, on_start: Callable[[int], None] | None = None,
              interrupts: Interrupts | None = None) -> ProcessResult:
    """Run `cmd` in its own session, tee its merged stdout/stderr into `log_path` (appended as it arrives, never
    through a link) and `echo`. SIGINT/SIGTERM are handled by `interrupts` (see Interrupts; one is installed here
    when none is given). Raises ChildNotStarted when the command cannot be started, OSError when the log cannot
    be opened; a log that cannot be written later stops the child and is reported in `capture_error`."""
    if interrupts is None:
        with Interrupts() as own:
            return run_child(cmd, env, cwd, log_path, echo=echo, on_output=on_output, on_start=on_start,
                             interrupts=own)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    if interrupts.forwarded is not None:  # interrupted before launch: the training is not started at all
        return ProcessResult("interrupted", None, signal.Signals(interrupts.forwarded).name, 0.0, 0.0, None,
                             reason="interrupted before the training started")
    log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        try:
            child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, cwd=cwd, start_new_session=True)
        except OSError as exc:
            raise ChildNotStarted(exc) from exc
        interrupts.child = child
        if interrupts.forwarded is not None:  # arrived while the child was being started
            _signal_group(child.pid, signal.Signals(interrupts.forwarded))
        assert child.stdout is not None
        with child.stdout:
            fd = child.stdout.fileno()
            pipe_inode = os.fstat(fd).st_ino
            if on_start is not None:
                on_start(child.pid)
            pump = _Pump(fd, log_fd, echo, on_output)
            still_open = _pump_until_done(child, pump)
            returncode = child.wait()
            leftovers = stop_leftovers(child.pid, pipe_inode if still_open else None)
    finally:
        os.close(log_fd)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rss = after.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024) if after.ru_maxrss else None
    forwarded = interrupts.forwarded
    if forwarded is None and returncode < 0 and -returncode in interrupts.received:
        forwarded = -returncode  # the same signal reached the child directly (sent to both process groups)
    status, exit_code, sig_name = classify(returncode, forwarded)
    reason = None
    if interrupts.escalated and forwarded is not None:
        first = signal.Signals(forwarded).name
        reason = f"interrupted by {first}; a second signal killed the training's process group (SIGKILL)"
    capture_error = None
    if pump.log_error is not None:
        capture_error = (f"cannot write {log_path.name}: {pump.log_error.strerror or pump.log_error}; "
                         "audit run stopped the training")
        status, reason = "failed", capture_error
    return ProcessResult(status, exit_code, sig_name, round(wall, 3), round(cpu, 3), rss, leftovers, reason,
                         capture_error)
