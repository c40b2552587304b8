"""W&B run folders written by the real wandb (offline, in subprocesses, in tmp) and read back by the wandb source
without it: loss curves, plan, commit, evals, outcome, and corrupt, truncated or killed runs. The oracle for what
was logged is wandb's own protobuf classes reading the same file; the source never imports wandb or protobuf."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.evidence.metrics import MetricsSeries
from auditor.evidence.opener import Folder
from auditor.evidence.sources import wandb as source
from auditor.evidence.sources.registry import METRICS

BLOCK = 32 * 1024
WRITER = r'''
import math, os, sys
import wandb

mode = sys.argv[1]
if mode == "good":
    run = wandb.init(project="t", config={"lr": 0.05, "max_steps": 50, "batch_size": 32})
    for step in range(1, 51):
        wandb.log({"loss": 2.0 / step + 0.1, "lr": 0.05 * (1 - step / 50)}, step=step)
        if step % 25 == 0:
            wandb.log({"eval/loss": 1.0 / step, "eval/accuracy": step / 100}, step=step)
    wandb.finish()
elif mode == "hf":  # the shape of HF Trainer's WandbCallback: train/* keys, its own global_step, summary finals
    run = wandb.init(project="t", config={"per_device_train_batch_size": 4, "num_train_epochs": 3, "max_steps": -1,
                                          "training": {"gradient_accumulation_steps": 2}})
    for i, (step, loss) in enumerate(((10, 2.5), (20, float("nan")), (30, 1.5))):
        wandb.log({"train/loss": loss, "train/grad_norm": 0.5 * (i + 1), "train/learning_rate": 1e-4,
                   "train/epoch": (i + 1) / 1.0, "train/global_step": step})
    wandb.log({"eval/loss": 1.25, "train/global_step": 30})
    run.summary["train_runtime"] = 12.5
    run.summary["train_samples_per_second"] = 40.0
    run.summary["train_loss"] = 2.0
    run.summary["total_flos"] = 1e9
    wandb.finish()
elif mode in ("killed", "killed_long"):
    run = wandb.init(project="t", config={"max_steps": 5000})
    for step in range(20 if mode == "killed" else 1500):
        wandb.log({"loss": 1.0 / (step + 1)}, step=step)
    if mode == "killed_long":
        import time
        time.sleep(1)
    os._exit(0)  # no wandb.finish(), no atexit: as a kill would
elif mode == "raised":
    run = wandb.init(project="t", config={"max_steps": 50})
    for step in range(1, 6):
        wandb.log({"loss": 1.0 / step}, step=step)
    raise RuntimeError("boom")
'''


def _frames(data: bytes) -> list[tuple[int, int, bytes]]:
    """The test's own reading of the framing: (offset, type, data) of each fragment, CRC not checked."""
    out, pos = [], 7
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = struct.unpack_from("<IHB", data, pos)
        if pos + 7 + length > len(data):
            break
        out.append((pos, kind, data[pos + 7:pos + 7 + length]))
        pos += 7 + length
    return out


def protobufs() -> Any:
    """wandb's own generated protobuf module (the oracle; the source under test never imports it)."""
    return importlib.import_module("wandb.proto.wandb_internal_pb2")


def oracle(data: bytes) -> list[tuple[int, Any]]:
    """(offset, Record) of each whole record, parsed by wandb's own protobuf classes."""
    pb = protobufs()

    out, parts, start = [], b"", 0
    for offset, kind, body in _frames(data):
        if kind in (1, 2):
            parts, start = body, offset
        else:
            parts += body
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(parts)
            out.append((start, record))
    return out


def history(data: bytes) -> list[tuple[int, int, dict[str, Any]]]:
    """(offset, step, {key: value}) of each history record, per the oracle."""
    rows = []
    for offset, record in oracle(data):
        if record.WhichOneof("record_type") == "history":
            items = {(item.key or ".".join(item.nested_key)): json.loads(item.value_json)
                     for item in record.history.item}
            rows.append((offset, record.history.step.num, items))
    return rows


