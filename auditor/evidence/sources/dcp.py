"""torch.distributed.checkpoint (DCP) folders, also HF Trainer / accelerate FSDP `pytorch_model_fsdp_*` ones: a
`.metadata` pickle (torch.distributed.checkpoint.metadata.Metadata) and the `__<rank>_<n>.distcp` files it points
into, read from their bytes without torch and without unpickling.

`.metadata` is walked by auditor.evidence.pickles with NEWOBJ/BUILD modelled as instances (a small subclass of its
walker: DCP's metadata is dataclass instances, which the state-dict walk leaves opaque). torch's FileSystemWriter
writes each item as one torch.save archive, back to back from byte 0 of its file (filesystem.py `_write_item`), so
a file's items cover it exactly; each item's archive is CRC-checked and its data.pkl walked for what a load imports
(tensor items load with weights_only=True, non-tensor items with weights_only=False: default_planner.py)."""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from auditor.evidence.checkpoint import Checkpoint, PickleGlobal
from auditor.evidence.opener import EvidenceUnreadable, Folder
from auditor.evidence.pickles import (
    TORCH_DTYPES,
    PickleScan,
    Tensor,
    _Global,
    _Walk,
    unsafe_globals,
    walk_pickle,
)
from auditor.evidence.sources.interface import Candidate, CheckpointSource, FormatInfo
from auditor.evidence.sources.registry import register

METADATA = ".metadata"
METADATA_LIMIT = 256 * 1024 * 1024  # a longer .metadata is cut and reported
ITEM_PICKLE_LIMIT = 64 * 1024 * 1024  # an item's data.pkl longer than this is not walked
MAX_PAIRWISE = 64  # chunks of one tensor checked pairwise for overlap (as torch's planner does); more: neighbours
DCP = "torch.distributed.checkpoint"
# state dict keys whose tensors are optimizer state, not model parameters (accelerate saves {"optimizer": ...},
# torchtitan and torch.distributed.checkpoint.state_dict `optim`): listed, not counted as parameters
OPTIMIZER_KEYS = ("optimizer", "optim", "optimizers", "optimizer_state", "optim_state")
_STEP = re.compile(r"(?:checkpoint|step|global_step|iter|iteration)[-_=]?(\d+)$", re.IGNORECASE)
_FINAL_DIRS = ("final_model", "final")
# accelerate's FSDP optimizer folder (optimizer_0/ beside pytorch_model_fsdp_0/): inspected, but given no step so
# that the model folder of the same checkpoint is the one preferred as final
_OPTIMIZER_DIR = re.compile(r"optimizer(_\d+)?")
_DATA_PKL = re.compile(r"[^/]+/data\.pkl")


class Instance:
    """An object a NEWOBJ built in the walk: its class (`module.name`) and the state BUILD gave it."""

    __slots__ = ("cls", "state")

    def __init__(self, cls: str) -> None:
        self.cls, self.state = cls, None


class _ObjectWalk(_Walk):
    """pickles' walker, with NEWOBJ and BUILD building an Instance instead of an opaque value."""

    def step(self, name: str, arg: Any, pos: int) -> None:
        if name in ("NEWOBJ", "NEWOBJ_EX"):
            if name == "NEWOBJ_EX":
                self.pop(pos)
            self.pop(pos)
            cls = self.pop(pos)
            self.stack.append(Instance(f"{cls.module}.{cls.name}" if isinstance(cls, _Global) else "?"))
        elif name == "BUILD" and len(self.stack) >= 2 and isinstance(self.stack[-2], Instance):
            state = self.stack.pop()  # (popped before naming the object: a target is evaluated after the value)
            self.stack[-1].state = state
        else:
            super().step(name, arg, pos)


def walk_objects(data: bytes, path: str) -> PickleScan:
    """Walk one pickle without executing it, as auditor.evidence.pickles.walk_pickle does, but with objects built
    by NEWOBJ/BUILD kept as Instances (class and state) in the root. Never raises."""
    return walk_pickle(data, path, walker=_ObjectWalk)


@dataclass
class _TensorMeta:
    dtype: str
    size: tuple[int, ...]
    chunks: list[tuple[tuple[int, ...], tuple[int, ...]]]


@dataclass
class _Item:
    fqn: str
    offsets: tuple[int, ...] | None  # None: a non-tensor (bytes) item
    file: str  # relative_path, as .metadata names it
    start: int
    length: int
    transformed: bool  # written through storage transforms (compression, ...): not a plain torch.save archive


