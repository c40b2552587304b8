"""TensorBoard event files (`events.out.tfevents.*`: torch.utils.tensorboard.SummaryWriter, Lightning's
TensorBoardLogger, tensorboardX, TF/Keras), decoded from their bytes with the standard library.

A file is TFRecord framing around Event protos: per record a uint64 LE length, its masked CRC-32C, the data and
the data's masked CRC-32C (mask: ((crc >> 15) | (crc << 17)) + 0xa282ead8). An Event has wall_time (1), step (2),
file_version (3) and summary (5); a Summary.Value has tag (1), simple_value (2), metadata (9) and tensor (8).
A scalar is a simple_value, or a tensor of one float/double/int element (TF2 writes those). The `hparams` plugin's
session_start_info gives the hyper-parameters.

Tag rule (case-insensitive; a tag is cut into words at `/ _ - .` and spaces):
- evaluation: a word is val, valid, validation, eval, evaluation, test or testing (val_loss, eval/loss, Loss/test,
  test_acc): the last value per tag goes to `evals`, `eval_count` counts the points;
- training loss: the words are `loss`, at most one of train/training/batch, and an optional trailing `step`:
  loss, train/loss, train_loss, Loss/train, loss/train, training_loss, train/loss_step, train_loss_step (Lightning's
  on_step variant), batch_loss (Keras). Other loss-like tags are not points: train_loss_epoch and epoch_loss (epoch
  aggregates), HF's train/train_loss (a run average), value_loss, loss/total;
- epoch: `epoch` or `train/epoch`: its value at a step is the epoch of the loss point at that step;
- learning rate: a word lr, or `learning rate` (lr, lr-SGD, train/learning_rate): its last value is facts["lr"];
- gradient norm: words grad (or gradient) and norm: a non-finite value is recorded as one.
One training-loss tag per file becomes the series: the one with most points (the first seen on a tie), named in
facts["loss_tag"] and the rule.

Reading is streamed in blocks and checks every CRC. For speed the records are read as columns: a run of records
whose headers repeat with a period (a loss record, an epoch record, a loss record, ...) is a table whose byte
columns are strided slices of the block; CRCs are computed for all rows of a column set at once with
bytes.translate, and rows that share the first row's protobuf layout are decoded column-wise. Anything else is
decoded record by record."""

from __future__ import annotations

import math
import os
import re
import struct
import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import compress, pairwise, repeat
from typing import Any, BinaryIO

from auditor.evidence.crc32c import INVERT, crc32c, crc_lanes
from auditor.evidence.metrics import MAX_KEPT, MetricsSeries
from auditor.evidence.opener import EvidenceUnreadable, Folder
from auditor.evidence.plan import plan_fields
from auditor.evidence.protowire import spans, varint
from auditor.evidence.sources.interface import FormatInfo, MetricsSource
from auditor.evidence.sources.registry import register

BLOCK_BYTES = 256 << 10  # column slices of a block stay in the CPU cache
MAX_RECORD_BYTES = 64 << 20  # a longer record (a huge graph or image) is skipped unread, as a finding
MAX_PERIOD = 8  # records per period of a repeating header pattern
MIN_RUN = 8  # periods before a run is read as columns
LANE_MAX = 1024  # longer records are checked one by one (their CRC in chunks)
_LITTLE = sys.byteorder == "little"

# -- CRC-32C -----------------------------------------------------------------------------------------------------
_MASK_DELTA = 0xA282EAD8


