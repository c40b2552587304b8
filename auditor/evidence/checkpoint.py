"""Finding the final checkpoint of a run folder and checking its structure from headers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from auditor.evidence.jsonload import load_json
from auditor.evidence.paths import contained_path, relative_name
from auditor.evidence.safetensors import (
    ShardIndex,
    read_safetensors_header,
    read_shard_index,
)

INDEX_NAME = "model.safetensors.index.json"


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


def inspect_checkpoint(root: Path, directory: Path) -> Checkpoint:
    """Structure of one model directory, from headers alone."""
    ckpt = Checkpoint(directory=relative_name(root, directory))
    config_path = directory / "config.json"
    if config_path.is_file():
        try:
            config = load_json(config_path.read_bytes())
            if isinstance(config, dict):
                ckpt.config = config
            else:
                ckpt.config_problem = "config.json is not a JSON object"
        except (OSError, ValueError, RecursionError):
            ckpt.config_problem = "config.json is not valid JSON"
    else:
        ckpt.config_problem = "config.json is missing"
    index_path = directory / INDEX_NAME
    names: set[str] = set()
    if index_path.is_file():
        ckpt.index = read_shard_index(index_path, relative_name(root, index_path))
        if ckpt.index.problem:
            ckpt.problems.append(f"{ckpt.index.path} {ckpt.index.problem}")
        for shard in ckpt.index.shards:
            shard_path = contained_path(directory, shard)
            if shard_path is None or not shard_path.is_file():
                ckpt.missing_shards.append(shard)
            else:
                names.add(shard_path.name)
    names.update(p.name for p in directory.glob("*.safetensors"))
    for name in sorted(names):
        path = directory / name
        info = read_safetensors_header(path, relative_name(root, path))
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
