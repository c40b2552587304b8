"""The published JSON Schemas: generated from models/, validated with jsonschema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from auditor.models import MetricsRecord, RunManifest, VerifyReport

SCHEMA_VERSION = 1
SCHEMA_BASE_URL = "https://auditor.dev/schemas"
MODELS: dict[str, type[BaseModel]] = {
    "run_manifest": RunManifest,
    "metrics_record": MetricsRecord,
    "verify_report": VerifyReport,
}


def schema_document(name: str) -> dict[str, Any]:
    """The JSON Schema document for `name`, with `$schema`, `$id` and a version."""
    schema = MODELS[name].model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{SCHEMA_BASE_URL}/v{SCHEMA_VERSION}/{name}.schema.json",
        "x-schema-version": SCHEMA_VERSION,
        **schema,
    }


def schema_text(name: str) -> str:
    """The document as written to schemas/<name>.schema.json (deterministic)."""
    return json.dumps(schema_document(name), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schemas(directory: Path) -> list[Path]:
    """Write every schema into `directory`; returns the written paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in MODELS:
        path = directory / f"{name}.schema.json"
        path.write_text(schema_text(name), encoding="utf-8")
        written.append(path)
    return written


def _json_path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(root)"


def validation_errors(name: str, instance: Any) -> list[str]:
    """jsonschema errors for `instance`, each naming its JSON path: `artifacts[3].sha256: ...`."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema_document(name))
    errors = sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{_json_path(e.absolute_path)}: {e.message}" for e in errors]