def masked_crc32c(data: bytes) -> int:
    """The masked CRC-32C TFRecord stores."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def _record_crc_mismatches(columns: list[bytes], stored: list[bytes], count: int) -> tuple[list[int], list[int]]:
    """Rows whose stored masked CRC (stored[k]: byte k of each) is not that of their data columns; and the varying
    data columns."""
    flipped = [c.translate(INVERT) for c in columns[:4]] + columns[4:]  # the initial value 0xffffffff
    lanes, varying = crc_lanes(flipped, count)
    low = int.from_bytes(b"\xff\xff\xff\xff\x00\x00\x00\x00" * count, "little")
    crc = lanes ^ low
    masked = ((((crc >> 15) | (crc << 17)) & low) + int.from_bytes(struct.pack("<Q", _MASK_DELTA) * count,
                                                                    "little")) & low
    want = bytearray(8 * count)
    for k in range(4):
        want[k::8] = stored[k]
    wanted = int.from_bytes(want, "little")
    if masked == wanted:
        return [], varying
    return list(compress(range(count), array("Q", (masked ^ wanted).to_bytes(8 * count, "little")))), varying


# -- protobuf ----------------------------------------------------------------------------------------------------
_HIGH = bytes(b & 0x80 for b in range(256))
_LOW7 = bytes(b & 0x7F for b in range(256))
_NONZERO = re.compile(rb"[^\x00]")


@dataclass
class _Scalar:
    tag: bytes
    value: float
    tag_span: tuple[int, int]
    value_span: tuple[int, int] | None  # fixed-width bytes of the value (None: a varint)
    fmt: str  # struct format of those bytes
    tensor: bool


@dataclass
class _Event:
    step: int
    free: list[tuple[int, int]]  # spans that differ between records of one layout: wall time, step, tag, value
    step_span: tuple[int, int] | None
    scalars: list[_Scalar]
    values: int


_DTYPES = {1: "<f", 2: "<d", 3: "<i", 9: "<q"}  # DT_FLOAT, DT_DOUBLE, DT_INT32, DT_INT64


def _tensor_scalar(buf: bytes, start: int, end: int) -> tuple[float, tuple[int, int] | None, str] | None:
    """The value of a one-element numeric tensor, with its fixed-width bytes and format."""
    dtype, found = 0, []
    for number, wire, a, b in spans(buf, start, end):
        if number == 1 and wire == 0:
            dtype = a
        elif number == 2 and wire == 2:
            for dim, dwire, da, db in spans(buf, a, b):
                if dim == 2 and dwire == 2 and any(n == 1 and w == 0 and v != 1 for n, w, v, _ in spans(buf, da, db)):
                    return None  # a dimension of size > 1: not a scalar
        elif number == 4 and wire == 2:
            found.append(("content", a, b))
        elif number in (5, 6) and wire in (1, 2, 5):
            found.append(("f" if number == 5 else "d", a, b))
        elif number in (7, 10):
            found.append(("int", a, b if wire == 2 else -1))
    fmt = _DTYPES.get(dtype)
    if fmt is None or len(found) != 1:
        return None
    kind, a, b = found[0]
    if kind == "int":
        if b >= 0:  # packed: exactly one varint
            value, after = varint(buf, a, b)
            if after != b:
                return None
        else:
            value = a
        return float(value - (1 << 64) if value >= 1 << 63 else value), None, ""  # negatives are sign-extended
    if kind != "content":
        fmt = "<f" if kind == "f" else "<d"
    if b - a != struct.calcsize(fmt):
        return None
    return float(struct.unpack_from(fmt, buf, a)[0]), (a, b), fmt


def _pb_value(buf: bytes, start: int, end: int) -> Any:
    """A google.protobuf.Value (what session_start_info holds per hyper-parameter)."""
    for number, wire, a, b in spans(buf, start, end):
        if number == 2 and wire == 1:
            return struct.unpack_from("<d", buf, a)[0]
        if number == 3 and wire == 2:
            return buf[a:b].decode("utf-8", errors="replace")
        if number == 4 and wire == 0:
            return bool(a)
        if number == 6 and wire == 2:
            return [_pb_value(buf, x, y) for n, w, x, y in spans(buf, a, b) if n == 1 and w == 2]
    return None


def _hparams(buf: bytes, start: int, end: int) -> dict[str, Any]:
    """The hyper-parameters in an hparams plugin's content (HParamsPluginData.session_start_info.hparams)."""
    found: dict[str, Any] = {}
    for number, wire, a, b in spans(buf, start, end):
        if number != 3 or wire != 2:
            continue
        for field_number, fwire, fa, fb in spans(buf, a, b):
            if field_number != 1 or fwire != 2:
                continue
            key, value = None, None
            for entry, ewire, ea, eb in spans(buf, fa, fb):
                if entry == 1 and ewire == 2:
                    key = buf[ea:eb].decode("utf-8", errors="replace")
                elif entry == 2 and ewire == 2:
                    value = _pb_value(buf, ea, eb)
            if key is not None:
                found[key] = value
    return found


