"""Weights & Biases run folders (`wandb/offline-run-<date>-<id>/`, `wandb/run-<date>-<id>/`) read without wandb.
One series per run.

What wandb 0.31 writes (offline): `run-<id>.wandb`, `files/requirements.txt`, `files/output.log` (once the script
prints), `logs/debug*.log`; no summary, config or metadata file. Online runs also keep `files/config.yaml`,
`files/wandb-summary.json` and `files/wandb-metadata.json` (wandb's file names; not written offline, so not seen
here): they are read when present, and fill what the .wandb did not say. The per-step history is only in
`run-<id>.wandb`: a 7-byte header (`:W&B`, 0xBEE1 LE, version 0), then a LevelDB-log-style stream of 32 KiB blocks.
Each fragment has a 7-byte header (CRC-32 (4 bytes LE), length (2 bytes LE), type: 1 FULL, 2 FIRST, 3 MIDDLE, 4
LAST) and a block's last <7 bytes are padding. The CRC is zlib's plain CRC-32 (IEEE) of the type byte and the data,
unmasked (checked against files wandb-core 0.31 wrote; no CRC-32C). Records are `wandb_internal.Record` protobufs,
decoded here with a minimal wire-format reader (unknown fields skipped): history (2: items {key 1 | nested_key 2,
value_json 16}, step 2.1), summary (3), config (5), run (17: id, project, config, display name, host, start time,
git commit), exit (18: exit_code, runtime), header (21), preempting (23), environment (26: os, python, program, git,
host, GPU). A nested key (`{"train": {"loss": x}}`) reads as `train.loss`. A history-only
`files/wandb-history.jsonl` (a run synced back, no .wandb beside it, or one whose .wandb holds no history) is read
line by line instead.

The training loss is one key per run, chosen as MLflow's is (`mlflow.loss_key`): the first of `loss`,
`train_loss`, `train_loss_step`, `training_loss`, `loss_train` that the key normalises to (lower case; '/', '.',
'-', ' ' read as '_'): so `loss`, then `train/loss` (HF Trainer's WandbCallback), `train_loss`, `train.loss`,
`train_loss_step` (Lightning), `training_loss`, `Loss/train`; ties go to the key that sorts first; never an
eval/val/test key. The step of a point is the row's `train/global_step`, `trainer/global_step` or `global_step`
when it logs one (the trainer's own step, which HF and Lightning make their x-axis), else W&B's step. Evaluation
metrics are the keys `mlflow.is_eval` names (a '/'-part starting eval, val, test, ...); eval_count counts history
rows carrying one. The outcome is the exit record: exit code 0 succeeded; no exit record: the run did not end
cleanly (killed, crashed hard, or still running: wandb-core buffers, so a killed short run may hold only the
header). The final record holds the summary's train_runtime & co (HF writes them there); when the run exited 0
and has no trainer train_runtime, W&B's `_runtime` (wall seconds since wandb.init, setup included) stands in for
it. Its step is the series' furthest step. A loss of `train_loss` is never also the final record's run average.
Several W&B runs in one folder are independent runs (`series.run` is `wandb run <id>`).

Problems are recorded on the series by byte offset (a fragment whose CRC does not match: the rest of its block is
skipped, as LevelDB does; a length past its block; a file that ends inside a record), never raised. The .wandb file
is streamed block by block: memory holds one block, one record (at most MAX_RECORD bytes; a larger one is skipped
and named) and the loss points. Side files (summary, metadata, config.yaml) are read up to SIDE_LIMIT; a history
line up to LINE_LIMIT."""

from __future__ import annotations

import math
import re
import struct
import zlib
from array import array
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import Any, BinaryIO

from auditor.evidence.jsonload import load_json, load_yaml
from auditor.evidence.metrics import FINAL_MARKERS, MAX_KEPT, FinalRecord, MetricsSeries, SourceOutcome, as_float
from auditor.evidence.opener import EvidenceUnreadable, Folder
from auditor.evidence.plan import plan_fields
from auditor.evidence.protowire import WireError, spans
from auditor.evidence.sources.interface import FormatInfo, MetricsSource
from auditor.evidence.sources.mlflow import FINAL_KEYS, is_eval, loss_key
from auditor.evidence.sources.registry import register