def frame(kind: int, body: bytes) -> bytes:
    """One fragment as wandb writes it: CRC-32 of the type byte and the data, the length, the type."""
    return struct.pack("<IHB", zlib.crc32(body, zlib.crc32(bytes([kind]))), len(body), kind) + body


def append_record(data: bytes, body: bytes) -> bytes:
    """A record appended after the last one (padding the block when its header would not fit)."""
    left = BLOCK - len(data) % BLOCK
    if left < 7:
        data += b"\x00" * left
        left = BLOCK
    assert len(body) + 7 <= left, "the test appends small records"
    return data + frame(1, body)


@dataclass
class Run:
    root: Path
    rel: str  # the .wandb, folder-relative

    @property
    def path(self) -> Path:
        return self.root / self.rel

    def read(self, data: bytes | None = None) -> MetricsSeries:
        """The run read through Folder + the source (after replacing the .wandb's bytes with `data`)."""
        if data is not None:
            self.path.write_bytes(data)
        files = sorted(Path(top, name).relative_to(self.root).as_posix() for top, _, names in os.walk(self.root)
                       for name in names if Path(top, name).is_file() and not Path(top, name).is_symlink())
        src = METRICS["wandb"]
        claimed = [f for f in files if src.claims(f, b"")]
        assert src.select(claimed) == [self.rel]
        [series] = src.read(Folder(self.root, files), self.rel)
        return series

    def copy(self, dest: Path) -> Run:
        shutil.copytree(self.root, dest, symlinks=True)
        return Run(dest, self.rel)


