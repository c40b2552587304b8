"""MLflow tracking data in a run folder, read without mlflow: the file store (`mlruns/<experiment>/<run>/meta.yaml`
beside `metrics/`, `params/`, `tags/`) and the SQLite store (`mlflow.db`). One series per MLflow run.

The training loss is one metric per run: the first of LOSS_KEYS that a metric key normalises to (lower case; '/',
'.', '-' and ' ' read as '_'), so `loss`, then `train_loss` / `train/loss`, `train_loss_step` (Lightning),
`training_loss`, `Loss/train`; ties go to the key that sorts first. HF Trainer logs both `loss` (the curve) and
`train_loss` (the run average, beside train_runtime): `loss` wins and `train_loss` joins the final record. Evaluation
metrics are those with a '/'-separated part starting with eval, evaluation, val, valid, validation or test
(`eval_loss`, `val/acc`, `Loss/val`); never the loss. The final record holds train_runtime & co only when the run
logged them as metrics; the run's start/end times are facts (wall time includes setup, so it is no train_runtime).

Limits: meta.yaml 1 MiB, a param or tag value 64 KiB (MLflow caps them at 6000/8000 characters), 10,000 params per
run, a metric file 256 MiB (read up to there, said as a problem), an SQLite store 128 MiB read into memory (a larger
one, or any where sqlite3 has no deserialize (Python 3.10), is opened in place read-only and immutable)."""

from __future__ import annotations

import bisect
import contextlib
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from auditor.evidence.jsonload import load_yaml
from auditor.evidence.metrics import FINAL_MARKERS, FinalRecord, MetricsSeries, SourceOutcome, as_float, as_int
from auditor.evidence.opener import EvidenceUnreadable, Folder
from auditor.evidence.plan import plan_fields
from auditor.evidence.sources.interface import FormatInfo, MetricsSource, name_matches
from auditor.evidence.sources.registry import register

if TYPE_CHECKING:
    import sqlite3

META_LIMIT = 1 << 20
VALUE_LIMIT = 64 << 10
MAX_PARAMS = 10_000
METRIC_LIMIT = 256 << 20
DB_LIMIT = 128 << 20
SQLITE_MAGIC = b"SQLite format 3\x00"
DB_NAMES = ("mlflow.db", "*.db", "*.sqlite")
# mlflow/protos/service.proto RunStatus (mlflow.entities.RunStatus); the file store writes the number, SQLite the name
STATUS = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
LOSS_KEYS = ("loss", "train_loss", "train_loss_step", "training_loss", "loss_train")
FINAL_KEYS = FINAL_MARKERS | {"total_flos", "train_loss"}
SIDE_KEYS = ("epoch", "grad_norm")  # joined to the loss point logged at the same step
TAGS = ("mlflow.source.git.commit", "mlflow.runName", "mlflow.source.name")
_EVAL = re.compile(r"(?:^|/)(?:eval|evaluation|val|valid|validation|test)(?![a-z])", re.I)
_RUN_META = re.compile(rb"(?m)^(?:run_id|run_uuid):")
_SEPARATORS = str.maketrans({"/": "_", ".": "_", "-": "_", " ": "_"})
Point = tuple[int, float, int, int]  # position (1-based line, or the metrics table's rowid), value, step, timestamp


def loss_key(keys: Iterable[str]) -> str | None:
    """The run's training-loss metric among its metric keys (the module docstring's rule), or None."""
    ranked = [(LOSS_KEYS.index(n), k) for k in keys if (n := k.lower().translate(_SEPARATORS)) in LOSS_KEYS]
    return min(ranked)[1] if ranked else None


def is_eval(key: str) -> bool:
    """An evaluation metric: a '/'-separated part of its key starts with eval/val/test (`eval_loss`, `Loss/val`)."""
    return _EVAL.search(key) is not None


def _wanted(keys: Iterable[str], loss: str | None) -> list[str]:
    """The metrics worth reading, the loss first (its problems are the ones to name first)."""
    wanted = [k for k in keys if k == loss or k in SIDE_KEYS or k in FINAL_KEYS or is_eval(k)]
    return sorted(wanted, key=lambda k: (k != loss, k))


def _problem(rel: str, kind: str, reason: str) -> MetricsSeries:
    series = MetricsSeries(path=rel, kind=kind, position="line" if kind == "mlflow" else "record")
    series._bad(0, reason)
    return series


