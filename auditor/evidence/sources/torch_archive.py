"""PyTorch checkpoints (torch.save archives: .pt, .pth, HF pytorch_model.bin, Lightning .ckpt) read from their
bytes, never unpickled and without torch: the zip's central directory, local headers and every member's CRC-32
(one sequential pass that also gives the file's sha256), data.pkl walked by auditor.evidence.pickles for tensors
and the globals a load would import, and each referenced storage checked for enough bytes. The legacy non-zip
format (a magic-number pickle, then the object pickle and raw storage records) is read the same way."""

from __future__ import annotations

import hashlib
import io
import math
import os
import queue
import re
import struct
import threading
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

from auditor.evidence.checkpoint import Checkpoint, PickleGlobal
from auditor.evidence.jsonload import load_json
from auditor.evidence.opener import EvidenceUnreadable, Folder
from auditor.evidence.pickles import PickleScan, Tensor, tensor_paths, unsafe_globals, walk_pickle
from auditor.evidence.safetensors import ShardIndex
from auditor.evidence.sources.interface import Candidate, CheckpointSource, FormatInfo, name_matches
from auditor.evidence.sources.registry import register

CHUNK = 1024 * 1024  # every sequential read: CRC-32 and sha256 are fed 1 MiB at a time
_BUFFERS = 4  # chunks in flight between the hashing reader and the CRC worker
DATA_PKL_LIMIT = 256 * 1024 * 1024  # the only member read whole; a longer data.pkl is cut and reported
INDEX_LIMIT = 64 * 1024 * 1024  # a pytorch_model.bin.index.json longer than this is not read
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER, the first pickle of a legacy file
MODEL_KEYS = ("state_dict", "model_state_dict", "model", "module")  # where a training checkpoint nests the weights
STEP_KEYS = ("global_step", "step", "iter_num", "iteration")  # top-level ints naming the step (Lightning first)
_LOCAL = struct.Struct("<4s5H3L2H")  # a zip local file header: signature ... name length, extra length
_DATA_PKL = re.compile(r"([^/]+)/data\.pkl")
_DEEPSPEED_DIR = re.compile(r"global_step\d+")  # DeepSpeed / DCP layouts: another source reads those
# trainer state saved beside a model (HF Trainer, accelerate): not weights, and read by their framework's source
_TRAINER_STATE = re.compile(r"(optimizer|scheduler|scaler|rng_state(_\d+)?|training_args)\.(pt|pth|bin)")
_STEP_IN_NAME = (re.compile(r"(?:^|[^a-z])step[=_-]?(\d+)", re.IGNORECASE),
                 re.compile(r"^(?:checkpoint|ckpt|model|weights|iter|iteration)[=_-]?(\d+)$", re.IGNORECASE))
_FINAL_NAME = re.compile(r"^(last(-v\d+)?|final.*|latest.*)$", re.IGNORECASE)
_FINAL_DIRS = ("final_model", "final")


