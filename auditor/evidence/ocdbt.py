"""OCDBT (tensorstore's Optionally-Cooperative Distributed B+Tree, what Orbax writes by default) read from its files
with the standard library and auditor.evidence.zstd: the manifest, then the B+tree of its latest version down to
every leaf, giving each key's value (inline bytes, or a data file, offset and length). Every manifest and node is
checked for its magic, stated length, format version and CRC-32C before it is decompressed and parsed. Format:
tensorstore/kvstore/ocdbt/index.rst ("Storage format"); the manifest's config also holds a manifest-kind byte
after the uuid (config_codec.h). Older versions (version tree nodes) are not followed: only the latest version
is what a restore reads, and the manifest always holds it inline."""

from __future__ import annotations

from dataclasses import dataclass, field

from auditor.evidence.crc32c import crc32c  # the checksum OCDBT puts after every manifest and node
from auditor.evidence.opener import EvidenceUnreadable, Folder
from auditor.evidence.zstd import ZstdError, decompress

MANIFEST = "manifest.ocdbt"
MANIFEST_MAGIC, NODE_MAGIC = 0x0CDB3A2A, 0x0CDB20DE
MAX_MANIFEST = 16 << 20
MAX_NODE = 64 << 20  # an encoded node longer than this is not read (tensorstore's default cap is 100 MB decoded)
DECODE_BUDGET = 64 << 20  # decoded node bytes per database: pure-Python zstd reads ~1 MB/s
MAX_NODES = 100_000


class _Malformed(ValueError):
    """A manifest or node whose decoded body does not parse; the message says what."""


