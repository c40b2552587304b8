"""env_snapshot as JSON or free text (including `python -m torch.utils.collect_env` output)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditor.evidence.jsonload import load_json
from auditor.evidence.opener import read_json_file
from auditor.evidence.text import TextDoc

# (fact, pattern over one line); the first match wins.
_FACTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("python", re.compile(r"^\s*(?:Python(?: version)?|python)\s*[:=]\s*(?:Python\s+)?(\d+\.\d+[\w.+]*)", re.I)),
    ("torch", re.compile(r"^\s*(?:PyTorch(?: version)?|torch)\s*[:=]=?\s*(\d+\.\d+[\w.+]*)", re.I)),
    ("transformers", re.compile(r"^\s*transformers\s*[:=]=?\s*(\d+\.\d+[\w.+]*)", re.I)),
    ("jax", re.compile(r"^\s*(?:JAX(?: version)?|jax)\s*[:=]=?\s*(\d+\.\d+[\w.+]*)", re.I)),
    ("cuda", re.compile(r"^\s*(?:CUDA Version(?: \(PyTorch\))?|CUDA used to build PyTorch|torch\.version\.cuda)"
                        r"\s*[:=]\s*(\d+\.\d+)", re.I)),
    ("cuda_available", re.compile(r"^\s*(?:CUDA Available|Is CUDA available|torch\.cuda\.is_available\(\))"
                                  r"\s*[:=]\s*(True|False|Yes|No)", re.I)),
    ("gpu", re.compile(r"^\s*(?:GPU(?: \d+)?|Device(?: Name)?|GPU models and configuration|"
                       r"torch\.cuda\.get_device_name\(0\))\s*[:=]\s*(.*(?:NVIDIA|Tesla|GeForce|RTX|A100|H100|"
                       r"H200|L4|T4|V100|A10|TPU).*)", re.I)),
    ("driver", re.compile(r"^\s*(?:Driver Version|Nvidia driver version)\s*[:=]\s*([\d.]+)", re.I)),
    ("commit", re.compile(r"^\s*(?:Commit|git commit|commit_sha)\s*[:=]\s*([0-9a-f]{7,40})\b", re.I)),
    ("platform", re.compile(r"^\s*(?:Platform|OS)\s*[:=]\s*(.+)", re.I)),
    ("date", re.compile(r"^\s*(?:Date|Captured(?: at)?|Timestamp)\s*[:=]\s*(\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}"
                        r"(?::\d{2})?)?)", re.I)),
)


@dataclass
class EnvFacts:
    """Facts read from an environment snapshot, each with the line it came from."""

    path: str
    facts: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)

    def get(self, key: str) -> str | None:
        """One fact, or None."""
        return self.facts.get(key)


def dotted(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level of dotted keys: {"a": {"b": 1}} → {"a.b": 1} (other values are leaves)."""
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(dotted(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: data}


def _from_json(data: dict[str, Any], facts: EnvFacts) -> None:
    flat = {key.lower(): value for key, value in dotted(data).items()}
    for key, value in flat.items():
        if value is None or value == "":
            continue
        leaf = key.rsplit(".", 1)[-1]
        for fact, names in (("python", ("python", "python_version")), ("torch", ("torch", "torch_version")),
                            ("transformers", ("transformers",)), ("jax", ("jax", "jax_version")),
                            ("cuda", ("cuda", "cuda_version")), ("cuda_available", ("cuda_available",)),
                            ("driver", ("driver", "driver_version")), ("platform", ("platform",)),
                            ("commit", ("commit",)), ("jax_backend", ("jax_backend",)),
                            ("logging_nan_inf_filter", ("logging_nan_inf_filter",)),
                            ("date", ("date", "captured_at"))):
            if leaf in names and fact not in facts.facts:
                facts.facts[fact] = str(value)
        if leaf in ("gpu", "gpu_name", "device_name") and "gpu" not in facts.facts:
            facts.facts["gpu"] = str(value)


def read_env(doc: TextDoc) -> EnvFacts:
    """Facts from a snapshot: JSON when it parses as an object, else free text line by line."""
    facts = EnvFacts(path=doc.path)
    text = doc.text.strip()
    if text.startswith("{"):
        try:
            data = load_json(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            _from_json(data, facts)
            return facts
    for number, line in enumerate(doc.lines, start=1):
        for fact, pattern in _FACTS:
            if fact in facts.facts:
                continue
            match = pattern.match(line)
            if match:
                facts.facts[fact] = match.group(1).strip()
                facts.lines[fact] = number
    return facts


def snapshot_json(folder: Path) -> dict[str, Any]:
    """env_snapshot.json of a run folder as written by `audit run` ({} when absent, unreadable or not an object)."""
    try:
        data = read_json_file(folder / "env_snapshot.json", "env_snapshot.json")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
