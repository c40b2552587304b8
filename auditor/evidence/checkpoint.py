"""Finding the final checkpoint of a run folder and checking its structure from headers."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from auditor.evidence.paths import contained_path, relative_name
from auditor.evidence.safetensors import (
    SafetensorsInfo,
    ShardIndex,
    read_safetensors_header,
    read_shard_index,
)

INDEX_NAME = "model.safetensors.index.json"
_CHECKPOINT_DIR = re.compile(r"checkpoint-(\d+)$")


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


def candidate_dirs(root: Path) -> list[Path]:
    """Model directories, most final first: final_model, then checkpoints by descending step."""
    found: list[Path] = []
    for rel in ("training_output/final_model", "final_model", "training_output/model", "model"):
        path = root / rel
        if path.is_dir() and not path.is_symlink():
            found.append(path)
    numbered: list[tuple[int, Path]] = []
    for parent in (root / "training_output" / "checkpoints", root / "checkpoints", root / "training_output"):
        if parent.is_dir():
            for child in parent.iterdir():
                match = _CHECKPOINT_DIR.search(child.name)
                if match and child.is_dir():
                    numbered.append((int(match.group(1)), child))
    found.extend(path for _, path in sorted(numbered, reverse=True))
    return [p for p in found if _is_model_dir(p)]


def _is_model_dir(path: Path) -> bool:
    try:
        return any(p.name == "config.json" or p.suffix == ".safetensors" or p.name == INDEX_NAME
                   for p in path.iterdir())
    except OSError:
        return False


def newest_trainer_state(root: Path) -> Path | None:
    """trainer_state.json of the newest checkpoint-N, else of training_output/."""
    best: tuple[int, Path] | None = None
    for path in root.glob("**/checkpoint-*/trainer_state.json"):
        match = _CHECKPOINT_DIR.search(path.parent.name)
        if match and (best is None or int(match.group(1)) > best[0]):
            best = (int(match.group(1)), path)
    if best:
        return best[1]
    plain = root / "training_output" / "trainer_state.json"
    return plain if plain.is_file() else None


def inspect_checkpoint(root: Path, directory: Path) -> Checkpoint:
    """Structure of one model directory, from headers alone."""
    ckpt = Checkpoint(directory=relative_name(root, directory))
    config_path = directory / "config.json"
    if config_path.is_file():
        try:
            config = json.loads(config_path.read_bytes())
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
