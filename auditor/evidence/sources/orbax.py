"""Orbax checkpoints (orbax.checkpoint StandardCheckpointer, PyTreeCheckpointer, CheckpointManager; Flax's
checkpoints module uses them) and Flax msgpack files, read from their bytes without jax, orbax, tensorstore or
msgpack.

What orbax-checkpoint 0.12.8 writes for a save into `<dir>` (a CheckpointManager makes `<dir>` = `<root>/<step>/`,
one subfolder per item, `default/` for a single one; a bare checkpointer writes the item into `<dir>` itself):
`_CHECKPOINT_METADATA` (JSON: item_handlers, a class path or {item: class path}; timestamps), and per pytree item
`_METADATA` (JSON tree_metadata: {"('params', 'w')": {key_metadata, value_metadata: {value_type, write_shape for
jax.Array only}}}, use_ocdbt, use_zarr3 — no dtypes, and no shapes for numpy leaves), `_sharding`,
`array_metadatas/process_N`, `_strings.json` for string leaves, then the arrays in a key-value store: by default
OCDBT (`manifest.ocdbt` and `d/<id>` holding the merged B+tree, `ocdbt.process_N/` holding each process's nodes
and out-of-line values), else plain files; either way one zarr array per leaf, named by its tree path joined with
'.': `<name>/.zarray` (zarr v2, the default; `<name>/zarr.json` for zarr3) with its dtype, shape and chunks, and
chunk keys `<name>/0.0` (zarr3: `<name>/c/0/0`). Dtypes and numpy shapes are only in that zarr metadata, which in
OCDBT sits zstd-compressed inside the B+tree: auditor.evidence.ocdbt and auditor.evidence.zstd read it.

A save in progress lives in `<dir>.orbax-checkpoint-tmp-<n>/` until Orbax renames it. Orbax 0.12.8 keeps no record
of the latest step (the manager lists the step folders), so no candidate is marked final. Flax's older
`flax.training.checkpoints` and `flax.serialization.to_bytes` write one msgpack map (`checkpoint_<step>`,
`flax_model.msgpack`) whose arrays are ext type 1 (scalars 3) holding (shape, dtype name, raw bytes)."""

from __future__ import annotations

import itertools
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from auditor.evidence.checkpoint import Checkpoint
from auditor.evidence.jsonload import load_json
from auditor.evidence.ocdbt import MANIFEST, ValueRef, read_database
from auditor.evidence.opener import EvidenceUnreadable, Folder
from auditor.evidence.sources.interface import Candidate, CheckpointSource, FormatInfo
from auditor.evidence.sources.registry import register
from auditor.evidence.zstd import ZstdError, frame_extent

CHECKPOINT_METADATA, TREE_METADATA = "_CHECKPOINT_METADATA", "_METADATA"
JSON_LIMIT = 64 << 20
ZARR_META_LIMIT = 1 << 20
MAX_CHUNKS = 200_000  # chunk keys checked per array (Orbax writes one chunk per shard: a few per array)
ARRAY_TYPES = ("jax.Array", "np.ndarray", "scalar")  # value_type of leaves stored as zarr arrays
TMP = ".orbax-checkpoint-tmp"
AUX_JSON = ("_sharding", "_strings.json")
PYTREE_HANDLERS = ("PyTreeCheckpointHandler", "StandardCheckpointHandler")
# dtypes numpy names without a bit width, with their bytes per element in zarr chunks and flax bytes
_ODD_SIZES = {"bool": 1, "bfloat16": 2, "int4": 1, "uint4": 1, "int2": 1, "uint2": 1}
_STEP = re.compile(r"(?:^|[_-])(\d+)$")
_FLAX_NAME = re.compile(r"(?:^|/)(?:checkpoint_\d+|[^/]*\.msgpack)$")
_FLAX_ARRAY_EXT = re.compile(rb"\xc7.[\x01\x03]|\xc8..[\x01\x03]|\xc9....[\x01\x03]", re.S)