HEADER = struct.Struct("<4sHB")  # ident, magic, version
IDENT, MAGIC, VERSION = b":W&B", 0xBEE1, 0
FRAGMENT = struct.Struct("<IHB")  # CRC-32 of type byte + data, data length, type
BLOCK = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
TYPE_NAMES = {FULL: "FULL", FIRST: "FIRST", MIDDLE: "MIDDLE", LAST: "LAST"}
SEEDS = {kind: zlib.crc32(bytes([kind])) for kind in TYPE_NAMES}
MAX_RECORD = 16 << 20
SIDE_LIMIT = 4 << 20
LINE_LIMIT = 16 << 20
VALUE_LIMIT = 64 << 10  # a config value's JSON
MAX_PARAMS = 10_000
MAX_EVALS = 1_000
MAX_ROLES = 100_000  # key roles remembered (a run logging more distinct keys works them out again)
HISTORY_NAME = "wandb-history.jsonl"
STEP_KEYS = ("train/global_step", "trainer/global_step", "global_step")
SIDE_KEYS = {"epoch": "epoch", "train/epoch": "epoch", "grad_norm": "grad_norm", "train/grad_norm": "grad_norm"}
SUMMARY_KEYS = FINAL_KEYS | {"_runtime", "_step"}
# how a summary key looks serialized (the tag of key or nested_key, its length, the name): a summary record is
# only decoded, once at the end, where it is the last to mention one of these
_SUMMARY_MARKS = re.compile(b"[\x0a\x12](" + b"|".join(re.escape(bytes([len(k)]) + k.encode())
                                                       for k in sorted(SUMMARY_KEYS)) + b")")
_RUN_DIR = re.compile(r"(?:offline-)?run-\d{8}_\d{6}-(?P<id>[^/]+)\Z")
_FILE_ID = re.compile(r"run-(?P<id>.+)\.wandb\Z")
Value = Any  # a history value: bytes (its JSON, decoded when needed) or an already decoded value


Malformed = WireError  # bytes that are no protobuf message


def fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(number, value) of each field of a protobuf message, in order: an int for varint and fixed-width fields,
    bytes for length-delimited ones. Raises Malformed on bytes that are no message (groups included)."""
    for number, wire, a, b in spans(buf, 0, len(buf)):
        if wire == 0:
            yield number, a
        elif wire == 2:
            yield number, buf[a:b]
        else:
            yield number, int.from_bytes(buf[a:b], "little")


def _str(value: int | bytes) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else ""


def _sub(value: int | bytes) -> bytes:
    return value if isinstance(value, bytes) else b""


def _signed(value: int | bytes, bits: int = 64) -> int | None:
    if not isinstance(value, int):
        return None
    value &= (1 << 64) - 1
    value = value - (1 << 64) if value >= 1 << 63 else value
    return value if bits == 64 else ((value + (1 << (bits - 1))) % (1 << bits)) - (1 << (bits - 1))


def _item(buf: bytes) -> tuple[str, Value]:
    """Key and value of a History/Summary/ConfigItem: value_json's bytes, or a typed HistoryItem value."""
    # the layout wandb-core writes, read without the general loop: key or one nested_key, then value_json
    if len(buf) > 4 and buf[0] in (0x0A, 0x12) and buf[1] < 0x80:
        cut = 2 + buf[1]
        if len(buf) > cut + 2 and buf[cut:cut + 2] == b"\x82\x01" and buf[cut + 2] < 0x80 \
                and cut + 3 + buf[cut + 2] == len(buf):
            return buf[2:cut].decode("utf-8", errors="replace"), buf[cut + 3:]
    key, nested = "", []
    value: Value = None
    for number, field in fields(buf):
        if number == 1:
            key = _str(field)
        elif number == 2:
            nested.append(_str(field))
        elif number == 16 or number == 8:  # value_json, or the typed oneof's json
            value = _sub(field)
        elif number == 4 and isinstance(field, int):
            value = bool(field)
        elif number == 5 and isinstance(field, int):  # sint64, zigzag
            value = (field >> 1) ^ -(field & 1)
        elif number == 6 and isinstance(field, int):
            value = struct.unpack("<d", (field & ((1 << 64) - 1)).to_bytes(8, "little"))[0]
        elif number == 7:
            value = _str(field)
    return key or ".".join(nested), value