def _time(ms: Any) -> str | None:
    value = as_int(ms)
    if value is None or value <= 0:
        return None
    try:
        return datetime.fromtimestamp(value / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")
    except (OverflowError, OSError, ValueError):
        return None


def _status(value: Any) -> str:
    number = as_int(value)
    if number is not None:
        return STATUS.get(number, f"UNKNOWN({number})")
    text = str(value).strip().upper()
    return text if text in STATUS.values() else f"UNKNOWN({str(value)[:20]})"


def _last(points: list[Point]) -> Point:
    # MLflow's own "latest": highest step, then newest timestamp (file or table order breaks the rest)
    return max(points, key=lambda p: (p[2], p[3], p[0]))


def _fill(series: MetricsSeries, loss: str | None, points: dict[str, list[Point]],
          metric_path: Callable[[str], str] | None) -> None:
    """The loss curve, evaluation figures and final record of one run from its metric points."""
    joined = {k: {p[2]: p[1] for p in points.get(k, ())} for k in SIDE_KEYS}
    for position, value, step, _ in points.get(loss, []) if loss else []:
        record: dict[str, Any] = {"step": step, "loss": value}
        record.update({k: by_step[step] for k, by_step in joined.items() if step in by_step})
        series.add(record, position)
    evals = {k: v for k, v in points.items() if k != loss and is_eval(k) and v}
    series.evals = {k: _last(v)[1] for k, v in sorted(evals.items())}
    series.eval_count = len({p[2] for v in evals.values() for p in v})  # evaluations: distinct steps
    finals = {k: _last(v) for k, v in points.items() if k in FINAL_KEYS and k != loss and v}
    marker = next((k for k in sorted(FINAL_MARKERS) if k in finals), None)
    if marker is not None:
        at = finals[marker]
        series.final = FinalRecord(values={k: p[1] for k, p in sorted(finals.items())},
                                   path=metric_path(marker) if metric_path else series.path,
                                   line=at[0] if metric_path else None, step=at[2])


def _describe(series: MetricsSeries, run: dict[str, Any], params: dict[str, str], tags: dict[str, str],
              where: str) -> None:
    """Plan, hyper-parameters, commit, facts and outcome of one run."""
    series.hparams = dict(params)  # MLflow keeps every param as text; so do we
    plan, _ = plan_fields(params, where)
    # HF logs max_steps=-1 (and may log epochs 0) for "not set": not a plan
    series.plan = {k: v for k, v in plan.items() if k not in ("max_steps", "num_epochs") or v > 0}
    series.commit = tags.get("mlflow.source.git.commit") or None
    status = _status(run.get("status"))
    started, ended = as_int(run.get("start_time")), as_int(run.get("end_time"))
    facts = {
        "run_id": run.get("run_id"), "run_name": run.get("run_name") or tags.get("mlflow.runName"),
        "status": status, "experiment_id": run.get("experiment_id"), "experiment_name": run.get("experiment_name"),
        "lifecycle_stage": run.get("lifecycle_stage"), "source_name": tags.get("mlflow.source.name"),
        "started_at": _time(started), "ended_at": _time(ended),
        "wall_seconds": f"{(ended - started) / 1000:g}" if started and ended and ended >= started else None,
    }
    series.facts = {k: str(v) for k, v in facts.items() if v not in (None, "")}
    series.run = f"mlflow run {run.get('run_id')}"
    if status == "FINISHED":
        detail = "ended FINISHED"
    elif status == "RUNNING":
        detail = "never ended: still RUNNING (crashed or killed before end_run, or still going)"
    else:
        detail = f"ended {status}"
    series.outcome = SourceOutcome(status=status.lower(), succeeded=status == "FINISHED",
                                   detail=f"{where}: MLflow run {run.get('run_id')} {detail}")


def _below(files: Sequence[str], prefix: str) -> list[str]:
    # Folder.files is sorted, so the files under `prefix` ('.../') are one slice; '0' is the character after '/'
    return list(files[bisect.bisect_left(files, prefix):bisect.bisect_left(files, prefix[:-1] + "0")])


def _text(folder: Folder, rel: str) -> str | None:
    try:
        data, _ = folder.read(rel, VALUE_LIMIT)
    except EvidenceUnreadable:
        return None
    return data.decode("utf-8", errors="replace")


def _metric_file(series: MetricsSeries, folder: Folder, rel: str, own: bool) -> list[Point]:
    """The points of one metric file, lines as MLflow writes them: `timestamp value [step [dataset digest]]`.
    A bad line is recorded by its number when it is in the series' own file, else named in the reason."""

    def bad(number: int, reason: str) -> None:
        if own:
            series._bad(number, reason)
        else:
            series._bad(0, f"{rel}:{number}: {reason}")

    try:
        data, cut = folder.read(rel, METRIC_LIMIT)
    except EvidenceUnreadable as exc:
        series._bad(0, str(exc))
        return []
    if cut:
        data = data[: data.rfind(b"\n") + 1]
        series._bad(0, f"{rel} is larger than {METRIC_LIMIT:,} bytes: read up to there")
    points: list[Point] = []
    for number, raw in enumerate(data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n"), 1):
        parts = raw.strip().split(b" ")
        try:
            if len(parts) not in (2, 3, 5):
                raise ValueError
            points.append((number, float(parts[1]), int(parts[2]) if len(parts) > 2 else 0, int(parts[0])))
        except ValueError:
            bad(number, f"not `timestamp value step`: {raw[:60].decode('utf-8', errors='replace')!r}")
    return points


def _read_file_store(folder: Folder, rel: str) -> list[MetricsSeries]:
    try:
        data, cut = folder.read(rel, META_LIMIT)
        meta = None if cut else load_yaml(data.decode("utf-8", errors="replace"))
    except EvidenceUnreadable as exc:
        return [_problem(rel, "mlflow", str(exc))]
    except ValueError:
        return [_problem(rel, "mlflow", "meta.yaml is not YAML")]
    if cut:
        return [_problem(rel, "mlflow", f"meta.yaml is larger than {META_LIMIT >> 20} MiB")]
    if not isinstance(meta, dict) or not (meta.get("run_id") or meta.get("run_uuid")) or "status" not in meta:
        return []  # some other tool's meta.yaml that mentions a run_id
    run_dir = rel[: -len("meta.yaml")]

    def below(kind: str) -> dict[str, str]:  # key (it may hold '/') -> file
        start = f"{run_dir}{kind}/"
        return {f[len(start):]: f for f in _below(folder.files, start)}

    metrics, tag_files = below("metrics"), below("tags")
    loss = loss_key(metrics)
    series = MetricsSeries(path=metrics[loss] if loss else rel, kind="mlflow")
    points = {k: _metric_file(series, folder, metrics[k], k == loss) for k in _wanted(metrics, loss)}
    _fill(series, loss, points, metrics.__getitem__)
    params = {k: v for k, f in list(below("params").items())[:MAX_PARAMS] if (v := _text(folder, f)) is not None}
    tags = {t: v.strip() for t in TAGS if t in tag_files and (v := _text(folder, tag_files[t]))}
    run = {**meta, "run_id": meta.get("run_id") or meta.get("run_uuid")}
    experiment_meta = run_dir.rstrip("/").rpartition("/")[0] + "/meta.yaml"
    if experiment_meta in folder.files and (text := _text(folder, experiment_meta)):
        with contextlib.suppress(ValueError, AttributeError):
            run["experiment_name"] = load_yaml(text).get("name")
    _describe(series, run, params, tags, rel)
    return [series]


def _connect(folder: Folder, rel: str, data: bytes | None) -> sqlite3.Connection:
    """A read-only connection: the bytes deserialized into memory, else the file opened immutable (no journal,
    no WAL, no lock is created)."""
    import sqlite3
    if data is not None:
        conn = sqlite3.connect(":memory:")
        try:
            if data[18:20] == b"\x02\x02":  # a WAL database: memory cannot hold WAL, the legacy header reads it
                data = data[:18] + b"\x01\x01" + data[20:]
            conn.deserialize(data)  # type: ignore[attr-defined]  # Python >= 3.11, checked by the caller
        except BaseException:
            conn.close()
            raise
    else:
        conn = sqlite3.connect(Path(folder.root, rel).absolute().as_uri() + "?mode=ro&immutable=1", uri=True)
    conn.execute("PRAGMA query_only = ON")
    return conn


def _db_point(rowid: int, value: Any, step: Any, timestamp: Any, is_nan: Any) -> Point | None:
    number, whole = as_float(value), as_int(step)
    if number is None or whole is None:
        return None
    if is_nan:
        number = math.nan  # MLflow stores NaN as 0 with is_nan set
    elif abs(number) == sys.float_info.max:
        number = math.copysign(math.inf, number)  # ... and ±Infinity as ±max double
    return rowid, number, whole, as_int(timestamp) or 0


def _db_runs(conn: sqlite3.Connection, rel: str) -> list[MetricsSeries] | None:
    """One series per run of an MLflow SQLite store; None when the database lacks MLflow's tables."""
    import sqlite3
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    table = "metrics" if "metrics" in tables else "latest_metrics"
    if not {"runs", "params", "tags", table} <= tables:
        return None
    conn.row_factory = sqlite3.Row
    experiments: dict[Any, Any] = {}
    if "experiments" in tables:
        rows = map(dict, conn.execute("SELECT * FROM experiments"))
        experiments = {r.get("experiment_id"): r.get("name") for r in rows}
    params: dict[str, dict[str, str]] = {}
    for row in conn.execute("SELECT run_uuid, key, value FROM params"):
        if len(by_run := params.setdefault(str(row[0]), {})) < MAX_PARAMS:
            by_run[str(row[1])] = str(row[2])
    tags: dict[str, dict[str, str]] = {}
    marks = ",".join("?" * len(TAGS))
    for row in conn.execute(f"SELECT run_uuid, key, value FROM tags WHERE key IN ({marks})", TAGS):
        if row[2]:
            tags.setdefault(str(row[0]), {})[str(row[1])] = str(row[2])[:VALUE_LIMIT].strip()
    keys: dict[str, list[str]] = {}
    for row in conn.execute(f"SELECT run_uuid, key FROM {table} GROUP BY run_uuid, key"):
        keys.setdefault(str(row[0]), []).append(str(row[1]))
    runs = sorted((dict(row) for row in conn.execute("SELECT * FROM runs")),
                  key=lambda r: (as_int(r.get("start_time")) or 0, str(r.get("run_uuid"))))
    found = []
    for run in runs:
        run_id = str(run.get("run_uuid"))
        series = MetricsSeries(path=rel, kind="mlflow_sqlite", position="record")
        loss = loss_key(keys.get(run_id, []))
        points: dict[str, list[Point]] = {}
        for key in _wanted(keys.get(run_id, []), loss):
            query = f"SELECT rowid, value, step, timestamp, is_nan FROM {table} WHERE run_uuid = ? AND key = ? "
            for row in conn.execute(query + "ORDER BY rowid", (run_id, key)):
                point = _db_point(*row)
                if point is None:
                    series._bad(row[0], f"metric {key!r}: value or step is not a number")
                else:
                    points.setdefault(key, []).append(point)
        _fill(series, loss, points, None)
        run.update(run_id=run_id, run_name=run.get("name"), experiment_name=experiments.get(run.get("experiment_id")))
        _describe(series, run, params.get(run_id, {}), tags.get(run_id, {}), rel)
        found.append(series)
    return found


def _read_db(folder: Folder, rel: str) -> list[MetricsSeries]:
    import sqlite3
    data: bytes | None = None
    try:
        with folder.open(rel) as handle:
            # in memory when it fits and this Python can deserialize; the file is only ever read
            if hasattr(sqlite3.Connection, "deserialize") and os.fstat(handle.fileno()).st_size <= DB_LIMIT:
                data = handle.read(DB_LIMIT + 1)
                data = data if len(data) <= DB_LIMIT else None
    except (EvidenceUnreadable, OSError) as exc:
        return [_problem(rel, "mlflow_sqlite", str(exc))]
    try:
        with contextlib.closing(_connect(folder, rel, data)) as conn:
            found = _db_runs(conn, rel)
    except sqlite3.Error as exc:
        return [_problem(rel, "mlflow_sqlite", f"cannot be read as an SQLite database ({exc})")]
    if found is None:  # another program's database is none of ours, unless its name says MLflow
        name = rel.rsplit("/", 1)[-1]
        return [_problem(rel, "mlflow_sqlite", "an SQLite database without MLflow's tables (runs, metrics, params, "
                         "tags)")] if "mlflow" in name.lower() else []
    wal = f"{rel}-wal"
    if wal in folder.files and folder.size(wal):
        for series in found:
            series.facts["unread_wal"] = f"{wal}: writes not yet checkpointed into {rel} are not read"
    return found


@register
class MLflowStore(MetricsSource):
    """MLflow's local tracking stores: each run of a file store (its meta.yaml) or of an SQLite store."""

    info = FormatInfo(
        id="mlflow", kind="metrics", title="MLflow tracking store (mlruns/ file store, mlflow.db SQLite)",
        looks_for=("mlruns/*/*/meta.yaml", "meta.yaml", "mlflow.db", "*.db", "*.sqlite"),
        reads="each run's training-loss metric per step (loss, train_loss, train/loss, ...), eval/val/test metrics, "
              "train_runtime & co, params (the plan: max_steps, epochs, batch size), the git-commit tag, and the "
              "run's status and start/end times; SQLite is read from its bytes, never written",
        proves="the loss curve each run logged, with the line (file store) or metrics-table row (SQLite) of "
               "every point, and how MLflow recorded the run ending (FINISHED, or FAILED/KILLED/still RUNNING); "
               "MLflow records what the script logged, not that the logging script was the one that trained",
    )

    def claims(self, rel: str, head: bytes) -> bool:
        """A run's meta.yaml (experiment-level meta.yaml has no run_id), or an SQLite file named like a store."""
        if rel.rsplit("/", 1)[-1] == "meta.yaml":
            return _RUN_META.search(head) is not None
        return head.startswith(SQLITE_MAGIC) and name_matches(rel, DB_NAMES)

    def read(self, folder: Folder, rel: str) -> list[MetricsSeries]:
        """One series per run: the run of a meta.yaml, or every run of an SQLite store."""
        if rel.rsplit("/", 1)[-1] == "meta.yaml":
            return _read_file_store(folder, rel)
        return _read_db(folder, rel)
