"""HuggingFace model folders: config.json with model.safetensors, or shards with model.safetensors.index.json
(final_model/, model/, checkpoint-N/ anywhere in the folder), validated from safetensors headers alone."""

from __future__ import annotations

import re

from auditor.evidence.checkpoint import INDEX_NAME, Checkpoint, inspect_checkpoint
from auditor.evidence.opener import Folder
from auditor.evidence.sources.interface import Candidate, CheckpointSource, FormatInfo
from auditor.evidence.sources.registry import register

_CHECKPOINT_DIR = re.compile(r"(?:^|/)checkpoint-(\d+)$")
FINAL_NAMES = ("final_model", "model", "final")
# Where a folder holding only config.json is still a model folder (its weights missing is then the finding).
_NAMED = re.compile(r"(?:^|/)(?:final_model|model|final|checkpoint-\d+)$")


@register
class HfModelFolder(CheckpointSource):
    """safetensors model folders."""

    info = FormatInfo(
        id="safetensors", kind="checkpoint", title="HF model folder (safetensors)",
        looks_for=("*.safetensors", INDEX_NAME, "config.json"),
        reads="the 8-byte header length and JSON header of every .safetensors file (dtypes, shapes, offsets), the "
              "shard index's weight_map, and config.json; no tensor data",
        proves="every tensor's bytes lie inside the file and together cover it exactly, every indexed shard "
               "exists and holds its tensors, config.json parses; the parameter count",
    )

    def find(self, folder: Folder) -> list[Candidate]:
        dirs: set[str] = set()
        for rel in folder.files:
            parent, _, name = rel.rpartition("/")
            if name.endswith(".safetensors") or name == INDEX_NAME or (name == "config.json" and _NAMED.search(parent)):
                dirs.add(parent)
        found = []
        for directory in sorted(dirs):
            base = directory.rsplit("/", 1)[-1]
            match = _CHECKPOINT_DIR.search(directory)
            found.append(Candidate(directory, self.info.id, step=int(match.group(1)) if match else None,
                                   final=base in FINAL_NAMES))
        return found

    def inspect(self, folder: Folder, candidate: Candidate) -> Checkpoint:
        ckpt = inspect_checkpoint(folder, candidate.location)
        ckpt.step = candidate.step
        ckpt.summary = (f"{len(ckpt.files)} safetensors file(s), {ckpt.parameters:,} parameters, headers cover every "
                        "byte, config.json parses")
        return ckpt