@dataclass
class DcpMetadataFile:
    """The `.metadata` of a DCP checkpoint as a WeightFile: every tensor's global dtype and shape (model tensors
    in `tensors`, those below an optimizer key in `optimizer_tensors`, not counted as parameters)."""

    path: str
    size: int
    tensors: dict[str, tuple[str, tuple[int, ...]]] = field(default_factory=dict)
    optimizer_tensors: dict[str, tuple[str, tuple[int, ...]]] = field(default_factory=dict)
    non_tensors: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def parameters(self) -> int:
        """Parameter count from the model tensors' global shapes."""
        return sum(math.prod(shape) for _, shape in self.tensors.values())


def _state(value: Any, name: str) -> Any:
    """The BUILD state of an instance of torch.distributed.checkpoint.*.<name>, else None."""
    if isinstance(value, Instance) and value.cls.startswith(DCP + ".") and value.cls.rpartition(".")[2] == name:
        return value.state
    return None


def _ints(value: Any) -> tuple[int, ...] | None:
    if isinstance(value, tuple) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        return value
    return None


def _dtype(properties: Any) -> str:
    state = _state(properties, "TensorProperties")
    dtype = state[0] if isinstance(state, tuple) and state else state.get("dtype") if isinstance(state, dict) else None
    if isinstance(dtype, _Global) and dtype.module == "torch" and dtype.name in TORCH_DTYPES:
        return TORCH_DTYPES[dtype.name][0]
    return "?"


def _layout(root: Any, problems: list[str]) -> tuple[dict[str, _TensorMeta], list[str], list[_Item]]:
    """Tensors, non-tensor fqns and storage items of a walked Metadata; what cannot be read goes to problems."""
    tensors: dict[str, _TensorMeta] = {}
    others: list[str] = []
    items: list[_Item] = []
    state = _state(root, "Metadata")
    if not isinstance(state, dict):
        problems.append(f"does not hold a {DCP}.metadata.Metadata object")
        return tensors, others, items
    entries = state.get("state_dict_metadata")
    if not isinstance(entries, dict):
        problems.append("Metadata has no state_dict_metadata dict")
        entries = {}
    for fqn, entry in entries.items():
        meta = _state(entry, "TensorStorageMetadata")
        if not isinstance(fqn, str):
            problems.append(f"state_dict_metadata key {fqn!r} is not a string")
        elif isinstance(entry, Instance) and entry.cls.endswith(".BytesStorageMetadata"):
            others.append(fqn)
        elif not isinstance(meta, dict) or _ints(meta.get("size")) is None or not isinstance(meta.get("chunks"), list):
            problems.append(f"{fqn}: entry is neither tensor (size, chunks) nor bytes storage metadata")
        else:
            chunks = [(_ints(s.get("offsets")), _ints(s.get("sizes")))
                      for s in (_state(c, "ChunkStorageMetadata") for c in meta["chunks"]) if isinstance(s, dict)]
            if len(chunks) != len(meta["chunks"]) or any(o is None or z is None for o, z in chunks):
                problems.append(f"{fqn}: a chunk is not (offsets, sizes)")
            tensors[fqn] = _TensorMeta(_dtype(meta.get("properties")), meta["size"],
                                       [(o, z) for o, z in chunks if o is not None and z is not None])
    storage = state.get("storage_data")
    if not isinstance(storage, dict):
        problems.append("Metadata has no storage_data dict of file locations (not a filesystem checkpoint?)")
        return tensors, others, items
    for key, value in storage.items():
        index, info = _state(key, "MetadataIndex"), _state(value, "_StorageInfo")
        if not isinstance(index, dict) or not isinstance(info, dict) or not isinstance(index.get("fqn"), str):
            problems.append("a storage_data entry is not MetadataIndex → _StorageInfo")
            continue
        path, start, length = info.get("relative_path"), info.get("offset"), info.get("length")
        if not isinstance(path, str) or not isinstance(start, int) or not isinstance(length, int) or min(
                start, length) < 0:
            problems.append(f"{index['fqn']}: storage entry has no relative_path, offset and length")
            continue
        offsets = index.get("offset")
        items.append(_Item(index["fqn"], _ints(offsets) if offsets is not None else None, path, start, length,
                           bool(info.get("transform_descriptors"))))
    return tensors, others, items