@dataclass
class OrbaxItem:
    """One checkpoint item (a WeightFile): its folder (or the msgpack file), its handler and storage layout, the
    arrays {tree path: (dtype, shape)} and what is wrong ('path: what')."""

    path: str
    size: int
    handler: str = ""
    layout: str = ""  # "ocdbt", "zarr" (plain files), "msgpack", or "" for an item that is not a pytree
    tensors: dict[str, tuple[str, tuple[int, ...]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    chunks: int = 0
    nodes: int = 0

    @property
    def parameters(self) -> int:
        """Stored array elements (the whole saved tree: optimizer state and scalars included)."""
        return sum(math.prod(shape) for _, shape in self.tensors.values())


@register
class OrbaxSource(CheckpointSource):
    """Orbax checkpoint folders and Flax msgpack checkpoints."""

    info = FormatInfo(
        id="orbax", kind="checkpoint", title="Orbax / Flax checkpoint (JAX)",
        looks_for=(CHECKPOINT_METADATA, TREE_METADATA, MANIFEST, ".zarray", "zarr.json", "checkpoint_*",
                   "*.msgpack"),
        reads="_CHECKPOINT_METADATA and each item's _METADATA (JSON); the OCDBT manifest and every B+tree node of "
              "its latest version (CRC-32C checked, zstd-decompressed in pure Python), or the plain zarr files; each "
              "array's zarr metadata and the frame and block headers of each chunk; a Flax msgpack file, walked "
              "from its bytes",
        proves="the metadata parses, every array the tree names is stored with its dtype and shape (hence the "
               "parameter count, optimizer state included), and every chunk its shape implies lies inside its data "
               "file as one complete zstd frame of the chunk's size, so deleted, truncated or corrupt files show; "
               "chunk contents are not decompressed or checksummed (OCDBT keeps no checksum of values), zarr3 "
               "shards are only checked to exist, per-process OCDBT manifests and older versions are not read; for "
               "Flax msgpack, that every array's bytes match its dtype and shape",
    )

    def find(self, folder: Folder) -> list[Candidate]:
        present = set(folder.files)
        dirs: set[str] = set()
        for rel in folder.files:
            parent, _, name = rel.rpartition("/")
            if name == CHECKPOINT_METADATA:
                dirs.add(parent)
            elif name == TREE_METADATA and b'"tree_metadata"' in folder.head(rel):
                upper = parent.rpartition("/")[0] if "/" in parent else ""
                if _join(parent, CHECKPOINT_METADATA) not in present and not (
                        parent and _join(upper, CHECKPOINT_METADATA) in present):
                    dirs.add(parent)
        found = [Candidate(d, self.info.id, step=_step(d)) for d in sorted(dirs)]
        for rel in folder.files:
            if _FLAX_NAME.search(rel) and not any(not d or rel.startswith(d + "/") for d in dirs):
                head = folder.head(rel, 4096)
                # a msgpack map (fixmap, map16, map32) holding an ext of type 1 or 3: Flax's ndarray encoding
                if head and (0x80 <= head[0] <= 0x8F or head[0] in (0xDE, 0xDF)) and _FLAX_ARRAY_EXT.search(head):
                    found.append(Candidate(rel, self.info.id, step=_step(rel)))
        return found

    def inspect(self, folder: Folder, candidate: Candidate) -> Checkpoint:
        if candidate.location in set(folder.files):
            return _inspect_msgpack(folder, candidate)
        location = candidate.location
        ckpt = Checkpoint(directory=location, format="orbax", step=candidate.step)
        present = set(folder.files)
        if TMP in location:
            ckpt.problems.append(f"{location}: an unfinished save (Orbax renames the {TMP} folder once the save "
                                 "commits)")
        for item_dir, handler in _items(folder, location, present, ckpt.problems).items():
            item = _read_item(folder, item_dir, handler, present)
            ckpt.files.append(item)
            ckpt.problems.extend(item.problems)
        ckpt.summary = _describe(ckpt)
        return ckpt


def _join(directory: str, name: str) -> str:
    return f"{directory}/{name}" if directory else name


def _below(folder: Folder, directory: str) -> list[str]:
    return folder.under(directory) if directory else list(folder.files)


def _step(location: str) -> int | None:
    base = location.rstrip("/").rsplit("/", 1)[-1].split(TMP, 1)[0]
    match = _STEP.search(base)
    return int(match.group(1)) if match else None


def _json(folder: Folder, rel: str, problems: list[str]) -> Any:
    """A JSON file's value; None with a problem when it cannot be read or parsed."""
    try:
        data, cut = folder.read(rel, JSON_LIMIT)
    except EvidenceUnreadable as exc:
        problems.append(str(exc))
        return None
    if cut:
        problems.append(f"{rel}: longer than {JSON_LIMIT} bytes; not read")
        return None
    try:
        return load_json(data)
    except (ValueError, RecursionError):
        problems.append(f"{rel}: not valid JSON (corrupt or truncated)")
        return None


def _items(folder: Folder, location: str, present: set[str], problems: list[str]) -> dict[str, str]:
    """Item folder → handler class path, from _CHECKPOINT_METADATA, else from where _METADATA files are."""
    meta = _join(location, CHECKPOINT_METADATA)
    if meta in present:
        data = _json(folder, meta, problems)
        handlers = data.get("item_handlers") if isinstance(data, dict) else None
        if isinstance(handlers, str):
            return {location: handlers}
        if isinstance(handlers, dict) and handlers:
            items = {}
            for name, handler in handlers.items():
                if not name or "/" in name or name in (".", ".."):
                    problems.append(f"{meta}: item name {name!r} is not a folder name")
                    continue
                items[_join(location, name)] = handler if isinstance(handler, str) else ""
            return items
    # older Orbax wrote no item_handlers (or no _CHECKPOINT_METADATA): the items are where the _METADATA files are
    if _join(location, TREE_METADATA) in present:
        return {location: ""}
    depth = location.count("/") + 1 if location else 0
    items = {rel.rsplit("/", 1)[0]: "" for rel in _below(folder, location)
             if rel.count("/") == depth + 1 and rel.endswith("/" + TREE_METADATA)}
    if not items:
        problems.append(f"{location or '.'}/: an Orbax checkpoint folder with no item (no {TREE_METADATA})")
    return items


@dataclass(frozen=True)
class _Array:
    """One zarr array as its metadata describes it, and how its chunks are keyed and encoded."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    itemsize: int | None
    key_prefix: str  # the key of chunk (i, j) is key_prefix + separator.join(i, j), or scalar_key for 0-d arrays
    separator: str
    scalar_key: str
    codec: str  # "zstd" (one zstd frame per chunk), "raw" (chunk bytes as they are), or "" (not checked)

    def chunk_keys(self) -> Iterator[str]:
        """Every chunk key the shape implies (none for an empty array)."""
        if not self.shape:
            yield self.scalar_key
            return
        grid = [-(-s // c) for s, c in zip(self.shape, self.chunks, strict=True)]
        for index in itertools.islice(itertools.product(*map(range, grid)), MAX_CHUNKS):
            yield self.key_prefix + self.separator.join(map(str, index))

    @property
    def chunk_bytes(self) -> int | None:
        return math.prod(self.chunks) * self.itemsize if self.itemsize else None


def _itemsize(dtype: str) -> int | None:
    match = re.fullmatch(r"(?:float|int|uint|complex)(\d+)", dtype)
    if match and int(match.group(1)) % 8 == 0:
        return int(match.group(1)) // 8
    if dtype.startswith("float8_"):
        return 1
    return _ODD_SIZES.get(dtype)


def _dims(value: Any, positive: bool = False) -> tuple[int, ...] | None:
    if not isinstance(value, list) or len(value) > 64:
        return None
    if not all(isinstance(d, int) and not isinstance(d, bool) and (d > 0 if positive else d >= 0) for d in value):
        return None
    return tuple(value)


def _zarr_array(name: str, raw: bytes, zarr3: bool) -> _Array | str:
    """An array from its `.zarray` / `zarr.json` bytes, or what is wrong with them."""
    what = f"{name}/{'zarr.json' if zarr3 else '.zarray'}"
    try:
        meta = load_json(raw)
    except (ValueError, RecursionError):
        return f"{what} is not valid JSON"
    if not isinstance(meta, dict):
        return f"{what} is not a JSON object"
    if zarr3:
        grid = meta.get("chunk_grid")
        config = grid.get("configuration") if isinstance(grid, dict) else None
        chunks = _dims(config.get("chunk_shape"), True) if isinstance(config, dict) else None
        dtype = meta.get("data_type")
        encoding = meta.get("chunk_key_encoding")
        v2 = isinstance(encoding, dict) and encoding.get("name") == "v2"
        enc_config = encoding.get("configuration") if isinstance(encoding, dict) else None
        separator = enc_config.get("separator") if isinstance(enc_config, dict) else None
        separator = separator if isinstance(separator, str) else ("." if v2 else "/")
        prefix, scalar = (f"{name}/", f"{name}/0") if v2 else (f"{name}/c{separator}", f"{name}/c")
        codec = ""  # zarr3 chunks are sharded (an index inside each value): existence only
    else:
        chunks = _dims(meta.get("chunks"), True)
        typestr = meta.get("dtype")
        dtype = _numpy_name(typestr) if isinstance(typestr, str) else None
        separator = meta.get("dimension_separator") or "."
        prefix, scalar = f"{name}/", f"{name}/0"
        compressor = meta.get("compressor")
        filters = meta.get("filters")
        codec = "" if filters else ("raw" if compressor is None else "zstd" if isinstance(compressor, dict)
                                    and compressor.get("id") == "zstd" else "")
    shape = _dims(meta.get("shape"))
    if shape is None or chunks is None or len(chunks) != len(shape) or not isinstance(dtype, str):
        return f"{what} lacks a valid shape, chunks and dtype"
    if not isinstance(separator, str) or separator not in (".", "/"):
        return f"{what} has an unknown chunk key separator {separator!r}"
    return _Array(name, dtype, shape, chunks, _itemsize(dtype), prefix, separator, scalar, codec)


def _numpy_name(typestr: str) -> str:
    """numpy's name for a zarr v2 dtype ('<f4' → 'float32'; 'bfloat16' stays)."""
    match = re.fullmatch(r"[<>|=]?([fiucb])(\d+)", typestr)
    if not match:
        return typestr
    kind, size = match.group(1), int(match.group(2))
    return "bool" if kind == "b" else {"f": "float", "i": "int", "u": "uint", "c": "complex"}[kind] + str(8 * size)


def _param_name(key_metadata: Any) -> str | None:
    if not isinstance(key_metadata, list) or not key_metadata:
        return None
    keys = [k.get("key") for k in key_metadata if isinstance(k, dict)]
    if len(keys) != len(key_metadata) or not all(isinstance(k, (str, int)) for k in keys):
        return None
    return ".".join(str(k) for k in keys)


def _expected(meta: Any, rel: str, problems: list[str]) -> tuple[list[str], list[str]]:
    """The array leaves and string leaves the tree metadata names (param names, in its order)."""
    tree = meta.get("tree_metadata") if isinstance(meta, dict) else None
    if not isinstance(tree, dict):
        if meta is not None:
            problems.append(f"{rel}: has no tree_metadata object")
        return [], []
    arrays, strings = [], []
    for path, leaf in tree.items():
        value = leaf.get("value_metadata") if isinstance(leaf, dict) else None
        name = _param_name(leaf.get("key_metadata")) if isinstance(leaf, dict) else None
        if name is None or not isinstance(value, dict):
            problems.append(f"{rel}: leaf {path!r} lacks key_metadata or value_metadata")
            continue
        if value.get("skip_deserialize") is True:
            continue
        if value.get("value_type") in ARRAY_TYPES:
            arrays.append(name)
        elif value.get("value_type") == "string":
            strings.append(name)
    return arrays, strings


def _file_store(sizes: dict[str, int], item_dir: str) -> dict[str, ValueRef]:
    """The keys of a plain-files (non-OCDBT) item: each file below it, relative to it."""
    store = {}
    for rel, size in sizes.items():
        key = rel[len(item_dir) + 1:] if item_dir else rel
        if "/" in key and not key.startswith(("ocdbt.process_", "d/", "array_metadatas/")):
            store[key] = ValueRef(None, rel, 0, size)
    return store


def _value(folder: Folder, ref: ValueRef, limit: int) -> bytes | None:
    if ref.inline is not None:
        return ref.inline
    if ref.length > limit:
        return None
    try:
        with folder.open(ref.file) as handle:
            handle.seek(ref.offset)
            data = handle.read(ref.length)
    except (EvidenceUnreadable, OSError, OverflowError):
        return None
    return data if len(data) == ref.length else None


def _read_item(folder: Folder, item_dir: str, handler: str, present: set[str]) -> OrbaxItem:
    sizes = {rel: folder.size(rel) for rel in _below(folder, item_dir)}
    item = OrbaxItem(path=item_dir, size=sum(sizes.values()), handler=handler)
    if not sizes:
        item.problems.append(f"{item_dir}/: missing (an item the checkpoint metadata names)")
        return item
    if handler and not handler.endswith(PYTREE_HANDLERS):
        if handler.endswith("JsonCheckpointHandler"):
            for rel in sizes:
                if not rel.endswith("/commit_success.txt"):
                    _json(folder, rel, item.problems)
        return item
    meta_rel = _join(item_dir, TREE_METADATA)
    meta = _json(folder, meta_rel, item.problems)
    arrays, strings = _expected(meta, meta_rel, item.problems)
    aux = {name: _json(folder, _join(item_dir, name), item.problems) for name in AUX_JSON
           if _join(item_dir, name) in present}
    for rel in folder.under(_join(item_dir, "array_metadatas")):
        _json(folder, rel, item.problems)
    saved = aux.get("_strings.json")
    lost = [name for name in strings if not (isinstance(saved, dict) and name in saved)]
    if lost:
        item.problems.append(f"{_join(item_dir, '_strings.json')}: lacks the string leaves {', '.join(lost[:5])}")
    flags = meta if isinstance(meta, dict) else {}
    manifest = _join(item_dir, MANIFEST)
    if flags.get("use_ocdbt") is True or (flags.get("use_ocdbt") is None and manifest in present):
        item.layout = "ocdbt"
        if manifest not in present:
            item.problems.append(f"{manifest}: missing (the tree metadata says the arrays are in OCDBT)")
            store: dict[str, ValueRef] = {}
        else:
            db = read_database(folder, item_dir)
            item.nodes, store = db.nodes, db.values
            item.problems.extend(db.problems)
    else:
        item.layout, store = "zarr", _file_store(sizes, item_dir)
    # Orbax writes every chunk unless told not to store chunks equal to the fill value
    _check_arrays(folder, item, store, arrays, flags.get("store_array_data_equal_to_fill_value") is not False)
    return item


def _check_arrays(folder: Folder, item: OrbaxItem, store: dict[str, ValueRef], expected: list[str],
                  every_chunk: bool) -> None:
    """The zarr arrays in the store against the tree metadata, then every chunk of each."""
    where = f"{item.path}/{MANIFEST}" if item.layout == "ocdbt" else f"{item.path or '.'}/"
    found: dict[str, _Array] = {}
    for key, ref in store.items():
        name, _, last = key.rpartition("/")
        if last not in (".zarray", "zarr.json") or not name or "/" in name:
            continue
        raw = _value(folder, ref, ZARR_META_LIMIT)
        array = _zarr_array(name, raw, last == "zarr.json") if raw is not None else f"{key} cannot be read"
        if isinstance(array, str):
            item.problems.append(f"{ref.file or where}: {array}")
        else:
            found[name] = array
            item.tensors[name] = (array.dtype, array.shape)
    lost = [name for name in expected if name not in found]
    if lost:
        more = f" and {len(lost) - 5} more" if len(lost) > 5 else ""
        item.problems.append(f"{item.path}/{TREE_METADATA}: names {len(lost)} array(s) that {where} does not hold: "
                             f"{', '.join(lost[:5])}{more}")
    chunks: list[tuple[_Array, str, ValueRef]] = []
    for array in found.values():
        missing: list[str] = []
        for key in array.chunk_keys():
            held = store.get(key)
            if held is None:
                missing.append(key)
            else:
                chunks.append((array, key, held))
        if missing and every_chunk:
            item.problems.append(f"{where}: array {array.name!r} lacks {len(missing)} of its chunks, first "
                                 f"{missing[0]}")
    item.chunks = len(chunks)
    _check_chunks(folder, item, chunks)


def _check_chunks(folder: Folder, item: OrbaxItem, chunks: list[tuple[_Array, str, ValueRef]]) -> None:
    """Each chunk's bytes: its data file exists, holds its range, and (zstd) the frame is whole and sized right."""
    present = set(folder.files)
    by_file: dict[str, list[tuple[_Array, str, ValueRef]]] = {}
    for chunk in chunks:
        by_file.setdefault(chunk[2].file, []).append(chunk)
    for rel, group in sorted(by_file.items()):
        names = sorted({array.name for array, _, _ in group})
        held = f"{len(group)} chunk(s) of {', '.join(names[:5])}" + (f" and {len(names) - 5} more arrays"
                                                                       if len(names) > 5 else "")
        if rel not in present:
            item.problems.append(f"{rel}: missing; it held {held}")
            continue
        inline = all(ref.inline is not None for _, _, ref in group)  # all kept in a B+tree node already read
        try:
            handle = None if inline else folder.open(rel)
        except EvidenceUnreadable as exc:
            item.problems.append(f"{exc}; it held {held}")
            continue
        try:
            size = 0 if handle is None else os.fstat(handle.fileno()).st_size
            bad = [f"{key} {why}" for array, key, ref in group if (why := _chunk_problem(array, ref, handle, size))]
        finally:
            if handle is not None:
                handle.close()
        if bad:
            item.problems.append(f"{rel}: {len(bad)} of the {len(group)} chunk(s) it holds damaged: "
                                 + "; ".join(bad[:3]))


def _chunk_problem(array: _Array, ref: ValueRef, handle: BinaryIO | None, size: int) -> str | None:
    if ref.inline is None and ref.offset + ref.length > size:
        return f"needs bytes {ref.offset}..{ref.offset + ref.length} but the file ends at {size} (truncated)"
    expected = array.chunk_bytes
    if array.codec == "raw":
        return None if expected is None or ref.length == expected else (
            f"holds {ref.length} bytes, an uncompressed chunk is {expected}")
    if array.codec != "zstd":
        return None if ref.length else "is empty"

    def read(offset: int, n: int) -> bytes:
        n = max(0, min(n, ref.length - offset))
        if ref.inline is not None:
            return ref.inline[offset:offset + n]
        assert handle is not None
        handle.seek(ref.offset + offset)
        return handle.read(n)

    try:
        extent = frame_extent(read, ref.length)
    except (ZstdError, OSError, OverflowError) as exc:
        return f"is not a whole zstd frame ({exc})"
    if extent.end != ref.length:
        return f"holds {ref.length} bytes but its zstd frame ends at {extent.end}"
    if expected is not None and extent.content_size is not None and extent.content_size != expected:
        return f"decompresses to {extent.content_size} bytes, the chunk needs {expected}"
    return None


def _describe(ckpt: Checkpoint) -> str:
    parts = []
    for item in ckpt.files:
        assert isinstance(item, OrbaxItem)
        name = item.path.rsplit("/", 1)[-1] if item.path != ckpt.directory else "the item"
        if not item.layout:
            parts.append(f"{name} ({item.handler.rsplit('.', 1)[-1] or 'non-pytree'} item, present)")
            continue
        how = f"OCDBT, {item.nodes} B+tree node(s) CRC-32C checked" if item.layout == "ocdbt" else "zarr files"
        parts.append(f"{name} ({how}): {len(item.tensors)} arrays, {item.chunks} chunks whole")
    return (f"Orbax checkpoint, {ckpt.parameters:,} stored elements; " + "; ".join(parts)
            + "; metadata parses, every array the tree names is stored with dtype and shape")


# -- Flax msgpack ---------------------------------------------------------------------------------------------

class _Truncated(ValueError):
    """The msgpack stream ends or breaks inside a value; the message says where."""


class _Unpacker:
    """Just enough msgpack to walk a Flax state dict from a file handle: maps, arrays, scalars and strings are
    decoded, bin and ext payloads are skipped over (ext 1 and 3, Flax's arrays, have their header decoded)."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self.handle, self.size, self.pos = handle, size, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > self.size:
            raise _Truncated(f"a value at byte {self.pos} needs {n} bytes, the file ends at {self.size}")
        data = self.handle.read(n)
        if len(data) < n:
            raise _Truncated(f"read stopped at byte {self.pos + len(data)}")
        self.pos += n
        return data

    def skip(self, n: int) -> None:
        if self.pos + n > self.size:
            raise _Truncated(f"a {n}-byte payload at byte {self.pos} runs past the end ({self.size} bytes)")
        self.pos += n
        self.handle.seek(self.pos)

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def value(self, depth: int = 0) -> Any:
        """The next value; bin payloads as their length, ext as (code, payload start, length)."""
        if depth > 64:
            raise _Truncated(f"nesting deeper than 64 at byte {self.pos}")
        b = self.take(1)[0]
        if b <= 0x7F or b >= 0xE0:
            return b if b <= 0x7F else b - 0x100
        if 0x80 <= b <= 0x8F or b in (0xDE, 0xDF):
            n = b & 0x0F if b <= 0x8F else self.uint(2 if b == 0xDE else 4)
            return {self._key(depth): self.value(depth + 1) for _ in range(n)}
        if 0x90 <= b <= 0x9F or b in (0xDC, 0xDD):
            n = b & 0x0F if b <= 0x9F else self.uint(2 if b == 0xDC else 4)
            return [self.value(depth + 1) for _ in range(n)]
        if 0xA0 <= b <= 0xBF or b in (0xD9, 0xDA, 0xDB):
            n = b & 0x1F if b <= 0xBF else self.uint({0xD9: 1, 0xDA: 2, 0xDB: 4}[b])
            return self.take(n).decode("utf-8", "replace") if n <= 1 << 16 else self.skip(n)
        fixed = {0xC0: None, 0xC2: False, 0xC3: True}
        if b in fixed:
            return fixed[b]
        if b in (0xC4, 0xC5, 0xC6):
            n = self.uint({0xC4: 1, 0xC5: 2, 0xC6: 4}[b])
            self.skip(n)
            return n
        if b in (0xC7, 0xC8, 0xC9) or 0xD4 <= b <= 0xD8:
            n = self.uint({0xC7: 1, 0xC8: 2, 0xC9: 4}[b]) if b <= 0xC9 else 1 << (b - 0xD4)
            code = self.take(1)[0]
            start = self.pos
            self.skip(n)
            return ("ext", code, start, n)
        sizes = {0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8, 0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8}
        if b in sizes:
            self.take(sizes[b])
            return 0
        raise _Truncated(f"byte {self.pos - 1} ({b:#04x}) is not a msgpack type")

    def _key(self, depth: int) -> str:
        key = self.value(depth + 1)
        return key if isinstance(key, str) else repr(key)


def _ndarray(handle: BinaryIO, start: int, length: int) -> tuple[str, tuple[int, ...], int, int]:
    """An ext 1/3 payload's (dtype name, shape, data bytes stated, payload bytes used)."""
    handle.seek(start)
    inner = _Unpacker(handle, start + length)
    inner.pos = start
    if inner.take(1) != b"\x93":
        raise _Truncated(f"array at byte {start} is not a (shape, dtype, bytes) triple")
    shape = inner.value()
    dtype = inner.value()
    marker = inner.take(1)[0]
    if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)
            and isinstance(dtype, str) and marker in (0xC4, 0xC5, 0xC6)):
        raise _Truncated(f"array at byte {start} has no valid shape, dtype name and bin data")
    data = inner.uint({0xC4: 1, 0xC5: 2, 0xC6: 4}[marker])
    return dtype, tuple(shape), data, inner.pos + data - start