def _write(tmp: Path, mode: str, git: bool = False) -> Run:
    tmp.mkdir(parents=True)
    if git:
        for args in (["init", "-q"], ["-c", "user.email=a@b.c", "-c", "user.name=t", "commit", "-q", "--allow-empty",
                                     "-m", "init"]):
            subprocess.run(["git", *args], cwd=tmp, check=True, capture_output=True, timeout=60)
    script = tmp / "train.py"
    script.write_text(WRITER, encoding="utf-8")
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": str(tmp),
           "WANDB_CONFIG_DIR": str(tmp / ".config"), "WANDB_CACHE_DIR": str(tmp / ".cache")}
    done = subprocess.run([sys.executable, str(script), mode], cwd=tmp, env=env, capture_output=True, text=True,
                          timeout=300)
    if mode in ("good", "hf") and done.returncode != 0:
        raise RuntimeError(f"wandb offline run failed:\n{done.stdout}\n{done.stderr}")
    [log] = [p for p in (tmp / "wandb").glob("offline-run-*/run-*.wandb") if not p.parent.is_symlink()]
    return Run(tmp, log.relative_to(tmp).as_posix())


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Real offline runs, one per scenario (read-only: copy before changing)."""
    try:
        import wandb  # noqa: F401
    except ImportError:
        pytest.skip("wandb is not installed here: no real W&B runs can be written")
    base = tmp_path_factory.mktemp("wandb_runs")
    try:
        good = _write(base / "good", "good", git=True)
    except (RuntimeError, ValueError, OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"wandb cannot make an offline run here: {exc}")
    return {"good": good, **{mode: _write(base / mode, mode) for mode in ("hf", "killed", "killed_long", "raised")}}


def test_registered_format() -> None:
    info = METRICS["wandb"].info
    assert (info.id, info.kind, info.looks_for) == ("wandb", "metrics", ("run-*.wandb", "wandb-history.jsonl"))
    assert info.reads and info.proves and info.extra is None
    src = METRICS["wandb"]
    assert src.claims("wandb/offline-run-20260101_000000-abc/run-abc.wandb", b"")
    assert src.claims("wandb/run-20260101_000000-abc/files/wandb-history.jsonl", b"")
    assert not src.claims("wandb/offline-run-20260101_000000-abc/files/output.log", b"")
    claimed = ["a/run-1/run-1.wandb", "a/run-1/files/wandb-history.jsonl", "b/run-2/files/wandb-history.jsonl"]
    assert src.select(claimed) == ["a/run-1/run-1.wandb", "b/run-2/files/wandb-history.jsonl"]


def test_reads_without_wandb_or_protobuf() -> None:
    code = ("import sys, auditor.evidence.sources.wandb; "
            "assert 'wandb' not in sys.modules and not any(m.startswith('google') for m in sys.modules), "
            "sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_what_offline_wandb_writes(runs: dict[str, Run]) -> None:
    """The files of an offline run (wandb 0.31): history lives only in the .wandb; no summary/config/metadata."""
    run = runs["good"]
    folder = run.path.parent
    names = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert {run.path.name, "files/requirements.txt", "logs/debug.log", "logs/debug-internal.log"} <= names
    assert not names & {"files/wandb-history.jsonl", "files/wandb-summary.json", "files/config.yaml"}
    data = run.path.read_bytes()
    assert data[:7] == b":W&B\xe1\xbe\x00"
    for offset, kind, body in _frames(data):  # the CRC is zlib's CRC-32 of type byte + data, unmasked
        assert kind in (1, 2, 3, 4)
        assert struct.unpack_from("<I", data, offset)[0] == zlib.crc32(bytes([kind]) + body)


def test_good_run(runs: dict[str, Run]) -> None:
    run = runs["good"]
    series = run.read()
    rows = history(run.path.read_bytes())
    assert series.count == 50 and series.bad_count == 0 and series.position == "byte"
    assert list(series.steps) == list(range(1, 51))
    assert list(series.losses) == [2.0 / step + 0.1 for step in range(1, 51)]
    assert list(series.lines) == [offset for offset, _, _ in rows]
    assert series.max_step == 50
    assert series.plan == {"max_steps": 50, "batch_size": 32}
    assert series.hparams == {"lr": 0.05, "max_steps": 50, "batch_size": 32}
    assert series.evals == {"eval/accuracy": 0.5, "eval/loss": 0.02} and series.eval_count == 2
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=run.root, capture_output=True, text=True, check=True)
    assert series.commit == head.stdout.strip()
    run_id = run.path.name[len("run-"):-len(".wandb")]
    assert series.run == f"wandb run {run_id}"
    assert series.facts["run_id"] == run_id and series.facts["project"] == "t"
    assert series.facts["program"] == str(run.root / "train.py") and series.facts["exit_code"] == "0"
    assert series.facts["wandb_version"] == importlib.metadata.version("wandb")
    assert series.facts["host"]
    exit_at = next(o for o, r in oracle(run.path.read_bytes()) if r.WhichOneof("record_type") == "exit")
    assert series.outcome is not None
    assert (series.outcome.status, series.outcome.succeeded, series.outcome.line) == ("exit 0", True, exit_at)
    assert series.at(series.outcome.line) == f"{run.rel} (byte {exit_at})"
    summary_runtime = [json.loads(item.value_json) for _, r in oracle(run.path.read_bytes())
                       if r.WhichOneof("record_type") == "summary" for item in r.summary.update
                       if (item.key or ".".join(item.nested_key)) == "_runtime"][-1]
    assert series.final is not None
    assert (series.final.values, series.final.step) == ({"train_runtime": summary_runtime}, 50)


def test_hf_shaped_run(runs: dict[str, Run]) -> None:
    """train/loss with the trainer's own global_step, epoch and grad norm; NaN kept and flagged; summary finals."""
    series = runs["hf"].read()
    assert list(series.steps) == [10, 20, 30]
    assert series.losses[0] == 2.5 and series.losses[2] == 1.5 and series.losses[1] != series.losses[1]
    assert list(series.epochs) == [1.0, 2.0, 3.0]
    assert series.nonfinite_count == 1 and series.nonfinite[0][1] == 20
    assert series.plan == {"num_epochs": 3.0, "batch_size": 4, "gradient_accumulation_steps": 2}
    assert series.evals == {"eval/loss": 1.25} and series.eval_count == 1
    assert series.final is not None
    assert series.final.values == {"train_runtime": 12.5, "train_samples_per_second": 40.0, "train_loss": 2.0,
                                   "total_flos": 1e9}
    assert series.final.step == 30  # the trainer's step, not W&B's row counter
    assert series.outcome is not None and series.outcome.succeeded
    assert series.commit is None  # not a git checkout


