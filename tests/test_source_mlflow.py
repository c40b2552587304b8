"""MLflow's two local stores, written by the real mlflow (one subprocess, in tmp, no server) and read back by the
mlflow source without it: loss curves, plan, commit, evals, outcome, bad lines, and an SQLite store left as it was."""

from __future__ import annotations

import ast
import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from auditor.evidence.metrics import MetricsSeries
from auditor.evidence.opener import Folder
from auditor.evidence.sources import mlflow as source
from auditor.evidence.sources.registry import METRICS

COMMIT = "abc123def4567890abc123def4567890abc12345"
LOSSES = [2.0 / step + 0.1 for step in range(1, 51)]  # the writer logs the same expressions: exact doubles
WRITER = r'''
import json, sys
import mlflow
from mlflow import MlflowClient

out = {}
for store, uri in (("file", sys.argv[1]), ("sqlite", sys.argv[2])):
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    experiment = mlflow.set_experiment("tiny").experiment_id
    ids = {}
    with mlflow.start_run(run_name="good") as run:
        mlflow.log_params({"lr": 0.001, "max_steps": 50, "batch_size": 8})
        mlflow.set_tag("mlflow.source.git.commit", "THE_COMMIT")
        for step in range(1, 51):
            mlflow.log_metric("loss", 2.0 / step + 0.1, step=step)
            mlflow.log_metric("learning_rate", 0.001, step=step)
        mlflow.log_metric("eval_loss", 0.9, step=25)
        mlflow.log_metric("eval_loss", 0.5, step=50)
        mlflow.log_metric("val/acc", 0.75, step=50)
        ids["good"] = run.info.run_id
    with mlflow.start_run(run_name="hf") as run:  # what HF Trainer's MLflowCallback logs
        mlflow.log_params({"per_device_train_batch_size": 4, "num_train_epochs": 1.5, "max_steps": -1})
        for step, epoch, loss, grad in ((10, 0.5, 2.5, 1.0), (20, 1.0, 2.0, float("nan")), (30, 1.5, 1.5, 0.5)):
            mlflow.log_metrics({"loss": loss, "epoch": epoch, "grad_norm": grad}, step=step)
        mlflow.log_metrics({"train_runtime": 12.5, "train_samples_per_second": 40.0, "train_loss": 2.0,
                            "total_flos": 1e9, "epoch": 1.5}, step=30)
        ids["hf"] = run.info.run_id
    with mlflow.start_run(run_name="slash") as run:
        for step in range(1, 6):
            mlflow.log_metric("train/loss", 1.0 / step, step=step)
        mlflow.log_metric("val_loss", 0.25, step=5)
        ids["slash"] = run.info.run_id
    run = mlflow.start_run(run_name="failed")
    mlflow.log_metric("loss", 3.0, step=1)
    mlflow.end_run(status="FAILED")
    ids["failed"] = run.info.run_id
    for name in ("killed", "running"):
        run = client.create_run(experiment, run_name=name)
        client.log_metric(run.info.run_id, "loss", 3.0, step=1)
        ids[name] = run.info.run_id
    client.set_terminated(ids["killed"], "KILLED")  # "running" is never ended
    out[store] = {"experiment": experiment, "ids": ids}
print(json.dumps(out))
'''.replace("THE_COMMIT", COMMIT)


def listing(root: Path) -> list[str]:
    """The folder's files as RunEvidence lists them: folder-relative posix paths, sorted."""
    return sorted(Path(d, f).relative_to(root).as_posix() for d, _, names in os.walk(root) for f in names)


def read_all(root: Path) -> list[MetricsSeries]:
    """Every series the source reads from the files it claims."""
    folder = Folder(root, listing(root))
    reader = METRICS["mlflow"]
    return [s for rel in folder.files if reader.claims(rel, folder.head(rel)) for s in reader.read(folder, rel)]