def _chunk_problems(fqn: str, meta: _TensorMeta) -> list[str]:
    found: list[str] = []
    volume = 0
    for offsets, sizes in meta.chunks:
        if len(offsets) != len(meta.size) or len(sizes) != len(meta.size):
            found.append(f"{fqn}: chunk at {list(offsets)} has {len(sizes)} dims, the tensor {len(meta.size)}")
            return found
        if any(o + s > n for o, s, n in zip(offsets, sizes, meta.size, strict=True)):
            found.append(f"{fqn}: chunk at {list(offsets)} size {list(sizes)} lies outside shape {list(meta.size)}")
        volume += math.prod(sizes)
    numel = math.prod(meta.size)
    if volume != numel:
        found.append(f"{fqn}: chunks hold {volume} elements, shape {list(meta.size)} has {numel}")
    chunks = sorted(meta.chunks)
    for i, (oa, sa) in enumerate(chunks):
        for ob, sb in chunks[i + 1:] if len(chunks) <= MAX_PAIRWISE else chunks[i + 1:i + 2]:
            empty = 0 in sa or 0 in sb
            if not empty and all(a < b + m and b < a + n for a, n, b, m in zip(oa, sa, ob, sb, strict=True)):
                found.append(f"{fqn}: chunks at {list(oa)} and {list(ob)} overlap")
                return found
    return found


class _Window(io.RawIOBase):
    """A read-only view of bytes [start, start + length) of a file, for zipfile to read one item."""

    def __init__(self, handle: BinaryIO, start: int, length: int) -> None:
        super().__init__()
        self._handle, self._start, self._length, self._pos = handle, start, length, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._length}.get(whence, 0)
        self._pos = max(0, base + pos)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        count = max(0, min(len(view), self._length - self._pos))
        self._handle.seek(self._start + self._pos)
        data = self._handle.read(count)
        view[:len(data)] = data
        self._pos += len(data)
        return len(data)


def _check_item(handle: BinaryIO, item: _Item, rel: str, label: str) -> tuple[list[str], PickleScan | None]:
    """One item's bytes: a torch.save archive (every member stored, CRC-32 right) and its data.pkl walked."""
    import zipfile
    where = f"{rel}: item {label}"
    try:
        with zipfile.ZipFile(_Window(handle, item.start, item.length)) as archive:
            infos = archive.infolist()
            if any(i.compress_type != zipfile.ZIP_STORED for i in infos):
                return [f"{where}: a member is compressed; torch.save stores every member"], None
            bad = archive.testzip()
            if bad is not None:
                return [f"{where}: member {bad} fails its CRC-32 check: its bytes were changed"], None
            pickles = [i for i in infos if _DATA_PKL.fullmatch(i.filename)]
            if not pickles:
                return [f"{where}: holds no <archive>/data.pkl: not a torch.save archive"], None
            if pickles[0].file_size > ITEM_PICKLE_LIMIT:
                return [f"{where}: data.pkl is over {ITEM_PICKLE_LIMIT} bytes: not walked"], None
            data = archive.read(pickles[0])
    except Exception as exc:  # zipfile raises BadZipFile, EOFError, struct.error, ValueError... on bad bytes
        return [f"{where}: is not an intact torch.save archive ({exc})"], None
    scan = walk_objects(data, f"{rel}@{item.start}:{pickles[0].filename}")
    return [f"{where}: {p}" for p in scan.problems], scan


def _join(directory: str, name: str) -> str:
    return name if directory in ("", ".") else f"{directory}/{name}"