def test_killed_before_finish(runs: dict[str, Run]) -> None:
    """os._exit without wandb.finish(): no exit record. wandb-core buffers whole blocks, so a short killed run
    holds only the header; a longer one holds the blocks it flushed, and the record cut at the end is named."""
    short = runs["killed"].read()
    assert short.count == len(history(runs["killed"].path.read_bytes()))  # 0 with wandb 0.31: header only
    assert short.outcome is not None
    assert (short.outcome.status, short.outcome.succeeded) == ("no exit record", False)
    run = runs["killed_long"]
    series = run.read()
    data = run.path.read_bytes()
    rows = history(data)
    assert 0 < series.count == len(rows) < 1500
    assert list(series.steps) == list(range(series.count))
    assert list(series.losses) == [1.0 / (step + 1) for step in range(series.count)]
    assert series.outcome is not None and not series.outcome.succeeded and series.outcome.status == "no exit record"
    assert series.final is None
    frames = _frames(data)
    if frames[-1][1] in (2, 3):  # the file stops between a record's fragments
        start = max(offset for offset, kind, _ in frames if kind == 2)
        assert series.bad_lines[-1][0] == start and "truncated" in series.bad_lines[-1][1]


def test_raised_exception(runs: dict[str, Run]) -> None:
    series = runs["raised"].read()
    assert list(series.steps) == [1, 2, 3, 4, 5] and list(series.losses) == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert series.outcome is not None
    assert (series.outcome.status, series.outcome.succeeded) == ("exit code 1", False)
    assert series.facts["exit_code"] == "1" and series.final is None


def test_flipped_byte_in_history_record(runs: dict[str, Run], tmp_path: Path) -> None:
    run = runs["good"].copy(tmp_path / "run")
    data = bytearray(run.path.read_bytes())
    assert len(data) < BLOCK  # one block: a corrupt fragment costs the rest of it, here the rest of the file
    rows = history(bytes(data))
    offset, step, _ = rows[20]
    data[offset + 20] ^= 0x01
    series = run.read(bytes(data))
    assert series.bad_lines[0][0] == offset and series.bad_lines[0][1].startswith("record CRC mismatch")
    assert series.at(offset) == f"{run.rel} (byte {offset})"
    assert list(series.steps) == list(range(1, step)) and series.bad_count == 1
    assert series.outcome is not None and not series.outcome.succeeded


def test_truncated_file(runs: dict[str, Run], tmp_path: Path) -> None:
    run = runs["good"].copy(tmp_path / "run")
    data = run.path.read_bytes()
    offset, step, _ = history(data)[30]
    series = run.read(data[:offset + 11])
    assert series.bad_lines == [(offset, series.bad_lines[0][1])] and "truncated" in series.bad_lines[0][1]
    assert list(series.steps) == list(range(1, step))
    assert series.outcome is not None and series.outcome.status == "no exit record"
    clean = run.read(data[:offset])  # cut between records: nothing bad to say, but the end is missing
    assert clean.bad_count == 0 and clean.count == step - 1 and clean.outcome is not None
    assert not clean.outcome.succeeded
    header = run.read(data[:offset + 3])
    assert "truncated" in header.bad_lines[0][1] and header.bad_lines[0][0] == offset