def by_name(root: Path) -> dict[str, MetricsSeries]:
    """The series of each run, by run name."""
    return {s.facts["run_name"]: s for s in read_all(root)}


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file's bytes and modification time."""
    return {rel: ((root / rel).read_bytes(), (root / rel).stat().st_mtime_ns) for rel in listing(root)}


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict]]:
    """A file store (run folder holding mlruns/) and an SQLite store (a folder holding mlflow.db), same runs."""
    base = tmp_path_factory.mktemp("mlflow")
    file_root, db_root, scratch = base / "file_run", base / "db_run", base / "scratch"
    for folder in (file_root, db_root, scratch):
        folder.mkdir()
    (scratch / "write_runs.py").write_text(WRITER, encoding="utf-8")
    # MLflow 3.x refuses the file store (maintenance mode) unless MLFLOW_ALLOW_FILE_STORE is true
    env = {**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    done = subprocess.run([sys.executable, "write_runs.py", f"file:{file_root / 'mlruns'}",
                           f"sqlite:///{db_root / 'mlflow.db'}"], cwd=scratch, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    written = json.loads(done.stdout.strip().splitlines()[-1])
    return {"file": (file_root, written["file"]), "sqlite": (db_root, written["sqlite"])}


def copy_of(root: Path, tmp_path: Path) -> Path:
    """A writable copy of a module-scoped store."""
    return Path(shutil.copytree(root, tmp_path / root.name))


def test_registered_and_free_of_mlflow() -> None:
    assert METRICS["mlflow"].info.id == "mlflow" and METRICS["mlflow"].info.kind == "metrics"
    assert isinstance(METRICS["mlflow"], source.MLflowStore)
    tree = ast.parse(Path(source.__file__).read_text(encoding="utf-8"))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not imported & {"mlflow", "sqlalchemy", "alembic"}


def test_loss_metric_rule() -> None:
    assert source.loss_key(["eval_loss", "train_loss", "loss", "val_loss"]) == "loss"
    assert source.loss_key(["train_loss_epoch", "train_loss_step"]) == "train_loss_step"
    assert source.loss_key(["Loss/train", "Loss/val"]) == "Loss/train"
    assert source.loss_key(["train/loss", "training_loss"]) == "train/loss"
    assert source.loss_key(["val_loss", "eval_loss", "test/loss", "train_loss_epoch"]) is None
    assert [k for k in ("eval_loss", "val/acc", "Loss/val", "validation_loss", "test_f1", "value", "loss")
            if source.is_eval(k)] == ["eval_loss", "val/acc", "Loss/val", "validation_loss", "test_f1"]


def test_claims(stores: dict[str, tuple[Path, dict]]) -> None:
    root, written = stores["file"]
    folder = Folder(root, listing(root))
    claimed = [rel for rel in folder.files if source.MLflowStore().claims(rel, folder.head(rel))]
    experiment = written["experiment"]
    assert claimed == sorted(f"mlruns/{experiment}/{i}/meta.yaml" for i in written["ids"].values())
    assert f"mlruns/{experiment}/meta.yaml" in folder.files  # the experiment's own meta.yaml: not a run
    db_root, _ = stores["sqlite"]
    head = (db_root / "mlflow.db").read_bytes()[:4096]
    mlflow_source = source.MLflowStore()
    assert mlflow_source.claims("mlflow.db", head) and mlflow_source.claims("logs/tracking.sqlite", head)
    assert not mlflow_source.claims("mlflow.db", b"not sqlite") and not mlflow_source.claims("notes.txt", head)
    assert not mlflow_source.claims("cfg/meta.yaml", b"name: x\nexperiment_id: '1'\n")


@pytest.mark.parametrize("store", ["file", "sqlite"])
def test_finished_run(stores: dict[str, tuple[Path, dict]], store: str) -> None:
    root, written = stores[store]
    runs = by_name(root)
    assert sorted(runs) == ["failed", "good", "hf", "killed", "running", "slash"]
    good, run_id = runs["good"], written["ids"]["good"]
    assert list(good.steps) == list(range(1, 51)) and list(good.losses) == LOSSES
    assert good.count == 50 and good.records == 50 and good.max_step == 50 and good.bad_count == 0
    assert good.plan == {"max_steps": 50, "batch_size": 8}
    assert good.hparams == {"lr": "0.001", "max_steps": "50", "batch_size": "8"}
    assert good.commit == COMMIT
    assert good.evals == {"eval_loss": 0.5, "val/acc": 0.75} and good.eval_count == 2
    assert good.final is None and good.nonfinite_count == 0
    assert {k: good.facts[k] for k in ("run_id", "run_name", "status", "experiment_name", "source_name")} == {
        "run_id": run_id, "run_name": "good", "status": "FINISHED", "experiment_name": "tiny",
        "source_name": "write_runs.py"}
    assert good.facts["experiment_id"] == str(written["experiment"])
    assert good.facts["started_at"] < good.facts["ended_at"] and float(good.facts["wall_seconds"]) > 0
    assert good.outcome is not None and good.outcome.succeeded and good.outcome.status == "finished"
    if store == "file":
        path = f"mlruns/{written['experiment']}/{run_id}/metrics/loss"
        assert good.path == path and good.kind == "mlflow" and good.position == "line"
        assert list(good.lines) == list(range(1, 51)) and good.at(37) == f"{path}:37"
        meta = f"mlruns/{written['experiment']}/{run_id}/meta.yaml"
        assert good.outcome.detail == f"{meta}: MLflow run {run_id} ended FINISHED"
    else:
        assert good.path == "mlflow.db" and good.kind == "mlflow_sqlite" and good.position == "record"
        assert good.at(good.lines[36]) == f"mlflow.db (record {good.lines[36]})"
        with closing(sqlite3.connect(f"file:{root / 'mlflow.db'}?mode=ro&immutable=1", uri=True)) as conn:
            rows = [conn.execute("SELECT key, value, step, run_uuid FROM metrics WHERE rowid = ?", (n,)).fetchone()
                    for n in good.lines]
        assert rows == [("loss", loss, step, run_id) for step, loss in enumerate(LOSSES, 1)]


@pytest.mark.parametrize("store", ["file", "sqlite"])
def test_hf_shaped_and_slash_runs(stores: dict[str, tuple[Path, dict]], store: str) -> None:
    root, written = stores[store]
    runs = by_name(root)
    hf = runs["hf"]  # `loss` is the curve; HF's run-average `train_loss` belongs to the final record
    assert list(hf.steps) == [10, 20, 30] and list(hf.losses) == [2.5, 2.0, 1.5] and list(hf.epochs) == [0.5, 1.0, 1.5]
    assert hf.max_epoch == 1.5 and hf.grad_nonfinite_count == 1 and math.isnan(hf.grad_nonfinite[0][1])
    assert hf.grad_nonfinite[0][0] == hf.lines[1]
    assert hf.plan == {"batch_size": 4, "num_epochs": 1.5}  # max_steps=-1 is HF's "not set"
    assert hf.final is not None and hf.final.step == 30
    assert hf.final.values == {"train_runtime": 12.5, "train_samples_per_second": 40.0, "train_loss": 2.0,
                               "total_flos": 1e9}
    assert hf.commit is None and hf.evals == {} and hf.eval_count == 0
    slash = runs["slash"]
    assert list(slash.steps) == [1, 2, 3, 4, 5] and list(slash.losses) == [1.0 / s for s in range(1, 6)]
    assert slash.evals == {"val_loss": 0.25} and slash.eval_count == 1
    if store == "file":
        run_dir = f"mlruns/{written['experiment']}"
        assert hf.final.path == f"{run_dir}/{written['ids']['hf']}/metrics/train_runtime" and hf.final.line == 1
        assert slash.path == f"{run_dir}/{written['ids']['slash']}/metrics/train/loss"
    else:
        assert hf.final.path == "mlflow.db" and hf.final.line is None


@pytest.mark.parametrize("store", ["file", "sqlite"])
def test_runs_that_did_not_finish(stores: dict[str, tuple[Path, dict]], store: str) -> None:
    runs = by_name(stores[store][0])
    for name in ("failed", "killed", "running"):
        series = runs[name]
        assert list(series.losses) == [3.0] and list(series.steps) == [1]
        assert series.outcome is not None and not series.outcome.succeeded
        assert series.outcome.status == name
        assert series.facts["status"] == name.upper()
    assert "ended_at" not in runs["running"].facts and "still RUNNING" in runs["running"].outcome.detail


def test_corrupt_metric_lines(stores: dict[str, tuple[Path, dict]], tmp_path: Path) -> None:
    root, written = stores["file"]
    root = copy_of(root, tmp_path)
    run = f"mlruns/{written['experiment']}/{written['ids']['good']}"
    loss_file = root / run / "metrics" / "loss"
    lines = loss_file.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[36] = "1796173138595 not-a-number 37\n"
    lines.append("1796173138599 0.5\n")  # two fields: MLflow reads step 0
    loss_file.write_text("".join([*lines, "truncated-at-the-en"]), encoding="utf-8")
    (root / run / "metrics" / "eval_loss").write_text("1 0.9 25\n\n", encoding="utf-8")
    good = by_name(root)["good"]
    assert good.bad_count == 3
    assert good.bad_lines[0] == (37, "not `timestamp value step`: '1796173138595 not-a-number 37'")
    assert good.bad_lines[1] == (52, "not `timestamp value step`: 'truncated-at-the-en'")
    assert good.bad_lines[2] == (0, f"{run}/metrics/eval_loss:2: not `timestamp value step`: ''")
    assert good.at(37) == f"{run}/metrics/loss:37"
    assert good.count == 50 and list(good.steps)[-1] == 0 and good.lines[-1] == 51 and good.losses[-1] == 0.5
    assert list(good.losses)[:36] == LOSSES[:36] and list(good.losses)[36:49] == LOSSES[37:]
    assert good.evals == {"eval_loss": 0.9, "val/acc": 0.75}


def test_bounded_reads_and_foreign_meta(stores: dict[str, tuple[Path, dict]], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    root, written = stores["file"]
    root = copy_of(root, tmp_path)
    run = f"mlruns/{written['experiment']}/{written['ids']['good']}"
    size = len((root / run / "metrics" / "loss").read_bytes())
    monkeypatch.setattr(source, "METRIC_LIMIT", size // 2)
    good = by_name(root)["good"]
    kept = (root / run / "metrics" / "loss").read_bytes()[: size // 2].count(b"\n")
    assert good.count == kept and list(good.losses) == LOSSES[:kept]
    assert good.bad_lines == [(0, f"{run}/metrics/loss is larger than {size // 2:,} bytes: read up to there")]
    (root / "tool").mkdir()
    (root / "tool" / "meta.yaml").write_text("run_id: 7\nowner: someone\n", encoding="utf-8")  # not MLflow's
    folder = Folder(root, listing(root))
    assert source.MLflowStore().claims("tool/meta.yaml", folder.head("tool/meta.yaml"))
    assert source.MLflowStore().read(folder, "tool/meta.yaml") == []
    (root / "tool" / "meta.yaml").write_text("run_id: [unclosed\n", encoding="utf-8")
    broken = source.MLflowStore().read(folder, "tool/meta.yaml")
    assert [s.bad_lines for s in broken] == [[(0, "meta.yaml is not YAML")]]


def test_non_mlflow_and_broken_sqlite(stores: dict[str, tuple[Path, dict]], tmp_path: Path) -> None:
    db = (stores["sqlite"][0] / "mlflow.db").read_bytes()
    root = tmp_path / "run"
    root.mkdir()
    (root / "broken").mkdir()
    (root / "broken" / "mlflow.db").write_bytes(db[:8192])  # truncated: page 1 is there, the tables are not
    (root / "junk.sqlite").write_bytes(source.SQLITE_MAGIC + b"\x00" * 84)
    for name in ("other", "mlflow_other"):
        conn = sqlite3.connect(root / f"{name}.db")
        conn.execute("CREATE TABLE trials (id INTEGER, value REAL)")
        conn.commit()
        conn.close()
    found = {s.path: s for s in read_all(root)}
    assert sorted(found) == ["broken/mlflow.db", "junk.sqlite", "mlflow_other.db"]  # other.db: another tool's
    assert found["broken/mlflow.db"].bad_lines == [
        (0, "cannot be read as an SQLite database (database disk image is malformed)")]
    assert found["junk.sqlite"].bad_count == 1 and found["junk.sqlite"].bad_lines[0][1].startswith(
        "cannot be read as an SQLite database (")
    assert found["mlflow_other.db"].bad_lines == [
        (0, "an SQLite database without MLflow's tables (runs, metrics, params, tags)")]
    assert all(s.count == 0 and s.outcome is None for s in found.values())


@pytest.mark.parametrize("in_memory", [True, False])
def test_sqlite_read_leaves_folder_byte_identical(stores: dict[str, tuple[Path, dict]], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch, in_memory: bool) -> None:
    root = copy_of(stores["sqlite"][0], tmp_path)
    if not in_memory:  # the fallback: opened in place, read-only and immutable (Python 3.10, or a large store)
        monkeypatch.setattr(source, "DB_LIMIT", 0)
    before = snapshot(root)
    runs = by_name(root)
    assert list(runs["good"].losses) == LOSSES and runs["good"].commit == COMMIT
    assert snapshot(root) == before  # same files (no -journal, -wal or -shm), same bytes, same mtimes


def test_wal_mode_store(stores: dict[str, tuple[Path, dict]], tmp_path: Path) -> None:
    root = copy_of(stores["sqlite"][0], tmp_path)
    conn = sqlite3.connect(root / "mlflow.db")
    assert conn.execute("PRAGMA journal_mode = WAL").fetchone() == ("wal",)
    conn.close()  # checkpointed: the -wal file is gone, the header still says WAL
    assert (root / "mlflow.db").read_bytes()[18:20] == b"\x02\x02" and listing(root) == ["mlflow.db"]
    before = snapshot(root)
    good = by_name(root)["good"]
    assert list(good.losses) == LOSSES and "unread_wal" not in good.facts
    assert snapshot(root) == before
