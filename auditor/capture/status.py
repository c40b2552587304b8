"""The live status line `audit run` keeps at the bottom of a terminal: step (of the plan), last loss, elapsed.

It wraps the echo of the child's output: before each chunk the status line is erased, after a chunk that ends
a line it is drawn again, and a ticker refreshes the clock once a second. Step and loss come from the new lines
of the run's metrics.jsonl, read by the metrics reader (the helper flushes every record). Only used when stdout
is a terminal."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import IO

from auditor.evidence.metrics import read_lines

_ERASE = b"\r\x1b[2K"


class StatusLine:
    """An echo target (write/flush of bytes) that keeps one status line under the streamed output."""

    def __init__(self, out: IO[bytes], metrics: Path, max_steps: int | None) -> None:
        self.out, self.metrics, self.max_steps = out, metrics, max_steps
        self.start = time.monotonic()
        self.step: int | None = None
        self.loss: float | None = None
        self._offset = 0
        self._at_line_start = True
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="audit-status", daemon=True)
        self._ticker.start()

    def _poll(self) -> None:
        try:
            with self.metrics.open("rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except OSError:
            return
        end = data.rfind(b"\n") + 1
        self._offset += end
        series = read_lines(data[:end], self.metrics.name)  # the one metrics reader: nested, HF and NaN records too
        if series.count:
            self.loss = series.losses[-1]
            step = series.step_of(series.count - 1)
            self.step = step if step is not None else self.step

    def render(self) -> str:
        """The status text, e.g. `● step 120/300 · loss 2.3100 · 0:42`."""
        elapsed = int(time.monotonic() - self.start)
        step = "step —" if self.step is None else f"step {self.step}" + (f"/{self.max_steps}" if self.max_steps
                                                                          else "")
        loss = "" if self.loss is None else f" · loss {self.loss:.4f}"
        return f"● {step}{loss} · {elapsed // 60}:{elapsed % 60:02d}"

    def _draw(self) -> None:
        self._poll()
        self.out.write(_ERASE + b"\x1b[1m" + self.render().encode() + b"\x1b[0m")
        self.out.flush()

    def write(self, data: bytes) -> int:
        with self._lock:
            if self._at_line_start:
                self.out.write(_ERASE)
            self.out.write(data)
            self._at_line_start = data.endswith(b"\n")
            if self._at_line_start:
                self._draw()
            else:
                self.out.flush()
        return len(data)

    def flush(self) -> None:
        self.out.flush()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                if self._at_line_start:
                    self._draw()

    def close(self) -> None:
        """Stop the ticker and leave the final status on its own line."""
        self._stop.set()
        self._ticker.join()
        with self._lock:
            if self._at_line_start:
                self._draw()
            self.out.write(b"\n")
            self.out.flush()