def test_not_a_wandb_log(runs: dict[str, Run], tmp_path: Path) -> None:
    run = runs["good"].copy(tmp_path / "run")
    series = run.read(b"PK\x03\x04 something else entirely")
    assert series.count == 0 and series.bad_lines[0][0] == 0 and "not a W&B transaction log" in series.bad_lines[0][1]
    assert "empty" in run.read(b"").bad_lines[0][1]


def test_environment_gpu_facts(runs: dict[str, Run], tmp_path: Path) -> None:
    """GPU name and count from an EnvironmentRecord as wandb's own protobuf classes encode it (no GPU here)."""
    pb = protobufs()

    record = pb.Record()
    record.environment.gpu_type = "NVIDIA H200"
    record.environment.gpu_count = 8
    record.environment.cuda_version = "12.8"
    record.environment.gpu_nvidia.add(name="NVIDIA H200", memory_total=150_000_000_000)
    run = runs["good"].copy(tmp_path / "run")
    series = run.read(append_record(run.path.read_bytes(), record.SerializeToString()))
    assert (series.facts["gpu"], series.facts["gpu_count"], series.facts["cuda_version"]) == ("NVIDIA H200", "8",
                                                                                              "12.8")
    assert series.count == 50 and series.bad_count == 0


def test_large_record_across_blocks(runs: dict[str, Run], tmp_path: Path) -> None:
    """A record longer than a block is cut into FIRST/MIDDLE/LAST fragments and read whole."""
    pb = protobufs()

    record = pb.Record()
    record.history.step.num = 51
    for key, value in (("loss", 0.125), ("blob", "x" * 70_000)):
        record.history.item.add(nested_key=[key], value_json=json.dumps(value))
    body = record.SerializeToString()
    run = runs["good"].copy(tmp_path / "run")
    data = run.path.read_bytes()
    at = pos = len(data)
    pieces = []
    while body:
        room = BLOCK - pos % BLOCK - 7
        pieces.append(body[:room])
        body, pos = body[room:], pos + 7 + room
    kinds = [2] + [3] * (len(pieces) - 2) + [4]
    series = run.read(data + b"".join(frame(k, p) for k, p in zip(kinds, pieces, strict=True)))
    assert len(pieces) == 3 and series.bad_count == 0
    assert list(series.steps)[-1] == 51 and series.losses[-1] == 0.125 and series.lines[-1] == at


def test_history_jsonl_only(tmp_path: Path) -> None:
    """A run synced back as files/ only (hand-written here in W&B's shapes: offline wandb writes none of these)."""
    files = tmp_path / "wandb" / "run-20260101_120000-abc123" / "files"
    files.mkdir(parents=True)
    lines = [{"loss": 2.0, "_step": 0, "_runtime": 1.0}, {"loss": 1.0, "_step": 1, "eval": {"loss": 0.5}},
             "not json", {"train": {"loss": 9.0}, "loss": 0.5, "_step": 2}]
    (files / "wandb-history.jsonl").write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines)
                                               + "\n", encoding="utf-8")
    (files / "config.yaml").write_text("wandb_version: 1\n_wandb:\n  value: {cli_version: 0.31.0}\nmax_steps:\n"
                                       "  desc: null\n  value: 3\nbatch_size:\n  value: 16\n", encoding="utf-8")
    (files / "wandb-summary.json").write_text(json.dumps({"_runtime": 3.5, "_step": 2, "loss": 0.5}), "utf-8")
    (files / "wandb-metadata.json").write_text(json.dumps({"host": "node1", "gpu": "NVIDIA A100-SXM4-80GB",
                                                           "gpu_count": 4, "program": "train.py",
                                                           "git": {"commit": "abc123", "remote": "x"}}), "utf-8")
    rel = "wandb/run-20260101_120000-abc123/files/wandb-history.jsonl"
    all_files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    [series] = METRICS["wandb"].read(Folder(tmp_path, all_files), rel)
    assert (series.position, list(series.steps), list(series.losses)) == ("line", [0, 1, 2], [2.0, 1.0, 0.5])
    assert list(series.lines) == [1, 2, 4] and series.bad_lines == [(3, "not a JSON object: 'not json'")]
    assert series.plan == {"max_steps": 3, "batch_size": 16} and series.hparams == {"max_steps": 3, "batch_size": 16}
    assert series.evals == {"eval.loss": 0.5} and series.commit == "abc123"
    assert (series.facts["host"], series.facts["gpu"], series.facts["gpu_count"]) == ("node1",
                                                                                      "NVIDIA A100-SXM4-80GB", "4")
    assert series.facts["run_id"] == "abc123" and series.outcome is None  # a synced history records no exit
    assert series.final is None  # no trainer figures, and no recorded end to vouch for _runtime


