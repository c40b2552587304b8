"""CSV metric logs: Lightning's CSVLogger (`metrics.csv`: epoch, step and one column per logged name, sparse rows;
`hparams.yaml` beside it) and Keras' CSVLogger (one row per finished epoch, `epoch` counted from 0).

The training-loss column is the first present of LOSS_COLUMNS; columns named val*/eval*/test* are evaluation
metrics. A Keras file has no step column: its row for epoch k is the end of epoch k + 1."""

from __future__ import annotations

import io
from typing import Any

from auditor.evidence.jsonload import load_yaml
from auditor.evidence.metrics import MetricsSeries, as_float
from auditor.evidence.opener import Folder
from auditor.evidence.plan import plan_fields
from auditor.evidence.sources.interface import FormatInfo, MetricsSource, name_matches
from auditor.evidence.sources.registry import register

LOSS_COLUMNS = ("train_loss", "loss", "train/loss", "train_loss_step", "training_loss", "loss_step", "Loss/train",
                "train_loss_epoch", "loss_epoch")
EVAL_PREFIXES = ("val", "eval", "test")
MAX_CSV_BYTES = 256 * 1024 * 1024


def _header(head: bytes) -> list[str]:
    first = head.split(b"\n", 1)[0].decode("utf-8", errors="replace").lstrip("\ufeff").strip()
    return [c.strip() for c in first.split(",")] if "," in first else []


def loss_column(columns: list[str]) -> str | None:
    """The column holding the training loss, by LOSS_COLUMNS order."""
    return next((c for c in LOSS_COLUMNS if c in columns), None)


def read_csv_log(lines: tuple[str, ...], rel: str) -> MetricsSeries:
    """Loss points, evaluation figures and the step/epoch of every row of a CSV metrics log."""
    import csv
    series = MetricsSeries(path=rel, kind="csv")
    reader = csv.reader(io.StringIO("\n".join(lines)))
    columns = [c.strip() for c in next(reader, [])]
    loss = loss_column(columns)
    keras = "step" not in columns
    series.rule = f"{'keras' if keras else 'lightning'} CSV, loss column {loss!r}"
    for number, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(columns):
            series._bad(number, f"{len(row)} fields, the header has {len(columns)}")
            continue
        record: dict[str, Any] = {}
        for name, cell in zip(columns, row, strict=True):
            if cell.strip() == "":
                continue
            value = as_float(cell)
            if name.lower().startswith(EVAL_PREFIXES) and value is not None:
                series.evals[name] = value
                series.eval_count += 1
            elif name == loss:
                record["loss"] = cell.strip()
            elif name in ("step", "epoch"):
                record[name] = value
        if keras and record.get("epoch") is not None:
            record["epoch"] = float(record["epoch"]) + 1
        if "loss" in record or "step" in record:
            series.add(record, number)
    return series


@register
class CsvLog(MetricsSource):
    """Lightning / Keras CSVLogger files."""

    info = FormatInfo(
        id="csv_log", kind="metrics", title="Lightning / Keras CSVLogger",
        looks_for=("metrics.csv", "*.csv", "training.log"),
        reads="the header and every row: step and epoch, the training-loss column (" + ", ".join(LOSS_COLUMNS[:4])
              + ", ...), val*/eval*/test* columns as evaluation figures; Lightning's hparams.yaml beside it as "
              "hyper-parameters and plan",
        proves="the logged loss curve row by row (a row with the wrong number of fields is named by its line); "
               "Lightning logs the step before it is taken (0-based), so its last row is max_steps - 1",
    )

    def claims(self, rel: str, head: bytes) -> bool:
        if not name_matches(rel, self.info.looks_for):
            return False
        columns = _header(head)
        return loss_column(columns) is not None and ("step" in columns or "epoch" in columns)

    def read(self, folder: Folder, rel: str) -> list[MetricsSeries]:
        doc = folder.text(rel, MAX_CSV_BYTES)
        if doc is None:
            return []
        series = read_csv_log(doc.lines, rel)
        hparams_rel = f"{rel.rsplit('/', 1)[0]}/hparams.yaml" if "/" in rel else "hparams.yaml"
        if hparams_rel in folder.files:
            hparams_doc = folder.text(hparams_rel)
            try:
                data = load_yaml(hparams_doc.text) if hparams_doc else None
            except ValueError:
                data = None
            if isinstance(data, dict):
                series.hparams.update({str(k): v for k, v in data.items()})
                series.plan.update(plan_fields(data, hparams_rel)[0])
        return [series]
