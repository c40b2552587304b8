"""The summary's plots: the loss curve and, when NVML samples exist, GPU utilisation and memory, as PNG through
matplotlib's Agg canvas (no display, no pyplot state).

Importing matplotlib takes about as long as reading a million metric records, so the drawing runs in a worker
process started before verify: it imports matplotlib while the parent reads the evidence, then takes the series
as raw arrays on stdin and draws. A long series is cut to a min/max envelope per bucket, so a million points draw
as fast as a few thousand and a spike still shows. This file imports nothing from auditor: it is the worker's
script, and matplotlib (the `plot` extra) is imported only in the worker."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from array import array
from pathlib import Path
from typing import IO, Any

MAX_POINTS = 4000
_PNG_META = {"Software": None}  # no version string: the same series draws the same bytes


def available() -> bool:
    """Whether matplotlib is installed (without importing it)."""
    return importlib.util.find_spec("matplotlib") is not None


class Plotter:
    """The parent's handle on the drawing worker."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__))], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.jobs = 0

    def submit(self, kind: str, path: Path, title: str, arrays: list[array]) -> None:
        """Send one drawing job: a JSON header line, then each array's raw bytes."""
        assert self.proc.stdin is not None
        header = {"kind": kind, "path": str(path), "title": title,
                  "arrays": [[a.typecode, len(a) * a.itemsize] for a in arrays]}
        try:
            self.proc.stdin.write(json.dumps(header).encode() + b"\n")
            for a in arrays:
                self.proc.stdin.write(a.tobytes())
            self.jobs += 1
        except BrokenPipeError:
            pass  # the worker died: finish() reports why

    def close(self) -> None:
        """Stop the worker if it is still running (the summary failed before its plots were asked for)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()

    def finish(self, timeout: float = 300) -> list[dict[str, Any]]:
        """Each job's result ({"ok": true, ...} or {"error": "..."}), in order."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        except BrokenPipeError:
            out, err = b"", b""
            self.proc.wait()
        results = [json.loads(line) for line in out.decode(errors="replace").splitlines() if line.startswith("{")]
        why = err.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {self.proc.returncode}"]
        results += [{"error": f"the plot worker stopped: {why[0][:300]}"}] * (self.jobs - len(results))
        return results


def envelope(x: Any, y: Any, points: int = MAX_POINTS) -> tuple[Any, Any]:
    """(x, y) cut to at most `points` values: each bucket's minimum and maximum, in x order (NaN-aware)."""
    import numpy as np

    n = len(y)
    if n <= points:
        return x, y
    buckets = points // 2
    size = -(-n // buckets)
    pad = buckets * size - n
    ys = np.concatenate([y, np.full(pad, np.nan)]).reshape(buckets, size)
    xs = np.concatenate([x, np.full(pad, x[-1])]).reshape(buckets, size)
    finite = ~np.isnan(ys)
    rows = finite.any(axis=1)
    low = np.where(finite, ys, np.inf).argmin(axis=1)
    high = np.where(finite, ys, -np.inf).argmax(axis=1)
    first, second = np.minimum(low, high), np.maximum(low, high)
    index = np.arange(buckets)
    out_x = np.stack([xs[index, first], xs[index, second]], axis=1)[rows].ravel()
    out_y = np.stack([ys[index, first], ys[index, second]], axis=1)[rows].ravel()
    return out_x, out_y


def _figure(rows: int = 1) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 3.2 * rows), dpi=100)
    FigureCanvasAgg(figure)
    return figure, figure.subplots(rows, 1, squeeze=False)[:, 0]


def loss_plot(steps: Any, losses: Any, path: str, title: str) -> dict[str, Any]:
    """The loss curve (x = step, or the record's index where steps are unknown); non-finite losses are counted
    and left out of the drawing."""
    import numpy as np

    y = np.array(losses, dtype=np.float64)
    x = np.asarray(steps).astype(np.float64)
    xlabel = "step"
    if len(x) and (x < 0).any():
        x, xlabel = np.arange(1, len(y) + 1, dtype=np.float64), "logged record"
    bad = ~np.isfinite(y)
    y[bad] = np.nan
    x, y = envelope(x, y)
    figure, (axes,) = _figure()
    axes.plot(x, y, linewidth=1.0, color="#1f77b4")
    finite = y[~np.isnan(y)]
    if len(finite) and finite.min() > 0 and finite.max() / finite.min() > 20:
        axes.set_yscale("log")
    axes.set_xlabel(xlabel)
    axes.set_ylabel("loss")
    skipped = int(bad.sum())
    axes.set_title(title + (f" ({skipped} non-finite not drawn)" if skipped else ""), fontsize=10)
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    _save(figure, path)
    return {"ok": True, "path": path, "drawn": len(y), "nonfinite": skipped}


def gpu_plot(arrays: list[Any], path: str, title: str) -> dict[str, Any]:
    """Utilisation (%) and memory used (MiB) over the run's elapsed seconds; `arrays` holds, per device, its
    index, times, utilisations and memory readings."""
    import numpy as np

    figure, (util_axes, memory_axes) = _figure(rows=2)
    devices = len(arrays) // 4
    for i in range(devices):
        gpu, times, utils, memory = arrays[4 * i:4 * i + 4]
        label = f"GPU {int(gpu[0])}"
        util_axes.plot(*envelope(np.asarray(times), np.asarray(utils)), linewidth=1.0, label=label)
        memory_axes.plot(*envelope(np.asarray(times), np.asarray(memory)), linewidth=1.0, label=label)
    util_axes.set_ylabel("utilisation (%)")
    util_axes.set_ylim(0, 105)
    memory_axes.set_ylabel("memory used (MiB)")
    memory_axes.set_xlabel("seconds since launch")
    util_axes.set_title(title, fontsize=10)
    for axes in (util_axes, memory_axes):
        axes.grid(True, alpha=0.3)
        if devices > 1:
            axes.legend(fontsize=8)
    figure.tight_layout()
    _save(figure, path)
    return {"ok": True, "path": path, "devices": devices}


def _save(figure: Any, path: str) -> None:
    """The PNG drawn in memory, then written atomically: a link planted at the plot's name is replaced, never
    written through (matplotlib's savefig would follow it)."""
    import io

    from auditor.capture.files import write_atomic

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata=_PNG_META)
    write_atomic(Path(path), buffer.getvalue())


def _read_job(stream: IO[bytes]) -> tuple[dict[str, Any], list[Any]] | None:
    import numpy as np

    line = stream.readline()
    if not line:
        return None
    header = json.loads(line)
    arrays = []
    for typecode, size in header["arrays"]:
        data = stream.read(size)
        arrays.append(np.frombuffer(data, dtype=np.int64 if typecode == "q" else np.float64))
    return header, arrays


def worker() -> None:
    """Import matplotlib at once, then draw each job from stdin and answer one JSON line per job."""
    import matplotlib

    matplotlib.use("Agg")
    _figure()  # import and warm the drawing machinery while the parent is still reading the evidence
    while (job := _read_job(sys.stdin.buffer)) is not None:
        header, arrays = job
        try:
            if header["kind"] == "loss":
                result = loss_plot(arrays[0], arrays[1], header["path"], header["title"])
            else:
                result = gpu_plot(arrays, header["path"], header["title"])
        except Exception as exc:  # one failed drawing is reported, the summary is still written
            result = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    worker()