def test_protobuf_reader_skips_unknown_fields() -> None:
    pb = protobufs()

    record = pb.Record(num=7)
    record.history.step.num = 3
    record.history.item.add(key="loss", value_json="0.75")
    record.history.item.add(nested_key=["a", "b"], value_json='"text"')
    record.uuid = "u" * 300  # a length-delimited field with a two-byte length
    data = record.SerializeToString() + b"\xa8\x1f\x05" + b"\xb1\x1f" + b"\x00" * 8  # unknown varint and fixed64
    assert [n for n, _ in source.fields(data)] == [1, 2, 19, 501, 502]
    with pytest.raises(source.Malformed):
        list(source.fields(b"\x0a\x05abc"))


FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 255), st.sampled_from(["flip", "set", "cut",
                                                                                         "drop", "insert"])),
                min_size=1, max_size=6))
def test_random_mutations_never_raise(runs: dict[str, Run], tmp_path_factory: pytest.TempPathFactory,
                                      edits: list[tuple[int, int, str]]) -> None:
    base = runs["hf"]
    data = bytearray(base.path.read_bytes())
    for where, value, how in edits:
        at = where % max(len(data), 1)
        if how == "flip":
            data[at:at + 1] = bytes([data[at] ^ (1 << (value % 8))]) if data else b""
        elif how == "set":
            data[at:at + 1] = bytes([value])
        elif how == "cut":
            del data[at:]
        elif how == "drop":
            del data[at:at + 1 + value % 16]
        else:
            data[at:at] = bytes([value]) * (1 + value % 8)
    folder = tmp_path_factory.mktemp("fuzz")
    target = folder / base.rel
    target.parent.mkdir(parents=True)
    target.write_bytes(bytes(data))
    [series] = METRICS["wandb"].read(Folder(folder, [base.rel]), base.rel)
    assert series.count == len(series.steps) == len(series.lines) <= series.records
    assert all(0 <= position <= len(data) for position, _ in series.bad_lines)
    assert series.outcome is not None


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 10**9), st.sampled_from([0, 0x80, 0xFF, 0x0A, 0x12])),
                min_size=1, max_size=8))
def test_garbage_in_well_framed_records_never_raises(runs: dict[str, Run], tmp_path_factory: pytest.TempPathFactory,
                                                     edits: list[tuple[int, int, int]]) -> None:
    """Mutated record bodies with their CRCs recomputed: the protobuf decoding itself meets garbage."""
    base = runs["hf"]
    data = bytearray(base.path.read_bytes())
    frames = _frames(bytes(data))
    for which, where, value in edits:
        offset, kind, body = frames[which % len(frames)]
        if not body:
            continue
        data[offset + 7 + where % len(body)] = value
        changed = bytes(data[offset + 7:offset + 7 + len(body)])
        struct.pack_into("<I", data, offset, zlib.crc32(changed, zlib.crc32(bytes([kind]))))
    folder = tmp_path_factory.mktemp("garbage")
    target = folder / base.rel
    target.parent.mkdir(parents=True)
    target.write_bytes(bytes(data))
    [series] = METRICS["wandb"].read(Folder(folder, [base.rel]), base.rel)
    assert not any("CRC" in reason for _, reason in series.bad_lines)
    assert series.count <= 3 and series.outcome is not None