@dataclass
class TorchArchiveFile:
    """One torch.save file as read from its bytes (a WeightFile): layout ('zip', 'legacy', or 'pickle' for a
    bare pickle), the model tensors {name: (dtype, shape)} (below `weights_key` for a training checkpoint), the
    file's sha256, the step and epoch its top-level dict states, and what is wrong."""

    path: str
    size: int
    layout: str = ""
    tensors: dict[str, tuple[str, tuple[int, ...]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    sha256: str | None = None
    stamp: tuple[int, int] | None = None  # (size, mtime_ns) of the file the digest was computed over
    members: int = 0
    weights_key: str | None = None
    step: int | None = None
    epoch: int | None = None
    pickle_globals: list[PickleGlobal] = field(default_factory=list)

    @property
    def parameters(self) -> int:
        """Parameter count from tensor shapes."""
        return sum(math.prod(shape) for _, shape in self.tensors.values())


@dataclass
class _Span:
    """A zip member's data in the file and what its central directory entry promises about it."""

    name: str
    start: int
    end: int
    method: int
    crc_expected: int
    size_expected: int
    crc: int = 0
    produced: int = 0
    inflater: Any = None
    error: str | None = None

    def feed(self, data: memoryview) -> None:
        if self.error is not None:
            return
        if self.method == zipfile.ZIP_STORED:
            self._take(data)
            return
        try:
            # bounded inflation: a member that inflates past its stated size stops there (a zip bomb)
            out = self.inflater.decompress(data, CHUNK)
            self._take(out)
            while self.inflater.unconsumed_tail and self.error is None:
                self._take(self.inflater.decompress(self.inflater.unconsumed_tail, CHUNK))
        except zlib.error as exc:
            self.error = f"deflate data is corrupt ({exc})"

    def _take(self, data: bytes | memoryview) -> None:
        self.crc = zlib.crc32(data, self.crc)
        self.produced += len(data)
        if self.produced > self.size_expected:
            self.error = f"holds more than the {self.size_expected} bytes its directory entry states"

    def verdict(self) -> str | None:
        """What is wrong with this member after the pass, if anything."""
        if self.error is not None:
            return f"member {self.name}: {self.error}"
        if self.produced != self.size_expected:
            return f"member {self.name}: {self.produced} bytes of the {self.size_expected} stated (truncated)"
        if self.crc != self.crc_expected:
            return (f"member {self.name}: CRC-32 mismatch (stored {self.crc_expected:08x}, "
                    f"data gives {self.crc:08x}): its bytes were changed")
        return None


@dataclass
class ArchiveCheck:
    """One sequential read of a file: its sha256, its zip members (name → stated size; empty when it is not a
    readable zip), the member spans for reading data.pkl, and what is wrong with the zip structure."""

    sha256: str
    size: int
    members: dict[str, int]
    problems: list[str]
    spans: dict[str, _Span]
    is_zip: bool


def verify_archive(handle: BinaryIO) -> ArchiveCheck:
    """Check a zip's central directory and local headers, then read the whole file once, sequentially in 1 MiB
    chunks, verifying every member's CRC-32 and size while computing the file's sha256 (CRCs on a second thread:
    zlib and hashlib both release the GIL, so the two run side by side). A non-zip file gets only its digest."""
    size = os.fstat(handle.fileno()).st_size
    problems: list[str] = []
    spans, is_zip = _zip_spans(handle, size, problems)
    digest = _one_pass(handle, sorted(spans.values(), key=lambda s: s.start))
    for span in sorted(spans.values(), key=lambda s: s.start):
        verdict = span.verdict()
        if verdict:
            problems.append(verdict)
    members = {s.name: s.size_expected for s in spans.values()}
    return ArchiveCheck(digest, size, members, problems, spans, is_zip)


def _zip_spans(handle: BinaryIO, size: int, problems: list[str]) -> tuple[dict[str, _Span], bool]:
    try:
        infos = zipfile.ZipFile(handle).infolist()
    except Exception as exc:  # zipfile raises a zoo (BadZipFile, struct.error, ValueError, ...) on hostile bytes
        problems.append(f"zip central directory unreadable ({exc}): truncated or not a zip")
        return {}, False
    spans: dict[str, _Span] = {}
    for info in infos:
        if info.filename in spans:
            problems.append(f"member {info.filename} appears twice in the central directory")
            continue
        span = _local_span(handle, size, info, problems)
        if span is not None:
            spans[info.filename] = span
    kept: _Span | None = None
    for span in sorted(spans.values(), key=lambda s: s.start):
        if kept is not None and span.start < kept.end:
            # overlapping members (a zip bomb's trick): the later one's bytes are not checked twice
            problems.append(f"member {span.name} overlaps member {kept.name}")
            del spans[span.name]
        else:
            kept = span
    return spans, True


def _local_span(handle: BinaryIO, size: int, info: zipfile.ZipInfo, problems: list[str]) -> _Span | None:
    name = info.filename
    if not 0 <= info.header_offset <= size - _LOCAL.size:
        problems.append(f"member {name}: local header offset {info.header_offset} lies outside the file")
        return None
    handle.seek(info.header_offset)
    raw = handle.read(_LOCAL.size)
    fields = _LOCAL.unpack(raw) if len(raw) == _LOCAL.size else None
    if fields is None or fields[0] != b"PK\x03\x04":
        problems.append(f"member {name}: no local file header at offset {info.header_offset}")
        return None
    flags, crc, csize, usize, name_len, extra_len = fields[2], fields[6], fields[7], fields[8], fields[9], fields[10]
    local_name = handle.read(name_len)
    if local_name.decode("utf-8" if flags & 0x800 else "cp437", "replace") != info.orig_filename:
        problems.append(f"member {name}: local header names it {local_name!r}")
        return None
    start = info.header_offset + _LOCAL.size + name_len + extra_len
    end = start + info.compress_size
    if end > size:
        problems.append(f"member {name}: its data runs to byte {end} but the file has {size} (truncated)")
        return None
    if not flags & 0x08 and 0xFFFFFFFF not in (csize, usize) and (
            (crc, csize, usize) != (info.CRC, info.compress_size, info.file_size)):
        problems.append(f"member {name}: local header and central directory disagree on CRC or sizes")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        problems.append(f"member {name}: compression method {info.compress_type} is not read")
        return None
    if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
        problems.append(f"member {name}: stored with {info.compress_size} bytes but states {info.file_size}")
        return None
    inflater = zlib.decompressobj(-15) if info.compress_type == zipfile.ZIP_DEFLATED else None
    return _Span(name, start, end, info.compress_type, info.CRC, info.file_size, inflater=inflater)


def _one_pass(handle: BinaryIO, spans: list[_Span]) -> str:
    # reused buffers (readinto), not a fresh 1 MiB bytes per read: allocating and faulting in a new chunk each
    # time costs as much as the CRCs. The reader hashes a buffer while the worker CRCs the same one; the worker
    # hands it back when done, so at most BUFFERS MiB are in flight.
    digest = hashlib.sha256()
    handle.seek(0)
    readinto = cast(io.BufferedIOBase, handle).readinto  # Folder.open gives a BufferedReader
    if not spans:
        buffer = bytearray(CHUNK)
        while read := readinto(buffer):
            digest.update(memoryview(buffer)[:read])
        return digest.hexdigest()
    free: queue.Queue[bytearray] = queue.Queue()
    for _ in range(_BUFFERS):
        free.put(bytearray(CHUNK))
    work: queue.Queue[tuple[int, bytearray, int] | None] = queue.Queue()
    worker = threading.Thread(target=_crc_worker, args=(work, free, spans), daemon=True)
    worker.start()
    offset = 0
    try:
        while True:
            buffer = free.get()
            read = readinto(buffer)
            if not read:
                break
            work.put((offset, buffer, read))
            digest.update(memoryview(buffer)[:read])
            offset += read
    finally:
        work.put(None)
        worker.join()
    return digest.hexdigest()


def _crc_worker(work: queue.Queue[tuple[int, bytearray, int] | None], free: queue.Queue[bytearray],
                spans: list[_Span]) -> None:
    index = 0
    while (item := work.get()) is not None:
        offset, buffer, length = item
        try:
            index = _crc_chunk(offset, memoryview(buffer)[:length], spans, index)
        except Exception as exc:  # keep going: a dead worker would leave the reader waiting for a free buffer
            for span in spans[index:]:
                span.error = span.error or f"CRC-32 not computed ({exc!r})"
            index = len(spans)
        free.put(buffer)


def _crc_chunk(offset: int, view: memoryview, spans: list[_Span], index: int) -> int:
    """Feed one chunk to the members it overlaps (spans sorted by start, none overlapping); the next index."""
    end = offset + len(view)
    while index < len(spans) and spans[index].start < end:
        span = spans[index]
        low, high = max(span.start, offset), min(span.end, end)
        if high > low:
            span.feed(view[low - offset:high - offset])
        if span.end > end:
            break
        index += 1
    return index


def member_bytes(handle: BinaryIO, span: _Span, limit: int) -> tuple[bytes, bool]:
    """At most `limit` bytes of one member's (inflated) data and whether the limit cut it; no CRC check here
    (verify_archive does that), so a tampered data.pkl is still walked for what it imports."""
    handle.seek(span.start)
    if span.method == zipfile.ZIP_STORED:
        data = handle.read(min(span.end - span.start, limit + 1))
        return data[:limit], len(data) > limit
    inflater, out, remaining = zlib.decompressobj(-15), bytearray(), span.end - span.start
    try:
        while remaining > 0 and len(out) <= limit:
            chunk = handle.read(min(CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            out += inflater.decompress(chunk, limit + 1 - len(out))
    except zlib.error:
        pass  # the CRC pass reports the corrupt stream; walk what inflated
    return bytes(out[:limit]), len(out) > limit


@register
class TorchArchiveSource(CheckpointSource):
    """torch.save archives (zip and legacy), HF pytorch_model.bin (single or sharded) and Lightning .ckpt."""

    info = FormatInfo(
        id="torch_archive",
        kind="checkpoint",
        title="PyTorch torch.save archive (.pt, .pth, pytorch_model.bin, Lightning .ckpt)",
        looks_for=("*.pt", "*.pth", "*.bin", "*.ckpt", "*.bin.index.json"),
        reads=("The zip's central directory and every member's CRC-32 and size in one sequential read that also "
               "hashes the file; data.pkl's opcodes, walked without unpickling, for tensor names, dtypes and "
               "shapes and the globals a load would import; each storage's byte count. Legacy (pre-1.6) files "
               "are read the same way, pickle by pickle."),
        proves=("That the file is intact and holds the tensors it names, with enough bytes behind each, and "
                "whether loading it would import anything beyond torch's weights_only allowlist. It does not "
                "prove the values are trained weights, and nothing in it is ever executed."),
    )

    def find(self, folder: Folder) -> list[Candidate]:
        """Every torch.save file (and sharded pytorch_model.bin index) outside DeepSpeed global_step dirs."""
        found: list[Candidate] = []
        sharded: set[str] = set()
        for rel in folder.files:
            if rel.endswith(".bin.index.json") and not _in_deepspeed_dir(rel):
                index = _read_index(folder, rel)
                directory = rel.rpartition("/")[0]
                sharded.update(_join(directory, s) for s in index.shards)
                found.append(Candidate(directory or ".", self.info.id, _step_of(directory, ""),
                                       _is_final(directory, "")))
        for rel in folder.files:
            name = rel.rpartition("/")[2]
            if (rel in sharded or name.endswith(".json") or not name_matches(rel, self.info.looks_for)
                    or _in_deepspeed_dir(rel) or _TRAINER_STATE.fullmatch(name)):
                continue
            if _layout_of(folder, rel) is not None:
                directory, stem = rel.rpartition("/")[0], name.rpartition(".")[0]
                found.append(Candidate(rel, self.info.id, _step_of(directory, stem), _is_final(directory, stem)))
        return found

    def inspect(self, folder: Folder, candidate: Candidate) -> Checkpoint:
        """Structure, integrity, tensors and globals of one file, or of every shard of a sharded .bin."""
        if candidate.location in folder.files:
            weights = read_torch_file(folder, candidate.location)
            ckpt = Checkpoint(directory=candidate.location, format=self.info.id, files=[weights],
                              pickle_globals=list(weights.pickle_globals),
                              step=weights.step if weights.step is not None else candidate.step)
            ckpt.problems.extend(f"{weights.path}: {p}" for p in weights.problems)
            ckpt.summary = _describe(weights)
            return ckpt
        return _inspect_sharded(folder, candidate)


def read_torch_file(folder: Folder, rel: str) -> TorchArchiveFile:
    """One torch.save file (zip, legacy, or a bare pickle) read from its bytes; problems recorded, never raised."""
    result = TorchArchiveFile(path=rel, size=folder.size(rel))
    try:
        with folder.open(rel) as handle:
            opened = os.fstat(handle.fileno())
            check = verify_archive(handle)
            result.sha256, result.size = check.sha256, check.size
            result.stamp = (opened.st_size, opened.st_mtime_ns)
            if check.is_zip:
                result.layout, result.members = "zip", len(check.members)
                result.problems.extend(check.problems)
                _read_zip(handle, check, result)
            elif _starts_zip(handle):
                result.layout = "zip"
                result.problems.extend(check.problems)
                _salvage_zip(handle, check.size, result)
            else:
                _read_legacy(handle, check.size, result)
    except (EvidenceUnreadable, OSError) as exc:
        result.problems.append(f"cannot be read ({exc})")
    return result


def _read_zip(handle: BinaryIO, check: ArchiveCheck, result: TorchArchiveFile) -> None:
    pickles = sorted(n for n in check.spans if _DATA_PKL.fullmatch(n))
    if not pickles:
        result.problems.append("holds no <archive>/data.pkl member: not a torch.save archive")
    if len(pickles) > 1:
        result.problems.append(f"holds {len(pickles)} data.pkl members ({', '.join(pickles)}); read the first")
    # other pickles (TorchScript's constants.pkl, extra records) are walked for what they import too
    extra = sorted(n for n in check.spans if n.endswith(".pkl") and n not in pickles[:1])
    for name in [*pickles[:1], *extra]:
        data, cut = member_bytes(handle, check.spans[name], DATA_PKL_LIMIT)
        if cut:
            result.problems.append(f"member {name} is over {DATA_PKL_LIMIT} bytes: read only that far")
        scan = walk_pickle(data, f"{result.path}:{name}")
        _take_globals(result, scan)
        result.problems.extend(f"member {name}: {p}" for p in scan.problems if not cut or not scan.truncated)
        if name == pickles[0]:
            prefix = name.rpartition("/")[0]
            _take_tensors(result, scan)
            _check_storages(result, scan, check.members, prefix)


def _starts_zip(handle: BinaryIO) -> bool:
    handle.seek(0)
    return handle.read(4) == b"PK\x03\x04"


def _salvage_zip(handle: BinaryIO, size: int, result: TorchArchiveFile) -> None:
    """A zip whose central directory is gone (a truncated file): torch writes data.pkl first, so walk the pickle
    that follows the first local header, for what a load of the intact file would have imported."""
    handle.seek(0)
    raw = handle.read(_LOCAL.size)
    if len(raw) < _LOCAL.size:
        return
    fields = _LOCAL.unpack(raw)
    name = handle.read(fields[9]).decode("cp437")
    if not _DATA_PKL.fullmatch(name) or fields[3] != zipfile.ZIP_STORED:
        return  # torch never compresses data.pkl; a deflated one without its directory is not followed
    start = _LOCAL.size + fields[9] + fields[10]
    length = CHUNK
    while True:  # a growing window, so a small data.pkl at the head of a large file costs one small read
        handle.seek(start)
        data = handle.read(length)
        scan = walk_pickle(data, f"{result.path}:{name}")
        if not scan.truncated or len(data) < length or length >= DATA_PKL_LIMIT:
            break
        length = min(length * 8, DATA_PKL_LIMIT)
    _take_globals(result, scan)
    result.problems.extend(f"member {name}: {p}" for p in scan.problems)
    _take_tensors(result, scan)


def _check_storages(result: TorchArchiveFile, scan: PickleScan, members: dict[str, int], prefix: str) -> None:
    for key, storage in scan.storages.items():
        member = f"{prefix}/data/{key}"
        if member not in members:
            result.problems.append(f"storage {key}: member {member} is missing")
        elif members[member] < storage.nbytes:
            result.problems.append(f"storage {key}: member {member} holds {members[member]} bytes, "
                                   f"data.pkl needs {storage.nbytes}")
    _check_extents(result, scan)


def _check_extents(result: TorchArchiveFile, scan: PickleScan) -> None:
    for path, tensor in scan.tensors():
        if tensor.storage is not None and tensor.extent > tensor.storage.nbytes:
            result.problems.append(f"tensor {'.'.join(path)!r} reaches byte {tensor.extent} of storage "
                                   f"{tensor.storage.key}, which holds {tensor.storage.nbytes}")
            break


def _read_legacy(handle: BinaryIO, size: int, result: TorchArchiveFile) -> None:
    scans = _legacy_pickles(handle, size, result.path)
    first = scans[0]
    if not (first.end is not None and first.root == LEGACY_MAGIC):
        # torch.load unpickles this first pickle to look for the magic number: whatever it imports, it runs
        result.layout = "pickle"
        result.problems.append("not a torch.save archive: a bare pickle (torch.load would unpickle it to find out)")
        _take_globals(result, first)
        result.problems.extend(first.problems)
        _take_tensors(result, first)
        return
    result.layout = "legacy"
    for scan in scans:
        _take_globals(result, scan)
        result.problems.extend(scan.problems)
    if len(scans) < 5 or any(s.end is None for s in scans):
        result.problems.append("legacy archive ends before its five pickles do (truncated)")
        if len(scans) >= 4:
            _take_tensors(result, scans[3])
        return
    _take_tensors(result, scans[3])
    _check_extents(result, scans[3])
    _legacy_records(handle, size, scans[3], scans[4], result)


def _legacy_pickles(handle: BinaryIO, size: int, path: str) -> list[PickleScan]:
    """The magic, protocol, sys_info, object and storage-key pickles at the head of a legacy file (fewer when one
    is malformed); reads a growing prefix, up to DATA_PKL_LIMIT, until they all end inside it."""
    length = min(size, CHUNK)
    while True:
        handle.seek(0)
        data = handle.read(length)
        scans: list[PickleScan] = []
        start = 0
        for _ in range(5):
            scan = walk_pickle(data, path, start)
            scans.append(scan)
            if scan.end is None:
                break
            start = scan.end
            if scans[0].root != LEGACY_MAGIC:
                break
        cut_short = scans[-1].truncated and len(data) == length
        if not cut_short or length >= min(size, DATA_PKL_LIMIT):
            if cut_short and length < size:
                scans[-1].problems.append(f"pickle runs past the first {length} bytes: read only that far")
            return scans
        length = min(size, DATA_PKL_LIMIT, length * 8)


def _legacy_records(handle: BinaryIO, size: int, objects: PickleScan, keys_scan: PickleScan,
                    result: TorchArchiveFile) -> None:
    # after the pickles: for each key of the key list, an 8-byte little-endian element count, then the bytes
    keys = keys_scan.root
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
        result.problems.append("legacy storage key list is not a list of strings")
        return
    missing = sorted(set(objects.storages) - set(keys))
    if missing:
        result.problems.append(f"storages {', '.join(missing[:5])} are referenced but have no data record")
    offset = keys_scan.end or 0
    for key in keys:
        storage = objects.storages.get(key)
        handle.seek(offset)
        raw = handle.read(8)
        if len(raw) < 8:
            result.problems.append(f"storage record {key} starts at byte {offset} but the file has {size} "
                                   "(truncated)")
            return
        if storage is None:
            result.problems.append(f"storage record {key} is not referenced by the object pickle")
            return
        (numel,) = struct.unpack("<q", raw)
        if numel != storage.numel:
            result.problems.append(f"storage record {key} holds {numel} elements, the pickle states {storage.numel}")
            return
        offset += 8 + numel * storage.itemsize
        if offset > size:
            result.problems.append(f"storage record {key} runs to byte {offset} but the file has {size} (truncated)")
            return
    if offset != size:
        result.problems.append(f"{size - offset} bytes follow the last storage record")


def _take_globals(result: TorchArchiveFile, scan: PickleScan) -> None:
    seen = {(g.path, g.module, g.name) for g in result.pickle_globals}
    result.pickle_globals.extend(g for g in scan.globals if (g.path, g.module, g.name) not in seen)


def _take_tensors(result: TorchArchiveFile, scan: PickleScan) -> None:
    """The model's tensors: below the first MODEL_KEYS entry that holds any (a training checkpoint nests them),
    else every tensor with its full key path (a bare state dict); step and epoch from the top-level dict."""
    root = scan.root
    weights: Any = root
    if isinstance(root, dict):
        for key in MODEL_KEYS:
            if isinstance(root.get(key), dict) and next(tensor_paths(root[key]), None) is not None:
                result.weights_key, weights = key, root[key]
                break
        result.step = next((v for k in STEP_KEYS if _is_int(v := root.get(k))), None)
        result.epoch = root["epoch"] if _is_int(root.get("epoch")) else None
    found: dict[str, Tensor] = {}
    for path, tensor in tensor_paths(weights):
        found[".".join(path)] = tensor
    result.tensors = {name: (t.dtype, t.shape) for name, t in found.items()}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _inspect_sharded(folder: Folder, candidate: Candidate) -> Checkpoint:
    directory = "" if candidate.location == "." else candidate.location
    ckpt = Checkpoint(directory=candidate.location, format=TorchArchiveSource.info.id, step=candidate.step)
    indexes = [f for f in (folder.under(directory) if directory else folder.files)
               if f.endswith(".bin.index.json") and f.rpartition("/")[0] == directory]
    if not indexes:
        ckpt.problems.append(f"{candidate.location}: neither a torch.save file nor a directory with a .bin index")
        return ckpt
    ckpt.index = _read_index(folder, indexes[0])
    if ckpt.index.problem:
        ckpt.problems.append(f"{ckpt.index.path} {ckpt.index.problem}")
    for shard in ckpt.index.shards:
        rel = _join(directory, shard)
        if rel not in folder.files:
            ckpt.missing_shards.append(shard)
            continue
        weights = read_torch_file(folder, rel)
        ckpt.files.append(weights)
        ckpt.pickle_globals.extend(weights.pickle_globals)
        ckpt.problems.extend(f"{weights.path}: {p}" for p in weights.problems)
    by_name = {f.path.rpartition("/")[2]: f for f in ckpt.files}
    for tensor, shard in ckpt.index.weight_map.items():
        holder = by_name.get(shard.rpartition("/")[2])
        if holder is not None and not holder.problems and tensor not in holder.tensors:
            ckpt.problems.append(f"{ckpt.index.path}: tensor {tensor!r} is not in {shard}")
            break
    if ckpt.missing_shards:
        ckpt.problems.append(f"{ckpt.index.path}: shards missing: {', '.join(ckpt.missing_shards)}")
    unsafe = unsafe_globals(ckpt.pickle_globals)
    ckpt.summary = (f"{len(ckpt.files)} of {len(ckpt.index.shards)} pytorch_model.bin shards read, "
                    f"{sum(len(f.tensors) for f in ckpt.files)} tensors, {ckpt.parameters:,} parameters; "
                    + (f"{len(unsafe)} pickle globals off the allowlist" if unsafe else "pickle globals allowlisted"))
    return ckpt


def _read_index(folder: Folder, rel: str) -> ShardIndex:
    try:
        raw, cut = folder.read(rel, INDEX_LIMIT)
        data = None if cut else load_json(raw)
    except (EvidenceUnreadable, ValueError, RecursionError):
        data = None
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        return ShardIndex(rel, {}, {}, "has no weight_map object of tensor → file")
    metadata = data.get("metadata") if isinstance(data, dict) else None
    return ShardIndex(rel, weight_map, metadata if isinstance(metadata, dict) else {})


def _layout_of(folder: Folder, rel: str) -> str | None:
    """'zip' (a zip whose first member, or any, is <archive>/data.pkl), 'legacy' (the magic-number pickle),
    'pickle' (another pickle: torch.load would unpickle it), or None: not a torch.save file."""
    head = folder.head(rel, 1024)
    if head[:4] == b"PK\x03\x04":
        (name_len,) = struct.unpack("<H", head[26:28]) if len(head) >= 30 else (0,)
        if _DATA_PKL.fullmatch(head[30:30 + name_len].decode("cp437")):
            return "zip"
        try:
            with folder.open(rel) as handle:
                names = zipfile.ZipFile(handle).namelist()
        except Exception:  # not a readable zip, so not a torch archive
            return None
        return "zip" if any(_DATA_PKL.fullmatch(n) for n in names) else None
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "legacy" if walk_pickle(head, rel).root == LEGACY_MAGIC else "pickle"
    return None


def _in_deepspeed_dir(rel: str) -> bool:
    return any(_DEEPSPEED_DIR.fullmatch(part) for part in rel.split("/")[:-1])


def _step_of(directory: str, stem: str) -> int | None:
    """The step a file's name (stem) or, failing that, its directories' names give: `epoch=0-step=120`,
    `step_120`, `checkpoint_120`, `model-120`, or a `checkpoint-500/` directory."""
    for part in [stem, *reversed(directory.split("/"))]:
        for pattern in _STEP_IN_NAME:
            match = pattern.search(part)
            if match:
                return int(match.group(1))
    return None


def _is_final(directory: str, stem: str) -> bool:
    """Named as the last one: `last.ckpt` (and Lightning's `last-v1.ckpt`), `final*`, `latest*`, or anything in a
    `final_model/` directory. A plain `model.pt` is not: the name makes no claim to be the end of training."""
    parts = directory.split("/") if directory else []
    return bool(_FINAL_NAME.match(stem)) or bool(parts and parts[-1] in _FINAL_DIRS)


def _join(directory: str, name: str) -> str:
    return f"{directory}/{name}" if directory else name


def _describe(weights: TorchArchiveFile) -> str:
    unsafe = unsafe_globals(weights.pickle_globals)
    where = f"below {weights.weights_key!r}" if weights.weights_key else "at the top level"
    layout = {"zip": f"zip archive, {weights.members} members CRC-32 verified", "legacy": "legacy archive",
              "pickle": "bare pickle"}.get(weights.layout, weights.layout)
    step = f", global step {weights.step}" if weights.step is not None else ""
    safety = (f"{len(unsafe)} of {len(weights.pickle_globals)} pickle globals off the allowlist" if unsafe
              else f"all {len(weights.pickle_globals)} pickle globals allowlisted")
    return (f"{weights.path}: {layout}; {len(weights.tensors)} tensors {where}, {weights.parameters:,} parameters"
            f"{step}; {safety}; sha256 {weights.sha256}")