class _Reader:
    """Cursor over a decoded body: varints (LEB128), bytes, little-endian integers."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise _Malformed(f"ends at byte {len(self.data)}, {n} more bytes needed at {self.pos}")
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def byte(self) -> int:
        return self.take(1)[0]

    def varint(self) -> int:
        value = shift = 0
        while True:
            b = self.byte()
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise _Malformed(f"varint too long at byte {self.pos}")

    def varints(self, n: int) -> list[int]:
        return [self.varint() for _ in range(n)]

    def count(self, limit: int = 1 << 20) -> int:
        n = self.varint()
        if n > limit or n > len(self.data):
            raise _Malformed(f"count {n} exceeds the body ({len(self.data)} bytes)")
        return n


@dataclass(frozen=True)
class ValueRef:
    """Where one key's value is: `length` bytes at `offset` of data file `file` (folder-relative), or `inline` bytes
    kept in the leaf node (then `file` is the data file holding that node)."""

    inline: bytes | None
    file: str = ""
    offset: int = 0
    length: int = 0


@dataclass
class Database:
    """One OCDBT database as read: its keys and where their values are, the data files its nodes and values live in,
    and what is wrong. `complete` is False when some node could not be read (then keys below it are unknown)."""

    directory: str
    values: dict[str, ValueRef] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    nodes: int = 0
    node_files: set[str] = field(default_factory=set)
    complete: bool = True


@dataclass(frozen=True)
class _NodeRef:
    file: str  # folder-relative
    transitive: str  # the path prefix its data file table's entries are relative to (inside the database)
    offset: int
    length: int
    height: int
    prefix: bytes
    referrer: str


def _file_table(r: _Reader, transitive: str) -> list[tuple[str, str]]:
    """A data file table: (full path inside the database, the transitive path for nodes read from it)."""
    n = r.count()
    prefix_lengths = [0, *r.varints(n - 1)] if n else []
    suffix_lengths, base_lengths = r.varints(n), r.varints(n)
    files: list[tuple[str, str]] = []
    previous = b""
    for i in range(n):
        if prefix_lengths[i] > len(previous):
            raise _Malformed(f"data file {i}: prefix longer than the previous path")
        path = previous[:prefix_lengths[i]] + r.take(suffix_lengths[i])
        if base_lengths[i] > len(path):
            raise _Malformed(f"data file {i}: base path longer than the path")
        text = path.decode("utf-8", "replace")
        files.append((transitive + text, transitive + text[:base_lengths[i]]))
        previous = path
    return files


def _unframe(raw: bytes, magic: int, what: str, limit: int) -> bytes:
    """The decoded body of an encoded manifest or node: magic, length, version 0, compression, CRC-32C checked."""
    if len(raw) < 18 or int.from_bytes(raw[:4], "big") != magic:
        raise _Malformed(f"{what} does not start with the OCDBT magic {magic:#010x}")
    stated = int.from_bytes(raw[4:12], "little")
    if stated != len(raw):
        raise _Malformed(f"{what} states {stated} bytes but {len(raw)} are there")
    if crc32c(raw[:-4]) != int.from_bytes(raw[-4:], "little"):
        raise _Malformed(f"{what} fails its CRC-32C (corrupt)")
    r = _Reader(raw[12:-4])
    version, compression = r.varint(), r.varint()
    if version != 0 or compression not in (0, 1):
        raise _Malformed(f"{what} has format version {version}, compression {compression} (0 and 0/1 known)")
    body = raw[12 + r.pos:-4]
    try:
        return decompress(body, limit) if compression else body
    except ZstdError as exc:
        raise _Malformed(f"{what} does not decompress: {exc}") from None


def _keys(r: _Reader, n: int, interior: bool) -> tuple[list[bytes], list[int]]:
    prefix_lengths = [0, *r.varints(n - 1)]
    suffix_lengths = r.varints(n)
    common = r.varints(n) if interior else [0] * n
    keys: list[bytes] = []
    for i in range(n):
        previous = keys[-1] if keys else b""
        if prefix_lengths[i] > len(previous):
            raise _Malformed(f"key {i}: prefix longer than the previous key")
        keys.append(previous[:prefix_lengths[i]] + r.take(suffix_lengths[i]))
        if common[i] > len(keys[-1]):
            raise _Malformed(f"key {i}: subtree prefix longer than the key")
    return keys, common


class _Walk:
    """Reading one database's nodes: the bytes of a byte range, with sizes cached and problems worded once."""

    def __init__(self, folder: Folder, db: Database) -> None:
        self.folder, self.db = folder, db
        self.present = set(folder.files)
        self.budget = DECODE_BUDGET

    def read(self, rel: str, offset: int, length: int, what: str) -> bytes | None:
        if rel not in self.present:
            self.db.problems.append(f"{rel}: missing ({what})")
            return None
        try:
            with self.folder.open(rel) as handle:
                handle.seek(offset)
                raw = handle.read(length)
        except (EvidenceUnreadable, OSError, OverflowError) as exc:
            self.db.problems.append(f"{rel}: cannot be read at {offset} ({exc})")
            return None
        if len(raw) < length:
            self.db.problems.append(f"{rel}: {what} needs bytes {offset}..{offset + length} but the file ends at "
                                    f"{offset + len(raw)} (truncated)")
            return None
        return raw

    def node(self, ref: _NodeRef, stack: list[_NodeRef]) -> None:
        what = f"B+tree node at {ref.offset}+{ref.length}, referenced by {ref.referrer}"
        if ref.length > MAX_NODE or ref.length > self.budget:
            self.db.problems.append(f"{ref.file}: {what} is too large to read here ({ref.length} bytes)")
            return
        raw = self.read(ref.file, ref.offset, ref.length, what)
        if raw is None:
            return
        self.db.nodes += 1
        self.db.node_files.add(ref.file)
        body = _unframe(raw, NODE_MAGIC, what, self.budget)
        self.budget -= len(body)
        r = _Reader(body)
        height = r.byte()
        if height != ref.height:
            raise _Malformed(f"{what} has height {height}, its parent says {ref.height}")
        files = _file_table(r, ref.transitive)
        n = r.count()
        if n == 0:
            raise _Malformed(f"{what} has no entries")
        keys, common = _keys(r, n, interior=height > 0)

        def data_file() -> tuple[str, str]:
            index = r.varint()
            if index >= len(files):
                raise _Malformed(f"{what}: data file id {index} is outside its table of {len(files)}")
            return files[index]

        if height:
            targets = [data_file() for _ in range(n)]
            offsets, lengths = r.varints(n), r.varints(n)
            r.varints(3 * n)  # statistics: num_keys, num_tree_bytes, num_indirect_value_bytes
            for key, cut, (path, transitive), offset, length in zip(keys, common, targets, offsets, lengths,
                                                                    strict=True):
                stack.append(_NodeRef(_join(self.db.directory, path), transitive, offset, length, height - 1,
                                      ref.prefix + key[:cut], ref.file))
            return
        lengths = r.varints(n)
        kinds = list(r.take(n))
        if any(k > 1 for k in kinds):
            raise _Malformed(f"{what}: value kind other than inline (0) or out-of-line (1)")
        indirect = [i for i in range(n) if kinds[i]]
        holders = [data_file()[0] for _ in indirect]
        starts = r.varints(len(indirect))
        located = {i: (f, o) for i, f, o in zip(indirect, holders, starts, strict=True)}
        for i, key in enumerate(keys):
            name = (ref.prefix + key).decode("utf-8", "replace")
            if i in located:
                holder, start = located[i]
                self.db.values[name] = ValueRef(None, _join(self.db.directory, holder), start, lengths[i])
            else:
                self.db.values[name] = ValueRef(r.take(lengths[i]), ref.file, 0, lengths[i])


