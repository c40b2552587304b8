"""Keras 3 `.keras` model files (`model.save`, `ModelCheckpoint("*.keras")`): a zip of config.json, metadata.json
and model.weights.h5. The zip is checked as torch archives are (one pass: every member's CRC-32 and the file's
sha256); the JSON members are parsed and the weights member must be an HDF5 file. The HDF5 datasets themselves
(tensor shapes) are not read, so no parameter count is given."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from auditor.evidence.checkpoint import Checkpoint
from auditor.evidence.jsonload import load_json
from auditor.evidence.opener import EvidenceUnreadable, Folder
from auditor.evidence.sources.interface import Candidate, CheckpointSource, FormatInfo
from auditor.evidence.sources.registry import register
from auditor.evidence.sources.torch_archive import ArchiveCheck, member_bytes, verify_archive

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
JSON_LIMIT = 16 << 20
_STEP = re.compile(r"(?:step|epoch)[=_-]?(\d+)", re.I)


@dataclass
class KerasFile:
    """A .keras file as a WeightFile: no tensors are read from its HDF5 weights."""

    path: str
    size: int
    tensors: dict[str, tuple[str, tuple[int, ...]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    model_class: str | None = None
    keras_version: str | None = None

    @property
    def parameters(self) -> int:
        """Unknown (0): the HDF5 datasets are not read."""
        return 0


def _json_member(handle: BinaryIO, check: ArchiveCheck, name: str, result: KerasFile) -> dict[str, Any] | None:
    span = check.spans.get(name)
    if span is None:
        result.problems.append(f"{result.path}: no {name} member")
        return None
    data, cut = member_bytes(handle, span, JSON_LIMIT)
    try:
        value = None if cut else load_json(data)
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        result.problems.append(f"{result.path}: {name} is not a JSON object" + (" (too large)" if cut else ""))
        return None
    return value


@register
class KerasModel(CheckpointSource):
    """Keras 3 .keras files."""

    info = FormatInfo(
        id="keras", kind="checkpoint", title="Keras 3 model file (.keras)",
        looks_for=("*.keras",),
        reads="the zip's central directory and every member's CRC-32 in one pass that also hashes the file; "
              "config.json and metadata.json parsed; model.weights.h5's HDF5 signature",
        proves="the file is intact, names its model class and Keras version, and holds an HDF5 weights file; the "
               "HDF5 datasets are not read, so tensor shapes and the parameter count are not checked",
    )

    def find(self, folder: Folder) -> list[Candidate]:
        found = []
        for rel in folder.files:
            if rel.endswith(".keras") and folder.head(rel, 4) == b"PK\x03\x04":
                name = rel.rsplit("/", 1)[-1]
                step = _STEP.search(name)
                found.append(Candidate(rel, self.info.id, step=int(step.group(1)) if step else None,
                                       final=name.lower().startswith(("final", "last"))))
        return found

    def inspect(self, folder: Folder, candidate: Candidate) -> Checkpoint:
        rel = candidate.location
        ckpt = Checkpoint(directory=rel, format=self.info.id, step=candidate.step)
        result = KerasFile(path=rel, size=0)
        try:
            with folder.open(rel) as handle:
                check = verify_archive(handle)
                result.size = check.size
                result.problems.extend(f"{rel}: {p}" for p in check.problems)
                config = _json_member(handle, check, "config.json", result)
                metadata = _json_member(handle, check, "metadata.json", result)
                weights = check.spans.get("model.weights.h5")
                if weights is None:
                    result.problems.append(f"{rel}: no model.weights.h5 member: the weights were not saved")
                elif member_bytes(handle, weights, len(HDF5_SIGNATURE))[0] != HDF5_SIGNATURE:
                    result.problems.append(f"{rel}: model.weights.h5 is not an HDF5 file")
        except EvidenceUnreadable as exc:
            ckpt.problems.append(str(exc))
            return ckpt
        result.model_class = str(config.get("class_name")) if config else None
        result.keras_version = str(metadata.get("keras_version")) if metadata else None
        ckpt.files.append(result)
        ckpt.problems.extend(result.problems)
        ckpt.summary = (f"{rel}: Keras {result.keras_version} {result.model_class}, zip of {len(check.members)} "
                        "member(s) CRC-32 verified, config and metadata parse, HDF5 weights present")
        return ckpt
