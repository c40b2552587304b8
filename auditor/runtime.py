"""auditor.runtime: the tiny in-process helper training code logs its evidence through.

    from auditor import runtime
    runtime.log_metrics(step=10, loss=2.31, learning_rate=3e-4)
    runtime.log_final(train_runtime=41.2, train_samples_per_second=388.0, train_loss=2.7)
    runtime.log_prediction(id=0, prompt="...", prediction="...")
    save_to(runtime.checkpoint_dir(step=100)); save_to(runtime.final_model_dir())

Under `audit run` the run folder comes from $AUDITOR_RUN_DIR; every line is flushed as it is written, so a run
that is killed keeps everything it logged. Under torchrun, rank 0 writes the files above and every other rank R
writes its own ranks/metrics.rankR.jsonl and ranks/predictions.rankR.jsonl (so no two processes share a file).
Outside `audit run` the helper writes under ./audit_output/. It imports no framework and costs one JSON encode and
one write per call (bench/bench_run.py measures it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

ENV_RUN_DIR = "AUDITOR_RUN_DIR"
METRICS = "training_output/metrics.jsonl"
PREDICTIONS = "predictions.jsonl"


def rank_file(kind: str, rank: int) -> str:
    """Where rank `rank` writes `kind` ("metrics" or "predictions"), relative to the run folder."""
    if rank > 0:
        return f"ranks/{kind}.rank{rank}.jsonl"
    return METRICS if kind == "metrics" else PREDICTIONS


class Recorder:
    """Appends metrics and prediction records to one run folder (per-rank files under torchrun)."""

    def __init__(self, run_dir: Path, rank: int = 0) -> None:
        self.run_dir = run_dir
        self.rank = rank
        self.last_step: int | None = None
        self._files: dict[str, IO[str]] = {}

    def _write(self, rel: str, record: dict[str, Any]) -> None:
        handle = self._files.get(rel)
        if handle is None:
            path = self.run_dir / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = self._files[rel] = path.open("a", encoding="utf-8")
        handle.write(json.dumps(record, ensure_ascii=False) + "\n")  # NaN/Infinity literals kept: verify flags them
        handle.flush()

    def log_metrics(self, step: int, **values: Any) -> None:
        """One training record: {"step": N, "loss": ..., ...} (the HF on_log shape)."""
        self.last_step = int(step)
        self._write(rank_file("metrics", self.rank), {"step": int(step), **{k: _plain(v) for k, v in values.items()}})

    def log_final(self, **values: Any) -> None:
        """The end-of-training record: train_runtime, train_samples_per_second, train_steps_per_second,
        train_loss (the run average), total_flos, step, epoch."""
        self._write(rank_file("metrics", self.rank), {k: _plain(v) for k, v in values.items()})

    def log_prediction(self, **record: Any) -> None:
        """One evaluation example: an id, the input, and the model's `prediction` text."""
        self._write(rank_file("predictions", self.rank), {k: _plain(v) for k, v in record.items()})

    def checkpoint_dir(self, step: int) -> Path:
        """training_output/checkpoints/checkpoint-N/ (created)."""
        path = self.run_dir / "training_output" / "checkpoints" / f"checkpoint-{int(step)}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def final_model_dir(self) -> Path:
        """training_output/final_model/ (created)."""
        path = self.run_dir / "training_output" / "final_model"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def close(self) -> None:
        """Close the open files (they are flushed after every record anyway)."""
        for handle in self._files.values():
            handle.close()
        self._files.clear()


def _plain(value: Any) -> Any:
    """Tensors and numpy scalars become Python numbers without importing a framework."""
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", 0) == 0:
        return item()
    return value


_RECORDER: Recorder | None = None


def recorder() -> Recorder:
    """The process's recorder for $AUDITOR_RUN_DIR (or ./audit_output outside `audit run`)."""
    global _RECORDER
    run_dir = Path(os.environ.get(ENV_RUN_DIR) or "audit_output")
    if _RECORDER is None or _RECORDER.run_dir != run_dir:
        rank = os.environ.get("RANK", "0")
        _RECORDER = Recorder(run_dir, int(rank) if rank.isdigit() else 0)
    return _RECORDER


def run_dir() -> Path:
    """The run folder this process records into."""
    return recorder().run_dir


def log_metrics(step: int, **values: Any) -> None:
    """Record one training step's metrics (see Recorder.log_metrics)."""
    recorder().log_metrics(step, **values)


def log_final(**values: Any) -> None:
    """Record the end-of-training record (see Recorder.log_final)."""
    recorder().log_final(**values)


def log_prediction(**record: Any) -> None:
    """Record one evaluation prediction (see Recorder.log_prediction)."""
    recorder().log_prediction(**record)


def checkpoint_dir(step: int) -> Path:
    """Where to save the checkpoint of step `step`."""
    return recorder().checkpoint_dir(step)


def final_model_dir() -> Path:
    """Where to save the final model."""
    return recorder().final_model_dir()
