"""Signatures in logs: crashes, success banners, the device the framework used, where a model was saved."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

CRASH = re.compile(
    r"Traceback \(most recent call last\)|CUDA out of memory|OutOfMemoryError|RESOURCE_EXHAUSTED|"
    r"Ran out of memory|\bKilled\b\s*$|Segmentation fault|core dumped|NCCL error|"
    r"ChildFailedError|exited with (?:exit )?code [1-9]|Aborted \(core dumped\)|Fatal Python error",
)
CRASH_BYTES = re.compile(CRASH.pattern.encode(), re.M)  # the same signatures, over a streamed file's bytes
# A literal every CRASH match holds (upper case): a streamed scan runs the regex only on lines holding one.
CRASH_LITERALS = (b"TRACEBACK", b"OUT OF MEMORY", b"OUTOFMEMORYERROR", b"RESOURCE_EXHAUSTED", b"KILLED",
                  b"SEGMENTATION FAULT", b"CORE DUMPED", b"NCCL ERROR", b"CHILDFAILEDERROR", b"EXITED WITH",
                  b"FATAL PYTHON ERROR")
# In a text file that is not a log (a stdout capture, a JSON result, a notebook), only a Python traceback's header
# is a failure signature: "out of memory" in a README is prose, "Traceback (most recent call last)" is not.
TRACEBACK = re.compile(r"Traceback \(most recent call last\)")
TRACEBACK_BYTES = re.compile(TRACEBACK.pattern.encode())
TRACEBACK_LITERALS = (b"TRACEBACK (MOST RECENT CALL LAST)",)
# Where a log names the file it logs to (a launcher's own names): *log* files, *.log, SLURM's slurm-<job>.out
LOG_PATTERNS = ("*.log", "*log.txt", "*log*.txt", "*_log.txt", "slurm-*.out", "*.out", "*.err")
SUCCESS = re.compile(
    r"Training completed|training complete[d!]?\b|Result:\s*SUCCESS|SUCCESSFULLY|✅\s*Training|"
    r"Training finished successfully",
    re.I,
)
# Lines where the framework or script names the device it runs on.
DEVICE_GPU = re.compile(
    r"(?:Device|Using device|device)\s*[:=]\s*['\"]?(?:cuda|gpu)|cuda:\d|on device \d+ for storing|"
    r"Platform:\s*(?:gpu|cuda)|CudaDevice\(|Default backend:\s*gpu",
    re.I,
)
DEVICE_TPU = re.compile(r"TpuDevice\(|Platform:\s*TPU|Default backend:\s*tpu", re.I)
DEVICE_CPU = re.compile(
    r"(?:^|\s)(?:Device|Using device)\s*[:=]\s*['\"]?cpu\b|falling back to CPU|Default backend:\s*cpu|"
    r"is not compatible with the current PyTorch installation|CUDA available:\s*False|"
    r"No TPU found|no TPU devices found",
    re.I,
)
SAVED = re.compile(r"Saved model to:?\s*(?P<path>\S.*)$|Model saved to:?\s*(?P<path2>\S.*)$", re.I)


@dataclass
class LogSignals:
    """Line numbers (1-based) of each signature in one log."""

    path: str
    crashes: list[tuple[int, str]] = field(default_factory=list)
    successes: list[int] = field(default_factory=list)
    gpu_lines: list[int] = field(default_factory=list)
    tpu_lines: list[int] = field(default_factory=list)
    cpu_lines: list[int] = field(default_factory=list)
    saved_to: list[tuple[int, str]] = field(default_factory=list)
    scan_cut: int | None = None  # bytes scanned for failure signatures before the scan limit stopped it


def scan_log(lines: tuple[str, ...], path: str) -> LogSignals:
    """Find every signature in a log's lines."""
    signals = LogSignals(path=path)
    for number, line in enumerate(lines, start=1):
        crash = CRASH.search(line)
        if crash:
            signals.crashes.append((number, line.strip()[:160]))
        if SUCCESS.search(line):
            signals.successes.append(number)
        if DEVICE_GPU.search(line):
            signals.gpu_lines.append(number)
        if DEVICE_TPU.search(line):
            signals.tpu_lines.append(number)
        if DEVICE_CPU.search(line):
            signals.cpu_lines.append(number)
        saved = SAVED.search(line)
        if saved:
            signals.saved_to.append((number, (saved.group("path") or saved.group("path2") or "").strip()))
    return signals