def read_database(folder: Folder, directory: str) -> Database:
    """Every key of the latest version of the OCDBT database in `directory` (folder-relative), with problems."""
    db = Database(directory)
    walk = _Walk(folder, db)
    rel = _join(directory, MANIFEST)
    try:
        raw, cut = folder.read(rel, MAX_MANIFEST)
    except EvidenceUnreadable as exc:
        db.problems.append(str(exc))
        db.complete = False
        return db
    try:
        if cut:
            raise _Malformed(f"longer than {MAX_MANIFEST} bytes; not read")
        root = _manifest(_Reader(_unframe(raw, MANIFEST_MAGIC, "manifest", MAX_MANIFEST)), rel, directory)
    except _Malformed as exc:
        db.problems.append(f"{rel}: {exc}")
        db.complete = False
        return db
    stack = [root] if root else []
    while stack and db.nodes < MAX_NODES and walk.budget > 0:
        ref = stack.pop()
        before = len(db.problems)
        try:
            walk.node(ref, stack)
        except _Malformed as exc:
            db.problems.append(f"{ref.file}: {exc}")
        if len(db.problems) > before:
            db.complete = False
    if stack:
        db.problems.append(f"{rel}: B+tree larger than {MAX_NODES} nodes or {DECODE_BUDGET} decoded bytes; the rest "
                           "was not read")
        db.complete = False
    return db


def _manifest(r: _Reader, rel: str, directory: str) -> _NodeRef | None:
    """The root node of the latest version the manifest names (None for an empty database)."""
    r.take(16)  # uuid
    if r.byte() != 0:
        raise _Malformed("is a numbered manifest (manifest_kind 1), which this reader does not follow")
    r.varint()  # max_inline_value_bytes
    r.varint()  # max_decoded_node_bytes
    r.byte()  # version_tree_arity_log2
    if r.varint() == 1:
        r.take(4)  # zstd level
    files = _file_table(r, "")
    n = r.count()
    if n == 0:
        raise _Malformed("names no version")
    generations, heights = r.varints(n), list(r.take(n))
    ids, offsets, lengths = r.varints(n), r.varints(n), r.varints(n)
    if generations != sorted(set(generations)) or any(i >= len(files) for i in ids):
        raise _Malformed("version table is inconsistent (generations out of order or unknown data file)")
    latest = n - 1
    if lengths[latest] == 0:
        return None  # a version with no keys has no root node
    path, transitive = files[ids[latest]]
    return _NodeRef(_join(directory, path), transitive, offsets[latest], lengths[latest],
                    heights[latest], b"", rel)


def _join(directory: str, path: str) -> str:
    return f"{directory}/{path}" if directory else path