def inspect_dcp(folder: Folder, directory: str, step: int | None = None) -> Checkpoint:
    """Structure and integrity of one DCP checkpoint directory, from `.metadata` and the `.distcp` bytes."""
    ckpt = Checkpoint(directory=directory, format=DcpSource.info.id, step=step)
    meta_rel = _join(directory, METADATA)
    here = [f for f in (folder.files if directory in ("", ".") else folder.under(directory))
            if f.rpartition("/")[0] == ("" if directory == "." else directory)]
    distcp = sorted(f for f in here if f.endswith(".distcp"))
    if meta_rel not in folder.files:
        ckpt.problems.append(f"{meta_rel}: missing: {len(distcp)} .distcp file(s) but no metadata, so a DCP load "
                             "cannot find any tensor")
        ckpt.summary = "DCP checkpoint without .metadata"
        return ckpt
    record = DcpMetadataFile(path=meta_rel, size=folder.size(meta_rel))
    ckpt.files.append(record)
    try:
        data, cut = folder.read(meta_rel, METADATA_LIMIT)
    except EvidenceUnreadable as exc:
        ckpt.problems.append(f"{meta_rel}: {exc}")
        return ckpt
    scan = walk_objects(data, meta_rel)
    ckpt.pickle_globals.extend(scan.globals)
    record.problems.extend(scan.problems + ([f"over {METADATA_LIMIT} bytes: read only that far"] if cut else []))
    tensors, record.non_tensors, items = _layout(scan.root, record.problems) if not scan.problems else ({}, [], [])
    ckpt.problems.extend(f"{meta_rel}: {p}" for p in record.problems)
    for fqn, meta in tensors.items():
        target = record.optimizer_tensors if fqn.split(".", 1)[0] in OPTIMIZER_KEYS else record.tensors
        target[fqn] = (meta.dtype, meta.size)
        ckpt.problems.extend(f"{meta_rel}: {p}" for p in _chunk_problems(fqn, meta))
    _check_backing(ckpt, meta_rel, tensors, record.non_tensors, items)
    checked, extra = _check_files(folder, ckpt, directory, tensors, items)
    unreferenced = [f for f in distcp if f.rpartition("/")[2] not in {i.file for i in items}]
    unsafe = unsafe_globals(ckpt.pickle_globals)
    optimizer = f", {len(record.optimizer_tensors)} optimizer-state tensors" if record.optimizer_tensors else ""
    ckpt.summary = (f"DCP checkpoint: {len(record.tensors)} model tensors, {record.parameters:,} parameters"
                    f"{optimizer}, {len(record.non_tensors)} non-tensor entries; {len(items)} storage items in "
                    f"{len({i.file for i in items})} .distcp file(s) cover them exactly, {checked} CRC-verified "
                    f"torch.save archives{extra}"
                    + (f"; {len(unreferenced)} .distcp file(s) no item names: {', '.join(unreferenced[:3])}"
                       if unreferenced else "")
                    + (f"; {len({g.qualified for g in unsafe})} pickle globals off the allowlist" if unsafe
                       else "; pickle globals allowlisted"))
    return ckpt


def _check_backing(ckpt: Checkpoint, meta_rel: str, tensors: dict[str, _TensorMeta], others: list[str],
                   items: list[_Item]) -> None:
    keys = {(i.fqn, i.offsets) for i in items}
    for fqn, meta in tensors.items():
        unbacked = [o for o, _ in meta.chunks if (fqn, o) not in keys]
        if unbacked:
            ckpt.problems.append(f"{meta_rel}: {fqn}: chunk at {list(unbacked[0])} has no storage item "
                                 f"({len(unbacked)} of {len(meta.chunks)} chunks unbacked)")
    for fqn in others:
        if (fqn, None) not in keys:
            ckpt.problems.append(f"{meta_rel}: {fqn}: non-tensor entry has no storage item")
    known = set(tensors) | set(others)
    stray = sorted({i.fqn for i in items} - known)
    if stray:
        ckpt.problems.append(f"{meta_rel}: storage items for {', '.join(stray[:3])}, which state_dict_metadata "
                             "does not list")


