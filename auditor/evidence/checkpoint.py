"""Finding the final checkpoint of a run folder and checking its structure from headers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from auditor.evidence.digests import CHUNK
from auditor.evidence.jsonload import load_json
from auditor.evidence.opener import EvidenceUnreadable, Folder
from auditor.evidence.paths import contained_path, relative_name
from auditor.evidence.safetensors import (
    ShardIndex,
    read_safetensors_header,
    read_shard_index,
)

INDEX_NAME = "model.safetensors.index.json"
MAX_CONFIG_BYTES = 16 * 1024 * 1024  # a model's config.json is kilobytes
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".distcp", ".msgpack", ".h5", ".keras",
                   ".index.json")
# Formats whose weight files hold the tensor bytes themselves (DCP and Orbax record metadata files, which can be
# identical between steps while the data beside them differs).
WHOLE_DATA_FORMATS = ("safetensors", "torch_archive", "flax_msgpack")
_MODEL_DIR = re.compile(r"final_model|final|model|checkpoint[-_]?\d+|global_step\d+")


class WeightFile(Protocol):
    """One file of tensors as a checkpoint format reads it from its bytes: names, dtypes and shapes."""

    path: str
    size: int
    tensors: dict[str, tuple[str, tuple[int, ...]]]
    problems: list[str]

    @property
    def parameters(self) -> int:
        """Parameter count from tensor shapes."""


@dataclass(frozen=True)
class PickleGlobal:
    """A global that a pickle inside a checkpoint imports when loaded (`module.name`), where it is imported."""

    path: str
    module: str
    name: str
    offset: int

    @property
    def qualified(self) -> str:
        """`module.name`."""
        return f"{self.module}.{self.name}"


@dataclass
class Checkpoint:
    """A checkpoint (a model directory or a single file): its format, config, weight files read from their bytes,
    the shard index, and what is wrong. `problems` are 'path: what' strings."""

    directory: str
    format: str = "safetensors"
    config: dict[str, Any] | None = None
    config_problem: str | None = None
    files: list[WeightFile] = field(default_factory=list)
    index: ShardIndex | None = None
    missing_shards: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    step: int | None = None
    pickle_globals: list[PickleGlobal] = field(default_factory=list)
    summary: str = ""  # what was checked, in words, for the gate's pass message

    @property
    def parameters(self) -> int:
        """Parameter count from tensor shapes of the files present."""
        return sum(f.parameters for f in self.files)

    def tensor_shape(self, suffixes: tuple[str, ...]) -> tuple[int, ...] | None:
        """Shape of the first tensor whose name ends with one of `suffixes`."""
        for info in self.files:
            for name, (_, shape) in info.tensors.items():
                if name.endswith(suffixes):
                    return shape
        return None


def inspect_checkpoint(folder: Folder, directory: str) -> Checkpoint:
    """Structure of one model directory (folder-relative, '' for the root), from headers alone. Only the folder's
    regular files count: a link (in or out of the folder) is never read as a weight file."""
    prefix = f"{directory}/" if directory else ""
    ckpt = Checkpoint(directory=directory or ".")
    files = set(folder.files)
    inside = folder.under(directory) if directory else folder.files
    present = [rel for rel in inside if "/" not in rel[len(prefix):]]
    config_rel = f"{prefix}config.json"
    if config_rel in files:
        ckpt.config, ckpt.config_problem = _read_config(folder, config_rel)
    else:
        ckpt.config_problem = "config.json is missing"
    index_rel = f"{prefix}{INDEX_NAME}"
    names: set[str] = set()
    if index_rel in files:
        ckpt.index = read_shard_index(folder.root / index_rel, index_rel)
        if ckpt.index.problem:
            ckpt.problems.append(f"{ckpt.index.path} {ckpt.index.problem}")
        for shard in ckpt.index.shards:
            shard_path = contained_path(folder.root / directory, shard)
            shard_rel = relative_name(folder.root, shard_path) if shard_path is not None else None
            if shard_rel is None or shard_rel not in files:
                ckpt.missing_shards.append(shard)
            else:
                names.add(shard_rel)
    names.update(rel for rel in present if rel.endswith(".safetensors"))
    for rel in sorted(names):
        info = read_safetensors_header(folder.root / rel, rel)
        ckpt.files.append(info)
        ckpt.problems.extend(f"{info.path}: {p}" for p in info.problems)
    if ckpt.index and not ckpt.index.problem and not ckpt.missing_shards:
        by_file = {Path(f.path).name: f for f in ckpt.files}
        for tensor, shard in ckpt.index.weight_map.items():
            holder = by_file.get(Path(shard).name)
            if holder is not None and not holder.problems and tensor not in holder.tensors:
                ckpt.problems.append(f"{ckpt.index.path}: tensor {tensor!r} is not in {shard}")
                break
    if not ckpt.files and not ckpt.missing_shards:
        ckpt.problems.append(f"{ckpt.directory}/ holds no .safetensors weights")
    return ckpt


def _read_config(folder: Folder, rel: str) -> tuple[dict[str, Any] | None, str | None]:
    """config.json as a mapping, or why not."""
    try:
        raw, cut = folder.read(rel, MAX_CONFIG_BYTES)
    except EvidenceUnreadable as exc:
        return None, f"config.json cannot be read ({str(exc).split(': ', 1)[-1]})"
    if cut:
        return None, f"config.json is larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MiB: not read"
    try:
        config = load_json(raw)
    except (ValueError, RecursionError):
        return None, "config.json is not valid JSON"
    return (config, None) if isinstance(config, dict) else (None, "config.json is not a JSON object")


def model_link(rel: str, directory: str | None) -> bool:
    """Whether a symbolic link at `rel` stands where a checkpoint would be: inside the checkpoint `directory`, a
    weights file or index, or a folder named as a model (final_model, checkpoint-N)."""
    if directory and directory != "." and (rel == directory or rel.startswith(f"{directory}/")):
        return True
    name = rel.rpartition("/")[2]
    return name.endswith(WEIGHT_SUFFIXES) or name in ("config.json", "latest") or bool(_MODEL_DIR.fullmatch(name))


def _data_region(info: WeightFile) -> tuple[int, int, object]:
    """(start, length, layout) of a weight file's tensor data: a safetensors file's data after its header (so a
    re-written header does not hide the same tensors), any other file whole."""
    start = getattr(info, "data_start", 0)
    layout = (info.tensors, getattr(info, "spans", None))
    return start, info.size - start, layout


def _same_bytes(folder: Folder, a: str, a_start: int, b: str, b_start: int, length: int) -> bool:
    """Whether two byte ranges are equal; stops at the first differing chunk (checkpoints of different steps
    differ in their first MiB), so comparing costs a read only where the weights are in fact the same."""
    try:
        with folder.open(a) as first, folder.open(b) as second:
            first.seek(a_start)
            second.seek(b_start)
            while length > 0:
                want = min(CHUNK, length)
                chunk = first.read(want)
                if len(chunk) != want or chunk != second.read(want):
                    return False
                length -= want
    except (EvidenceUnreadable, OSError):
        return False
    return True


def same_weights(folder: Folder, final: Checkpoint, other: Checkpoint) -> tuple[str, str] | None:
    """(final's file, other's file) when every weight file of `final` holds exactly the tensor data of a file of
    `other` (same tensors, same layout, identical bytes); None when any differs. Reads tensor data."""
    if final.format != other.format or final.format not in WHOLE_DATA_FORMATS:
        return None
    files = set(folder.files)
    pairs: list[tuple[str, str]] = []
    for mine in final.files:
        start, length, layout = _data_region(mine)
        if mine.path not in files or mine.problems:
            return None
        twin = None
        for theirs in other.files:
            their_start, their_length, their_layout = _data_region(theirs)
            if (theirs.path in files and not theirs.problems and their_length == length and their_layout == layout
                    and _same_bytes(folder, mine.path, start, theirs.path, their_start, length)):
                twin = theirs.path
                break
        if twin is None:
            return None
        pairs.append((mine.path, twin))
    return pairs[0] if pairs else None