def _inspect_msgpack(folder: Folder, candidate: Candidate) -> Checkpoint:
    rel = candidate.location
    ckpt = Checkpoint(directory=rel, format="flax_msgpack", step=candidate.step)
    item = OrbaxItem(path=rel, size=folder.size(rel), layout="msgpack")
    ckpt.files.append(item)
    try:
        with folder.open(rel) as handle:
            unpacker = _Unpacker(handle, item.size)
            tree = unpacker.value()
            if unpacker.pos != item.size:
                item.problems.append(f"{rel}: {item.size - unpacker.pos} bytes after the state dict")
            _flax_arrays(handle, tree, "", item)
    except _Truncated as exc:
        item.problems.append(f"{rel}: {exc} (truncated or not msgpack)")
    except (EvidenceUnreadable, OSError) as exc:
        item.problems.append(f"{rel}: cannot be read ({exc})")
    if not item.tensors and not item.problems:
        item.problems.append(f"{rel}: holds no arrays")
    ckpt.problems.extend(item.problems)
    ckpt.summary = (f"Flax msgpack state dict, {len(item.tensors)} arrays, {ckpt.parameters:,} elements; every "
                    "array's byte length matches its dtype and shape, the stream ends where the file does")
    return ckpt


def _flax_arrays(handle: BinaryIO, node: Any, path: str, item: OrbaxItem) -> None:
    if isinstance(node, dict) and node.get("__msgpack_chunked_array__") is True:
        _flax_chunked(handle, node, path, item)
    elif isinstance(node, dict):
        for key, child in node.items():
            _flax_arrays(handle, child, f"{path}.{key}" if path else key, item)
    elif isinstance(node, tuple) and node[0] == "ext" and node[1] in (1, 3):
        dtype, shape, stated, used = _ndarray(handle, node[2], node[3])
        itemsize = _itemsize(dtype)
        if used != node[3]:
            item.problems.append(f"{item.path}: array {path!r} payload is {node[3]} bytes, its parts {used}")
        elif itemsize is not None and stated != math.prod(shape) * itemsize:
            item.problems.append(f"{item.path}: array {path!r} {dtype}{list(shape)} needs "
                                 f"{math.prod(shape) * itemsize} bytes, holds {stated}")
        item.tensors[path] = (dtype, shape)