# -- tags --------------------------------------------------------------------------------------------------------
_WORDS = re.compile(r"[^/_\-.\s]+")
_EVAL_WORDS = frozenset(("val", "valid", "validation", "eval", "evaluation", "test", "testing"))
_TRAIN_WORDS = ("train", "training", "batch")


def tag_role(tag: str) -> str | None:
    """What a scalar tag is by the tag rule: "loss", "eval", "epoch", "lr", "grad_norm" or None."""
    words = _WORDS.findall(tag.lower())
    if _EVAL_WORDS.intersection(words):
        return "eval"
    rest = list(words)
    for word in _TRAIN_WORDS:
        if word in rest:
            rest.remove(word)
            break
    if rest[-1:] == ["step"] and len(rest) > 1:
        rest.pop()
    if rest == ["loss"]:
        return "loss"
    if [w for w in words if w not in ("train", "training")] == ["epoch"]:
        return "epoch"
    if "lr" in words or ("learning", "rate") in pairwise(words):
        return "lr"
    if "norm" in words and ("grad" in words or "gradient" in words):
        return "grad_norm"
    return None


# -- the reader --------------------------------------------------------------------------------------------------
@dataclass
class _Piece:
    offsets: Sequence[int]
    steps: array
    values: array
    tensor: bool