def _check_files(folder: Folder, ckpt: Checkpoint, directory: str, tensors: dict[str, _TensorMeta],
                 items: list[_Item]) -> tuple[int, str]:
    """Every named file exists, its items lie inside it and cover it exactly, each item an intact archive whose
    tensor matches its chunk. Returns the number of archives verified and a note on transformed items."""
    by_file: dict[str, list[_Item]] = {}
    for item in items:
        by_file.setdefault(item.file, []).append(item)
    checked = transformed = 0
    seen: set[str] = {g.qualified for g in ckpt.pickle_globals}
    for name, group in sorted(by_file.items()):
        rel = _join(directory, name)
        if "/" in name or name in ("", ".", "..") or rel not in folder.files:
            ckpt.problems.append(f"{rel}: missing: .metadata places {len(group)} storage item(s) in it")
            continue
        size = folder.size(rel)
        group.sort(key=lambda i: (i.start, i.length))
        cursor = 0
        try:
            with folder.open(rel) as handle:
                for item in group:
                    label = f"{item.fqn}" + (f" chunk {list(item.offsets)}" if item.offsets is not None else "")
                    end = item.start + item.length
                    if end > size:
                        ckpt.problems.append(f"{rel}: item {label} spans bytes {item.start}..{end} but the file "
                                             f"has {size} (truncated)")
                    elif item.start != cursor:
                        what = "gap of" if item.start > cursor else "overlap of"
                        ckpt.problems.append(f"{rel}: {what} {abs(item.start - cursor)} bytes before item {label} "
                                             f"at byte {item.start} (torch writes items back to back)")
                    cursor = max(cursor, end)
                    if end > size:
                        continue
                    if item.transformed:
                        transformed += 1
                        continue
                    found, scan = _check_item(handle, item, rel, label)
                    ckpt.problems.extend(found)
                    if scan is None:
                        continue
                    checked += 1
                    for g in scan.globals:
                        if g.qualified not in seen:
                            seen.add(g.qualified)
                            ckpt.pickle_globals.append(PickleGlobal(g.path, g.module, g.name, g.offset))
                    ckpt.problems.extend(_match(rel, label, item, tensors, scan.root))
        except EvidenceUnreadable as exc:
            ckpt.problems.append(f"{rel}: {exc}")
            continue
        if cursor < size:
            ckpt.problems.append(f"{rel}: its last {size - cursor} bytes belong to no storage item")
    return checked, f"; {transformed} transformed items not opened" if transformed else ""


def _match(rel: str, label: str, item: _Item, tensors: dict[str, _TensorMeta], root: Any) -> list[str]:
    meta = tensors.get(item.fqn)
    if item.offsets is None or meta is None:
        return []
    sizes = next((z for o, z in meta.chunks if o == item.offsets), None)
    if not isinstance(root, Tensor):
        return [f"{rel}: item {label} does not hold a tensor"]
    if sizes is not None and root.shape != sizes:
        return [f"{rel}: item {label} holds shape {list(root.shape)}, the chunk is {list(sizes)}"]
    if meta.dtype != "?" and root.dtype != meta.dtype:
        return [f"{rel}: item {label} holds {root.dtype}, .metadata states {meta.dtype}"]
    return []


def _step_and_final(directory: str) -> tuple[int | None, bool]:
    parts = [p for p in directory.split("/") if p not in ("", ".")]
    if parts and _OPTIMIZER_DIR.fullmatch(parts[-1]):
        return None, False
    step = next((int(m.group(1)) for p in reversed(parts) if (m := _STEP.search(p))), None)
    return step, any(p in _FINAL_DIRS for p in parts)


@register
class DcpSource(CheckpointSource):
    """torch.distributed.checkpoint folders (`.metadata` + `.distcp`)."""

    info = FormatInfo(
        id="dcp", kind="checkpoint", title="torch.distributed.checkpoint (DCP, FSDP) folder",
        looks_for=(METADATA, "*.distcp"),
        reads="`.metadata`'s pickle opcodes, walked without unpickling, for every entry's fqn, dtype, global shape "
              "and chunks and every storage item's file, offset and length; then each item's torch.save archive "
              "inside its .distcp file (CRC-32 of every member, data.pkl walked)",
        proves="every .distcp file named exists, the items lie inside their files and cover them exactly, every "
               "chunk is backed by an item holding a tensor of its shape and dtype, chunks tile each tensor; the "
               "parameter count (optimizer state apart) and every global a load would import",
    )

    def find(self, folder: Folder) -> list[Candidate]:
        """Every directory holding a DCP `.metadata` or `.distcp` files."""
        dirs: set[str] = set()
        for rel in folder.files:
            parent, _, name = rel.rpartition("/")
            if name.endswith(".distcp") or (name == METADATA and folder.head(rel, 4096)[:1] == b"\x80"
                                            and DCP.encode() in folder.head(rel, 4096)):
                dirs.add(parent or ".")
        found = []
        for directory in sorted(dirs):
            step, final = _step_and_final(directory)
            found.append(Candidate(directory, self.info.id, step=step, final=final))
        return found

    def inspect(self, folder: Folder, candidate: Candidate) -> Checkpoint:
        """Structure and integrity of one DCP directory."""
        return inspect_dcp(folder, candidate.location, candidate.step)