def _flax_chunked(handle: BinaryIO, node: dict[str, Any], path: str, item: OrbaxItem) -> None:
    """An array Flax split into flat chunks over 1 GiB: {'shape': {'0': d0, ...}, 'chunks': {'0': part, ...}}."""
    shape_map, chunk_map = node.get("shape"), node.get("chunks")
    dims = [shape_map.get(str(i)) for i in range(len(shape_map))] if isinstance(shape_map, dict) else []
    parts = [chunk_map.get(str(i)) for i in range(len(chunk_map))] if isinstance(chunk_map, dict) else []
    sub = OrbaxItem(path=item.path, size=0)
    for i, part in enumerate(parts):
        _flax_arrays(handle, part, f"{path}#{i}", sub)
    item.problems.extend(sub.problems)
    shape = _dims(dims)
    dtypes = {dtype for dtype, _ in sub.tensors.values()}
    if shape is None or len(dtypes) != 1 or len(sub.tensors) != len(parts):
        item.problems.append(f"{item.path}: chunked array {path!r} has no valid shape, or chunks of mixed dtypes")
    elif sum(math.prod(s) for _, s in sub.tensors.values()) != math.prod(shape):
        item.problems.append(f"{item.path}: chunked array {path!r}: its chunks do not hold shape {list(shape)}")
    else:
        item.tensors[path] = (dtypes.pop(), shape)