class _Reader:
    """One event file, block by block: framing and CRCs, then scalars collected per tag in file order."""

    def __init__(self, series: MetricsSeries, size: int | None) -> None:
        self.series = series
        self.size = size
        self.headers: dict[bytes, int] = {}  # verified 12-byte record headers → data length
        self.invalid: set[bytes] = set()
        self.findings: list[tuple[int, str]] = []
        self.pieces: dict[bytes, list[_Piece]] = {}
        self.plugins: dict[bytes, str] = {}
        self.roles: dict[bytes, str | None] = {}
        self.loss: dict[bytes, tuple[array, array, array]] = {}  # candidate tag → offsets, steps, values
        self.epoch: tuple[array, array, array] = (array("q"), array("q"), array("d"))  # every epoch scalar
        self.resync_from: int | None = None
        self.skip_to: int | None = None

    # framing ------------------------------------------------------------------------------------------------
    def _length(self, header: bytes) -> int | None:
        """The data length a 12-byte record header gives, None when its CRC does not match."""
        known = self.headers.get(header)
        if known is not None:
            return known
        if header in self.invalid:
            return None
        if masked_crc32c(header[:8]) != int.from_bytes(header[8:], "little"):
            if len(self.invalid) > 4096:
                self.invalid.clear()
            self.invalid.add(header)
            return None
        length = int.from_bytes(header[:8], "little")
        if len(self.headers) < 4096:
            self.headers[header] = length
        return length

    def _resync(self, buf: bytes, pos: int, base: int, final: bool) -> int:
        """The next offset holding a valid record header (a length < 4 GiB has four zero high bytes); at the end
        of a block, where the next block's scan continues."""
        end = len(buf)
        start = self.resync_from or 0
        while True:
            hit = buf.find(b"\x00\x00\x00\x00", pos + 4)
            if hit < 0 or hit + 8 > end:
                if final:
                    self._found(start, f"record header CRC mismatch: no valid record in the {base + end - start} "
                                "bytes from here to the end")
                    self.resync_from = None
                    return end
                return max(pos, end - 11)
            candidate = hit - 4
            if self._length(buf[candidate:candidate + 12]) is not None:
                self._found(start, f"record header CRC mismatch: {base + candidate - start} bytes skipped to the "
                            "next valid record")
                self.resync_from = None
                return candidate
            pos = candidate + 1
            if buf[candidate:hit] == b"\x00\x00\x00\x00":  # inside a zero run: a length needs a nonzero byte
                nonzero = _NONZERO.search(buf, hit)
                pos = max(pos, (nonzero.start() if nonzero else end) - 3)

    def _found(self, offset: int, what: str) -> None:
        self.findings.append((offset, what if offset else f"{what} (at byte 0)"))

    def block(self, buf: bytes, base: int, final: bool) -> int:
        """Read the whole records of buf (file offset `base`); returns where the unread rest starts."""
        off, end = 0, len(buf)
        loose: dict[int, list[int]] = {}
        walked, next_try, gap = 0, 0, 1
        while True:
            if self.resync_from is not None:
                off = self._resync(buf, off, base, final)
                if self.resync_from is not None or off >= end:
                    break
            if off + 12 > end:
                if final and off < end:
                    self._found(base + off, f"truncated record: {end - off} bytes of a 12-byte header")
                    off = end
                break
            length = self._length(buf[off:off + 12])
            if length is None:
                self.resync_from = base + off
                off += 1
                continue
            if length > MAX_RECORD_BYTES:
                self._flush(buf, base, loose)
                self.skip_to = base + off + 16 + length
                if self.size is not None and self.skip_to > self.size:
                    self._found(base + off, f"truncated record: {self.size - base - off} of {16 + length} bytes")
                    self.skip_to = self.size
                else:
                    self._found(base + off, f"record of {length} bytes is over the {MAX_RECORD_BYTES >> 20} MiB "
                                "limit: not read")
                self._route()
                return off
            if off + 16 + length > end:
                if final:
                    self._found(base + off, f"truncated record: {end - off} of {16 + length} bytes")
                    off = end
                break
            if walked >= next_try:  # look for a run again soon after one ended, then less and less often
                run = self._run(buf, off)
                if run is not None:
                    self._flush(buf, base, loose)
                    off = self._read_run(buf, base, off, *run)
                    gap = 1
                    continue
                next_try, gap = walked + gap, min(2 * gap, 8 * MAX_PERIOD)
            loose.setdefault(length, []).append(off)
            off += 16 + length
            walked += 1
        self._flush(buf, base, loose)
        self._route()
        return off

    def _run(self, buf: bytes, off: int) -> tuple[list[int], list[int], int] | None:
        """A repeating pattern of record headers from `off`: (data length and offset in the period of each of its
        records, periods) when at least MIN_RUN whole periods repeat."""
        end = len(buf)
        heads: list[bytes] = []
        pos = off
        while len(heads) < 2 * MAX_PERIOD and pos + 12 <= end:
            header = buf[pos:pos + 12]
            length = self._length(header)
            if length is None or length > LANE_MAX or pos + 16 + length > end:
                break
            heads.append(header)
            pos += 16 + length
        period = next((p for p in range(1, len(heads) // 2 + 1) if heads[:p] == heads[p:2 * p]), 0)
        if not period:
            return None
        lengths = [self.headers[h] for h in heads[:period]]
        starts = [sum(n + 16 for n in lengths[:r]) for r in range(period)]
        size = sum(n + 16 for n in lengths)
        most = (end - off) // size
        periods, window = 2, 256
        while periods < most:  # galloping, so a short run costs little
            stop = min(most, periods + window)
            same = stop - periods
            for r, header in enumerate(heads[:period]):
                for b in range(12):
                    column = buf[off + starts[r] + b + periods * size: off + stop * size: size]
                    same = min(same, len(column) - len(column.lstrip(header[b:b + 1])))
            periods += same
            if periods < stop:
                break
            window *= 4
        if periods < MIN_RUN:
            return None
        return lengths, starts, periods

    def _read_run(self, buf: bytes, base: int, off: int, lengths: list[int], starts: list[int], periods: int) -> int:
        size = sum(n + 16 for n in lengths)
        stop = off + periods * size
        for length, start in zip(lengths, starts, strict=True):
            first = off + start + 12
            columns = [buf[first + j: stop: size] for j in range(length + 4)]
            self._table(buf, base, range(base + off + start, base + stop, size), length, columns)
        return stop

    def _flush(self, buf: bytes, base: int, loose: dict[int, list[int]]) -> None:
        """Read the records walked one by one, grouped by length."""
        for length, offsets in loose.items():
            if length > LANE_MAX or len(offsets) < 8:
                for off in offsets:
                    data = buf[off + 12: off + 12 + length]
                    if masked_crc32c(data) != int.from_bytes(buf[off + 12 + length: off + 16 + length], "little"):
                        self._found(base + off, "record data CRC mismatch")
                    else:
                        self._record(buf, base, off, length)
                continue
            width = length + 4
            rows = b"".join([buf[o + 12: o + 16 + length] for o in offsets])
            self._table(buf, base, [base + o for o in offsets], length, [rows[j::width] for j in range(width)])
        loose.clear()

    # one table of records of the same length --------------------------------------------------------------
    def _table(self, buf: bytes, base: int, offsets: Sequence[int], length: int, columns: list[bytes]) -> None:
        """Check the CRCs of records given as columns (data bytes, then the 4 CRC bytes), then decode them."""
        count = len(offsets)
        if length < 4:
            bad = [i for i in range(count) if masked_crc32c(bytes(c[i] for c in columns[:length]))
                   != int.from_bytes(bytes(c[i] for c in columns[length:]), "little")]
            varying = list(range(length))
        else:
            bad, varying = _record_crc_mismatches(columns[:length], columns[length:], count)
        data = columns[:length]
        if bad:
            for i in bad:
                self._found(offsets[i], "record data CRC mismatch")
            keep = [1] * count
            for i in bad:
                keep[i] = 0
            offsets = list(compress(offsets, keep))
            data = [bytes(compress(c, keep)) for c in data]
            count = len(offsets)
            varying = [j for j, c in enumerate(data) if count and c.count(c[:1]) != count]
        if count:
            self._decode(buf, base, offsets, length, data, varying, 0)

    def _decode(self, buf: bytes, base: int, offsets: Sequence[int], length: int, data: list[bytes],
                varying: list[int], depth: int, event: _Event | None = None) -> None:
        """Decode checked records of one length: column-wise where all share the first one's layout (`event`:
        the first one, already collected)."""
        count = len(offsets)
        if event is None:
            event = self._record(buf, base, offsets[0] - base, length)
        if event is None or count == 1:
            self._each(buf, base, offsets[1:], length)
            return
        free = {j for a, b in event.free for j in range(a, b)}
        odd = [j for j in varying if j not in free]
        if odd:  # not one layout: split by the first byte that differs, or read one by one
            distinct = set(data[odd[0]])
            if depth >= 4 or len(distinct) > 16:
                self._each(buf, base, offsets[1:], length)
                return
            for value in distinct:
                keep = [1 if b == value else 0 for b in data[odd[0]]]
                part = [bytes(compress(c, keep)) for c in data]
                part_offsets = list(compress(offsets, keep))
                n = len(part_offsets)
                self._decode(buf, base, part_offsets, length, part,
                             [j for j, c in enumerate(part) if c.count(c[:1]) != n], depth + 1,
                             event if value == data[odd[0]][0] else None)
            return
        scalar = event.scalars[0] if len(event.scalars) == 1 and event.values == 1 else None
        step_span = event.step_span
        if scalar is None or scalar.value_span is None or (step_span is not None and (
                step_span[1] - step_span[0] > 9 or not _varint_columns(data[step_span[0]:step_span[1]], count))):
            self._each(buf, base, offsets[1:], length)
            return
        # the first record was collected by _record; the others share its layout
        rest = slice(1, None)
        offsets = offsets[1:]
        count -= 1
        steps = _steps([c[rest] for c in data[step_span[0]:step_span[1]]], count) if step_span else array(
            "q", bytes(8 * count))
        a, b = scalar.value_span
        raw = bytearray((b - a) * count)
        for i in range(b - a):
            raw[i::b - a] = data[a + i][rest]
        values = array(scalar.fmt[1], raw)
        if not _LITTLE:
            values.byteswap()
        floats = array("d", values)
        ta, tb = scalar.tag_span
        if not any(ta <= j < tb for j in varying):
            self._add(scalar.tag, _Piece(offsets, steps, floats, scalar.tensor))
            return
        tags = list(map(bytes, zip(*(c[rest] for c in data[ta:tb]), strict=True)))
        for tag in set(tags):
            keep = [t == tag for t in tags]
            self._add(tag, _Piece(list(compress(offsets, keep)), array("q", compress(steps, keep)),
                                  array("d", compress(floats, keep)), scalar.tensor))

    def _each(self, buf: bytes, base: int, offsets: Sequence[int], length: int) -> None:
        for off in offsets:
            self._record(buf, base, off - base, length)

    def _record(self, buf: bytes, base: int, off: int, length: int) -> _Event | None:
        """Decode one checked record at buf[off] and collect its scalars."""
        try:
            event = self._event(buf, off + 12, off + 12 + length)
        except (ValueError, IndexError, struct.error, RecursionError, OverflowError):
            self._found(base + off, "record does not hold a valid Event")
            return None
        for scalar in event.scalars:
            self._add(scalar.tag, _Piece([base + off], array("q", [event.step]), array("d", [scalar.value]),
                                         scalar.tensor))
        return event

    def _event(self, buf: bytes, start: int, end: int) -> _Event:
        event = _Event(0, [], None, [], 0)
        for number, wire, a, b in spans(buf, start, end):
            if number == 1 and wire == 1:
                event.free.append((a - start, b - start))
            elif number == 2 and wire == 0:
                event.step = a - (1 << 64) if a >= 1 << 63 else a
                event.step_span = (b - start, varint(buf, b, end)[1] - start)
                event.free.append(event.step_span)
            elif number == 3 and wire == 2:
                self.series.facts.setdefault("file_version", buf[a:b].decode("utf-8", errors="replace")[:40])
            elif number == 5 and wire == 2:
                for value_number, vwire, va, vb in spans(buf, a, b):
                    if value_number == 1 and vwire == 2:
                        event.values += 1
                        self._value(buf, va, vb, start, event)
        return event

    def _value(self, buf: bytes, start: int, end: int, record: int, event: _Event) -> None:
        tag, tag_span, plugin = b"", (0, 0), None
        found: tuple[float, tuple[int, int] | None, str] | None = None
        tensor = False
        for number, wire, a, b in spans(buf, start, end):
            if number == 1 and wire == 2:
                tag, tag_span = buf[a:b], (a - record, b - record)
            elif number == 2 and wire == 5:
                found = (struct.unpack_from("<f", buf, a)[0], (a, b), "<f")
            elif number == 9 and wire == 2:
                for meta, mwire, ma, mb in spans(buf, a, b):
                    if meta == 1 and mwire == 2:
                        plugin = self._plugin(buf, ma, mb)
            elif number == 8 and wire == 2:
                found, tensor = _tensor_scalar(buf, a, b), True
        if plugin is not None:
            self.plugins.setdefault(tag, plugin)
        if found is None or (tensor and self.plugins.get(tag, "scalars") != "scalars"):
            return
        value, span, fmt = found
        value_span = (span[0] - record, span[1] - record) if span else None
        event.free.extend([tag_span, *([value_span] if value_span else [])])
        event.scalars.append(_Scalar(tag, value, tag_span, value_span, fmt, tensor))

    def _plugin(self, buf: bytes, start: int, end: int) -> str:
        name, content = "", (0, 0)
        for number, wire, a, b in spans(buf, start, end):
            if number == 1 and wire == 2:
                name = buf[a:b].decode("utf-8", errors="replace")
            elif number == 2 and wire == 2:
                content = (a, b)
        if name == "hparams":
            try:
                found = _hparams(buf, *content)
            except (ValueError, IndexError, struct.error, RecursionError):
                found = {}
            if found:
                self.series.hparams.update(found)
                self.series.records += 1
        return name

    # collecting ---------------------------------------------------------------------------------------------
    def _add(self, tag: bytes, piece: _Piece) -> None:
        self.pieces.setdefault(tag, []).append(piece)

    def _route(self) -> None:
        """Hand this block's scalars, tag by tag in file order, to the series."""
        series = self.series
        for tag, found in self.pieces.items():
            pieces = [p for p in found if not p.tensor] if self.plugins.get(tag, "scalars") != "scalars" else found
            if not pieces:
                continue
            pieces.sort(key=lambda p: p.offsets[0])
            if any(a.offsets[-1] > b.offsets[0] for a, b in pairwise(pieces)):  # interleaved: one sorted piece
                offsets = [o for p in pieces for o in p.offsets]
                order = sorted(range(len(offsets)), key=offsets.__getitem__)
                steps = [s for p in pieces for s in p.steps]
                values = [v for p in pieces for v in p.values]
                pieces = [_Piece(array("q", map(offsets.__getitem__, order)), array("q", map(steps.__getitem__, order)),
                                 array("d", map(values.__getitem__, order)), False)]
            series.records += sum(len(p.values) for p in pieces)
            top = max(max(p.steps) for p in pieces)
            if series.max_step is None or top > series.max_step:
                series.max_step = top
            role = self.roles.get(tag, "?")
            if role == "?":
                role = self.roles[tag] = tag_role(tag.decode("utf-8", errors="replace"))
            name = tag.decode("utf-8", errors="replace")
            if role in ("loss", "epoch"):
                kept = self.loss.setdefault(tag, (array("q"), array("q"), array("d"))) if role == "loss" else self.epoch
                for piece in pieces:
                    kept[0].extend(piece.offsets)
                    kept[1].extend(piece.steps)
                    kept[2].extend(piece.values)
            elif role == "eval":
                series.evals[name] = pieces[-1].values[-1]
                series.eval_count += sum(len(p.values) for p in pieces)
            elif role == "lr":
                series.facts["lr"] = repr(pieces[-1].values[-1])
                series.facts["lr_tag"] = name
            elif role == "grad_norm":
                for piece in pieces:
                    if math.isfinite(sum(piece.values)):
                        continue
                    for off, value in zip(piece.offsets, piece.values, strict=True):
                        if not math.isfinite(value):
                            series.grad_nonfinite_count += 1
                            if len(series.grad_nonfinite) < MAX_KEPT:
                                series.grad_nonfinite.append((off, value))
        self.pieces.clear()
        for offset, what in sorted(self.findings):
            series._bad(offset, what)
        self.findings.clear()

    def finish(self) -> None:
        """Make the chosen training-loss tag the series' loss points."""
        series = self.series
        if not self.loss:
            return
        tag = max(self.loss, key=lambda t: (len(self.loss[t][2]), -self.loss[t][0][0]))
        offsets, steps, losses = self.loss[tag]
        name = tag.decode("utf-8", errors="replace")
        series.rule = f"tensorboard scalar tag {name!r}"
        series.facts["loss_tag"] = name
        series.steps, series.losses, series.lines = steps, losses, offsets
        _, epoch_steps, epochs = self.epoch
        if epoch_steps == steps:  # Lightning logs `epoch` with every loss point
            series.epochs = array("d", epochs)
        elif epoch_steps:
            epoch_at = dict(zip(epoch_steps, epochs, strict=True))  # the last value logged at a step
            series.epochs = array("d", map(epoch_at.get, steps, repeat(math.nan)))
        else:
            series.epochs = array("d", [math.nan]) * len(steps)
        if not math.isfinite(sum(losses)):
            for off, step, loss in zip(offsets, steps, losses, strict=True):
                if not math.isfinite(loss):
                    series.nonfinite_count += 1
                    if len(series.nonfinite) < MAX_KEPT:
                        series.nonfinite.append((off, step, loss))


def _varint_columns(columns: list[bytes], count: int) -> bool:
    """Whether every row's bytes in these columns are one varint of that many bytes (continuation bits)."""
    return all(c.translate(_HIGH).count(b"\x80" if j < len(columns) - 1 else b"\x00") == count
               for j, c in enumerate(columns))


def _steps(columns: list[bytes], count: int) -> array:
    """int64 steps from varint byte columns (at most 9 bytes: below 2**63), 7 bits a column, in 8-byte lanes."""
    if len(columns) == 1:
        return array("q", array("B", columns[0]))  # element by element (bytes would be read as raw int64s)
    total = 0
    for i, column in enumerate(columns):
        lanes = bytearray(8 * count)
        lanes[0::8] = column.translate(_LOW7)
        total += int.from_bytes(lanes, "little") << (7 * i)
    steps = array("q", total.to_bytes(8 * count, "little"))
    if not _LITTLE:
        steps.byteswap()
    return steps


def read_event_file(handle: BinaryIO, rel: str) -> MetricsSeries:
    """The series of one TensorBoard event file, streamed from `handle`; problems are findings, never raised."""
    series = MetricsSeries(path=rel, kind="tensorboard", position="byte")
    try:
        size: int | None = os.fstat(handle.fileno()).st_size
    except (OSError, AttributeError, ValueError):
        size = None
    reader = _Reader(series, size)
    buf, base, off = b"", 0, 0
    try:
        while True:
            chunk = handle.read(BLOCK_BYTES)
            buf = buf[off:] + chunk
            base += off
            off = reader.block(buf, base, final=not chunk)
            if reader.skip_to is not None:  # a record too long to read: seek past it
                handle.seek(reader.skip_to)
                buf, base, off, reader.skip_to = b"", reader.skip_to, 0, None
            elif not chunk:
                break
    except OSError as exc:
        series._bad(base + off, f"cannot be read ({exc.strerror or exc})")
    reader.finish()
    if series.hparams:
        series.plan.update(plan_fields(series.hparams, rel)[0])
    return series


@register
class TensorBoardEvents(MetricsSource):
    """TensorBoard event files, read from their bytes."""

    info = FormatInfo(
        id="tensorboard", kind="metrics", title="TensorBoard event files",
        looks_for=("events.out.tfevents.*",),
        reads="every record (length and data CRC-32C checked) and its Event: step and the scalar summaries "
              "(simple_value or a one-element tensor): the training-loss tag as the loss curve, epoch, learning "
              "rate, val*/eval*/test* figures, and the hparams plugin's hyper-parameters",
        proves="the loss curve as the writer recorded it, point by point at the byte offset of its record; a "
               "corrupt, truncated or unparsable record is named by its offset. Wall times are not read, and a "
               "CRC proves integrity, not who wrote the file",
    )

    def read(self, folder: Folder, rel: str) -> list[MetricsSeries]:
        try:
            handle = folder.open(rel)
        except EvidenceUnreadable as exc:
            series = MetricsSeries(path=rel, kind="tensorboard", position="byte")
            series._bad(0, str(exc))
            return [series]
        with handle:
            return [read_event_file(handle, rel)]