def _decode(value: Value) -> Any:
    """A value as Python: value_json bytes are parsed (NaN and Infinity included); anything unparsable is None."""
    if not isinstance(value, bytes):
        return value
    try:
        return load_json(value)
    except (ValueError, RecursionError):
        return None


def _number(value: Value) -> float | None:
    if isinstance(value, bytes):
        try:
            return float(value)  # a JSON number, NaN or Infinity as wandb writes them
        except ValueError:
            pass
    try:
        return as_float(_decode(value))
    except OverflowError:
        return None


def _whole(value: Value) -> int | None:
    if isinstance(value, bytes) and value.isdigit() and len(value) < 19:
        return int(value)
    number = _decode(value)
    if type(number) is int and 0 <= number < 1 << 63:
        return number
    as_number = _number(value)
    if as_number is not None and math.isfinite(as_number) and as_number == int(as_number) and 0 <= as_number < 2**63:
        return int(as_number)
    return None


def _time(seconds: float | None) -> str | None:
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        return None
    try:
        return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return None


def _timestamp(buf: bytes) -> str | None:
    seconds = next((v for n, v in fields(buf) if n == 1 and isinstance(v, int)), None)
    return _time(float(_signed(seconds) or 0)) if seconds is not None else None


def _set_path(mapping: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        inner = mapping.get(part)
        if not isinstance(inner, dict):
            inner = mapping[part] = {}
        mapping = inner
    mapping[path[-1]] = value


def _flatten(record: dict[str, Any], prefix: str = "", depth: int = 0) -> Iterator[tuple[str, Any]]:
    for key, value in record.items():
        if isinstance(value, dict) and depth < 8 and not str(key).startswith("_"):
            yield from _flatten(value, f"{prefix}{key}.", depth + 1)
        else:
            yield f"{prefix}{key}", value


class _Points:
    """The points of one loss-candidate key, compact: position, step (-1 unknown), value, epoch (NaN unknown),
    grad norm (when has_grad)."""

    def __init__(self) -> None:
        self.positions, self.steps = array("q"), array("q")
        self.values, self.epochs, self.grads = array("d"), array("d"), array("d")
        self.has_grad = array("b")
        self.bad: list[tuple[int, str]] = []
        self.bad_count = 0


class _Run:
    """What one W&B run's records say, gathered while they stream past."""

    def __init__(self, series: MetricsSeries) -> None:
        self.series = series
        self.points: dict[str, _Points] = {}
        self.roles: dict[str, str] = {}
        self.evals: dict[str, float] = {}
        self.eval_rows = 0
        self.rows = 0
        self.config: dict[str, Any] = {}
        self.summary: dict[str, Value] = {}
        self.summary_last: dict[str, bytes] = {}  # key -> the last summary record that mentions it
        self.facts: dict[str, Any] = {}
        self.commit: str | None = None
        self.exit: tuple[int, int | None, bool, int] | None = None  # code, runtime, not_complete, offset

    # -- history rows (both formats) ------------------------------------------------------------------------
    def role(self, key: str) -> str:
        role = self.roles.get(key)
        if role is None:
            low = key.lower()
            if loss_key([key]) == key:
                role = "loss"
            elif low in STEP_KEYS:
                role = "step"
            elif low in SIDE_KEYS:
                role = SIDE_KEYS[low]
            elif is_eval(key):
                role = "eval"
            else:
                role = ""
            if len(self.roles) < MAX_ROLES:
                self.roles[key] = role
        return role

    def row(self, position: int, step: int | None, items: Iterable[tuple[str, Value]]) -> None:
        """One logged row: loss candidates, the trainer's step, epoch, grad norm and evaluation figures."""
        self.rows += 1
        losses: list[tuple[str, Value]] = []
        epoch, grad, has_eval = math.nan, None, False
        for key, value in items:
            role = self.role(key)
            if not role:
                continue
            if role == "loss":
                losses.append((key, value))
            elif role == "step":
                logged = _whole(value)
                step = step if logged is None else logged
            elif role == "epoch":
                number = _number(value)
                epoch = epoch if number is None else number
            elif role == "grad_norm":
                grad = _number(value)
            else:
                number = _number(value)
                if number is not None and (key in self.evals or len(self.evals) < MAX_EVALS):
                    self.evals[key] = number
                    has_eval = True
        self.eval_rows += has_eval
        for key, value in losses:
            points = self.points.setdefault(key, _Points())
            number = _number(value)
            if number is None:
                points.bad_count += 1
                if len(points.bad) < MAX_KEPT:
                    text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
                    points.bad.append((position, f"{key} is not a number: {text[:40]!r}"))
                continue
            points.positions.append(position)
            points.steps.append(-1 if step is None or not 0 <= step < 1 << 63 else step)
            points.values.append(number)
            points.epochs.append(epoch)
            points.grads.append(math.nan if grad is None else grad)
            points.has_grad.append(grad is not None)

    # -- .wandb records -------------------------------------------------------------------------------------
    def record(self, offset: int, data: bytes) -> None:
        """One Record message of the .wandb log. Raises Malformed on bytes that are no message."""
        for number, value in fields(data):
            if not isinstance(value, bytes):
                continue
            if number == 2:
                self.history(offset, value)
            elif number == 3:
                for mark in _SUMMARY_MARKS.finditer(value):
                    self.summary_last[mark.group(1)[1:].decode()] = value
            elif number == 5:
                self.config_items(value)
            elif number == 17:
                self.run_record(value)
            elif number == 18:
                self.exit_record(offset, value)
            elif number == 21:
                for field, info in fields(value):
                    if field == 1:
                        producer = next((_str(v) for n, v in fields(_sub(info)) if n == 1), "")
                        self.facts["wandb_version"] = producer.split("+")[0] or None
            elif number == 23:
                self.facts["preempting"] = "true"
            elif number == 26:
                self.environment(value)

    def history(self, offset: int, buf: bytes) -> None:
        items: list[tuple[str, Value]] = []
        step: int | None = None
        for number, value in fields(buf):
            if number == 1:
                items.append(_item(_sub(value)))
            elif number == 2:  # HistoryStep: num (absent: 0)
                num = next((v for n, v in fields(_sub(value)) if n == 1 and isinstance(v, int)), 0)
                step = _signed(num)
        if step is None:
            step = next((_whole(v) for k, v in items if k == "_step"), None)
        self.row(offset, step, items)

    def config_items(self, buf: bytes) -> None:
        for number, value in fields(buf):
            if number not in (1, 2):
                continue
            path: list[str] = []
            raw: bytes | None = None
            for field, part in fields(_sub(value)):
                if field in (1, 2) and _str(part):
                    path.append(_str(part))
                elif field == 16:
                    raw = _sub(part)
            if not path or path[0] == "_wandb":
                continue
            if number == 2:
                self.config.pop(path[0], None)
            elif len(self.config) < MAX_PARAMS and raw is not None and len(raw) <= VALUE_LIMIT:
                _set_path(self.config, path, _decode(raw))

    def run_record(self, buf: bytes) -> None:
        names = {1: "run_id", 2: "entity", 3: "project", 6: "run_group", 7: "job_type", 8: "run_name",
                 12: "sweep_id", 13: "host"}
        for number, value in fields(buf):
            if number in names and _str(value):
                self.facts[names[number]] = _str(value)
            elif number == 4:
                self.config_items(_sub(value))
            elif number == 17:
                self.facts["started_at"] = _timestamp(_sub(value))
            elif number == 14 and isinstance(value, int) and value:
                self.facts["starting_step"] = _signed(value)
            elif number == 18 and value:
                self.facts["resumed"] = "true"
            elif number == 21:
                self.git(_sub(value))

    def git(self, buf: bytes) -> None:
        for number, value in fields(buf):
            if number == 2 and _str(value):
                self.commit = _str(value).strip()
            elif number == 1 and _str(value):
                self.facts["git_remote"] = _str(value)

    def environment(self, buf: bytes) -> None:
        names = {1: "os", 2: "python", 6: "program", 7: "code_path", 12: "host", 18: "gpu", 25: "cuda_version"}
        for number, value in fields(buf):
            if number in names and _str(value):
                self.facts[names[number]] = _str(value)
            elif number == 19 and isinstance(value, int) and value:
                self.facts["gpu_count"] = value
            elif number == 9:
                self.git(_sub(value))
            elif number == 3:
                self.facts.setdefault("started_at", _timestamp(_sub(value)))
            elif number == 24:  # GpuNvidiaInfo: name 1
                name = next((_str(v) for n, v in fields(_sub(value)) if n == 1), "")
                if name:
                    self.facts.setdefault("gpu", name)
                    self.facts["nvidia_gpus"] = self.facts.get("nvidia_gpus", 0) + 1

    def exit_record(self, offset: int, buf: bytes) -> None:
        code, runtime, incomplete = 0, None, False
        for number, value in fields(buf):
            if number == 1:
                code = _signed(value, 32) or 0
            elif number == 2:
                runtime = _signed(value, 32)
            elif number == 3:
                incomplete = bool(value)
        self.exit = (code, runtime, incomplete, offset)

    def summary_values(self) -> None:
        """Decode the summary records that last updated a wanted key (a malformed one counts as not there)."""
        for body in {id(b): b for b in self.summary_last.values()}.values():
            try:
                updates = [_item(_sub(item)) for field, item in fields(body) if field == 1]
            except (ValueError, RecursionError):
                continue
            for key, raw in updates:
                if key in SUMMARY_KEYS and self.summary_last.get(key) is body:
                    self.summary[key] = raw

    # -- side files (online runs) ----------------------------------------------------------------------------
    def side_files(self, folder: Folder, run_dir: str) -> None:
        """Fill what the .wandb did not say from files/wandb-metadata.json, wandb-summary.json and config.yaml."""
        files = f"{run_dir}files/" if run_dir else "files/"
        meta = _json_file(folder, files + "wandb-metadata.json")
        if isinstance(meta, dict):
            git = meta.get("git")
            if self.commit is None and isinstance(git, dict) and isinstance(git.get("commit"), str):
                self.commit = git["commit"].strip() or None
            for fact, keys in (("host", ("host",)), ("program", ("program",)), ("os", ("os",)),
                               ("python", ("python",)), ("gpu", ("gpu", "gpu_type", "gpuType")),
                               ("gpu_count", ("gpu_count", "gpuCount")), ("cuda_version", ("cudaVersion", "cuda")),
                               ("started_at", ("startedAt", "started_at"))):
                value = next((meta[k] for k in keys if isinstance(meta.get(k), (str, int)) and meta[k] != ""), None)
                if value is not None:
                    self.facts.setdefault(fact, value)
            nvidia = meta.get("gpu_nvidia")
            if "gpu" not in self.facts and isinstance(nvidia, list) and nvidia and isinstance(nvidia[0], dict):
                self.facts["gpu"] = nvidia[0].get("name")
        summary = _json_file(folder, files + "wandb-summary.json")
        if isinstance(summary, dict):
            for key in SUMMARY_KEYS & summary.keys():
                self.summary.setdefault(key, summary[key])
        if not self.config and f"{files}config.yaml" in folder.files:
            self.config = _config_yaml(folder, f"{files}config.yaml")

    # -- the series ------------------------------------------------------------------------------------------
    def finish(self, rel: str, wandb_log: str | None) -> MetricsSeries:
        """The loss curve of the chosen key, then plan, hparams, commit, evals, facts, the outcome (from the exit
        record of `wandb_log`, when the run has one) and the final record."""
        series = self.series
        loss = loss_key(self.points)
        chosen = self.points.get(loss) if loss else None
        if chosen is not None:
            has_grad = chosen.has_grad
            for i, position in enumerate(chosen.positions):
                step = chosen.steps[i]
                record: dict[str, Any] = {"step": step if step >= 0 else None, "loss": chosen.values[i],
                                          "epoch": chosen.epochs[i]}
                if has_grad[i]:
                    record["grad_norm"] = chosen.grads[i]
                series.add(record, position)
            for position, reason in chosen.bad:
                series._bad(position, reason)
            series.bad_count += chosen.bad_count - len(chosen.bad)
        series.evals = dict(sorted(self.evals.items()))
        series.eval_count = self.eval_rows
        series.hparams = dict(self.config)
        try:
            plan, _ = plan_fields(self.config, rel)
        except (OverflowError, ValueError, TypeError):
            plan = {}
        series.plan = {k: v for k, v in plan.items() if k not in ("max_steps", "num_epochs") or v > 0}
        series.commit = self.commit
        if self.exit is not None:
            self.facts["exit_code"], self.facts["runtime_seconds"] = self.exit[:2]
        series.facts = {k: str(v)[:200] for k, v in sorted(self.facts.items()) if v not in (None, "")}
        run_id = series.facts.get("run_id")
        series.run = f"wandb run {run_id}" if run_id else None
        if wandb_log:
            series.outcome = self.outcome(wandb_log)
        finals = {k: n for k in FINAL_KEYS & self.summary.keys() - {loss or ""}
                  if (n := _number(self.summary[k])) is not None}
        wall = _number(self.summary.get("_runtime"))
        if "train_runtime" not in finals and wall is not None and self.exit is not None and self.exit[0] == 0:
            finals["train_runtime"] = wall
        if finals and (self.exit is not None or not FINAL_MARKERS.isdisjoint(finals)):
            series.final = FinalRecord(values=dict(sorted(finals.items())), path=rel, line=None, step=series.max_step)
        return series

    def outcome(self, rel: str) -> SourceOutcome:
        if self.exit is None:
            return SourceOutcome("no exit record", False, None,
                                 f"{rel} ends without W&B's exit record: the process was killed or crashed before "
                                 "wandb.finish() (or the run is still going)")
        code, runtime, incomplete, offset = self.exit
        took = f" after {runtime} s" if runtime else ""
        if incomplete:
            return SourceOutcome("not complete", False, offset, f"W&B exit record: exit code {code}, marked not "
                                 f"complete{took}")
        return SourceOutcome("exit 0" if code == 0 else f"exit code {code}", code == 0, offset,
                             f"W&B exit record: exit code {code}{took}")


def _json_file(folder: Folder, rel: str) -> Any:
    if rel not in folder.files:
        return None
    try:
        data, cut = folder.read(rel, SIDE_LIMIT)
        return None if cut else load_json(data)
    except (EvidenceUnreadable, ValueError, RecursionError):
        return None


def _config_yaml(folder: Folder, rel: str) -> dict[str, Any]:
    """config.yaml in W&B's shape (`key: {value: v, desc: ...}`), unwrapped; `_wandb` and `wandb_version` dropped."""
    try:
        data, cut = folder.read(rel, SIDE_LIMIT)
        loaded = None if cut else load_yaml(data.decode("utf-8", errors="replace"))
    except (EvidenceUnreadable, ValueError):
        return {}
    if not isinstance(loaded, dict):
        return {}
    return {str(k): v["value"] if isinstance(v, dict) and "value" in v else v
            for k, v in list(loaded.items())[:MAX_PARAMS] if k not in ("_wandb", "wandb_version")}


def records(handle: BinaryIO, series: MetricsSeries) -> Iterator[tuple[int, bytes]]:
    """(byte offset, bytes) of each whole record of a .wandb log, its CRCs checked; problems go to `series`."""
    head = handle.read(HEADER.size)
    if len(head) < HEADER.size:
        series._bad(0, "no W&B header: the file is empty or ends inside its 7-byte header")
        return
    ident, magic, version = HEADER.unpack(head)
    if ident != IDENT or magic != MAGIC:
        series._bad(0, f"not a W&B transaction log (header {head!r}, expected ':W&B' and magic 0xBEE1)")
        return
    if version != VERSION:
        series._bad(0, f"W&B log version {version} (read as version {VERSION})")
    parts: list[bytes] = []
    start = size = offset = 0
    dropping = False  # fragments continuing a record lost to corruption are dropped without another report
    block = head + handle.read(BLOCK - HEADER.size)
    pos = HEADER.size
    while block:
        end_of_file = len(block) < BLOCK
        while pos + FRAGMENT.size <= len(block):
            crc, length, kind = FRAGMENT.unpack_from(block, pos)
            at, stop = offset + pos, pos + FRAGMENT.size + length
            if stop > len(block):
                if end_of_file:
                    series._bad(at, f"file ends inside a record fragment (truncated: {length} bytes announced, "
                                    f"{len(block) - pos - FRAGMENT.size} present)")
                    return
                series._bad(at, f"fragment length {length} runs past its 32 KiB block: corrupt header, rest of "
                                "the block skipped")
                parts, dropping = [], True
                break
            data = block[pos + FRAGMENT.size:stop]
            seed = SEEDS.get(kind)
            if seed is None or zlib.crc32(data, seed) != crc:
                if not any(block[pos:]):
                    series._bad(at, "zero bytes where a record should be, to the end of the block (data lost)")
                elif seed is None:
                    series._bad(at, f"unknown fragment type {kind}: corrupt header, rest of the block skipped")
                else:
                    series._bad(at, f"record CRC mismatch (stored {crc:08x}, computed {zlib.crc32(data, seed):08x})"
                                    ": corrupt data, rest of the block skipped")
                parts, dropping = [], True
                break
            pos = stop
            if kind in (FULL, FIRST):
                if parts:
                    series._bad(start, "record never finished (a FIRST fragment without its LAST)")
                parts, dropping = [], False
                if kind == FULL:
                    yield at, data
                else:
                    parts, start, size = [data], at, len(data)
                continue
            if not parts:
                if not dropping:
                    series._bad(at, f"{TYPE_NAMES[kind]} fragment without the FIRST fragment of its record")
                continue
            size += len(data)
            if size > MAX_RECORD:
                series._bad(start, f"record larger than {MAX_RECORD >> 20} MiB: skipped")
                parts, dropping = [], True
                continue
            parts.append(data)
            if kind == LAST:
                yield start, b"".join(parts)
                parts = []
        else:
            if end_of_file and pos < len(block):
                series._bad(offset + pos, "file ends inside a record header (truncated)")
                return
        if end_of_file:
            break
        offset += len(block)
        block, pos = handle.read(BLOCK), 0
    if parts:
        series._bad(start, f"file ends inside a record: {size} bytes of it without its LAST fragment (truncated)")


def _run_dir(rel: str) -> str:
    """The run folder of a .wandb (its folder) or of files/wandb-history.jsonl (above files/), with a '/'."""
    folder = rel.rpartition("/")[0]
    if rel.endswith(HISTORY_NAME) and (folder == "files" or folder.endswith("/files")):
        folder = folder[: -len("files")].rstrip("/")
    return f"{folder}/" if folder else ""


def _run_id(rel: str) -> str | None:
    found = _FILE_ID.search(rel.rsplit("/", 1)[-1]) if rel.endswith(".wandb") else None
    if found is None:
        found = _RUN_DIR.search(_run_dir(rel).rstrip("/"))
    return found.group("id") if found else None


def _history_lines(folder: Folder, rel: str, run: _Run) -> None:
    """The rows of a wandb-history.jsonl (`_step` and the logged keys; nested dicts read as `a.b`)."""
    series = run.series
    try:
        handle = folder.open(rel)
    except EvidenceUnreadable as exc:
        series._bad(0, str(exc))
        return
    with handle:
        number = 0
        while True:
            line = handle.readline(LINE_LIMIT + 1)
            if not line:
                break
            number += 1
            if len(line) > LINE_LIMIT and not line.endswith(b"\n"):
                series._bad(number, f"line longer than {LINE_LIMIT >> 20} MiB: skipped")
                while line and not line.endswith(b"\n"):
                    line = handle.readline(LINE_LIMIT)
                continue
            if not line.strip():
                continue
            try:
                row = load_json(line)
            except (ValueError, RecursionError):
                series._bad(number, f"not a JSON object: {line.strip()[:60].decode('utf-8', errors='replace')!r}")
                continue
            if not isinstance(row, dict):
                series._bad(number, "not a JSON object")
                continue
            run.row(number, _whole(row.get("_step")), _flatten(row))


@register
class WandbRun(MetricsSource):
    """A W&B run folder: its run-<id>.wandb transaction log, or files/wandb-history.jsonl without one."""

    info = FormatInfo(
        id="wandb", kind="metrics", title="Weights & Biases run (run-<id>.wandb, wandb-history.jsonl)",
        looks_for=("run-*.wandb", HISTORY_NAME),
        reads="every logged row of the run's .wandb transaction log (CRC-checked, decoded without wandb): the "
              "training loss per step (loss, train/loss, ...), epoch, grad norm, eval/val/test figures; the config "
              "(the plan: max_steps, epochs, batch size), git commit, host, GPU and program, the summary's "
              "runtime, and the exit record; config.yaml, wandb-summary.json and wandb-metadata.json where present",
        proves="the loss curve the script logged to W&B with the byte offset of each row, whether the run reached "
               "wandb.finish() and with which exit code (no exit record: it was killed or crashed), and corrupt "
               "or truncated records; W&B records what the script logged, not that it trained the model",
    )

    def select(self, claimed: list[str]) -> list[str]:
        """The .wandb logs, and a wandb-history.jsonl only where its run folder has no .wandb."""
        logged = {_run_dir(rel) for rel in claimed if rel.endswith(".wandb")}
        return [rel for rel in claimed if rel.endswith(".wandb") or _run_dir(rel) not in logged]

    def read(self, folder: Folder, rel: str) -> list[MetricsSeries]:
        """One series per run folder: from the .wandb (or its history-only jsonl), with the folder's side files."""
        wandb_log = rel.endswith(".wandb")
        series = MetricsSeries(path=rel, kind="wandb", position="byte" if wandb_log else "line")
        run = _Run(series)
        run.facts["run_id"] = _run_id(rel)
        run_dir = _run_dir(rel)
        if wandb_log:
            try:
                with folder.open(rel) as handle:
                    for offset, data in records(handle, series):
                        try:
                            run.record(offset, data)
                        except (ValueError, RecursionError, OverflowError):
                            series._bad(offset, "record is not a W&B Record message (malformed protobuf)")
            except (EvidenceUnreadable, OSError) as exc:
                series._bad(0, str(exc))
            run.summary_values()
            history = f"{run_dir}files/{HISTORY_NAME}"
            if run.rows == 0 and history in folder.files:  # history only in the jsonl: read it there
                lines = MetricsSeries(path=history, kind="wandb", position="line")
                for position, reason in series.bad_lines:
                    lines._bad(0, f"{rel} (byte {position}): {reason}")
                lines.bad_count = series.bad_count
                run.series = lines
                _history_lines(folder, history, run)
                run.side_files(folder, run_dir)
                return [run.finish(history, rel)]
        else:
            _history_lines(folder, rel, run)
        run.side_files(folder, run_dir)
        return [run.finish(rel, rel if wandb_log else None)]
