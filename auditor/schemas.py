"""The published JSON Schemas: generated from the dataclasses in models/, validated with jsonschema.

pydantic only generates the documents (`audit schema`); verify validates against the published files and
never imports pydantic, so it starts fast. A test keeps the files and the models in step.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from auditor.models import MetricsRecord, RunManifest, VerifyReport

SCHEMA_VERSION = 1
SCHEMA_BASE_URL = "https://auditor.dev/schemas"
MODELS: dict[str, type] = {
    "run_manifest": RunManifest,
    "metrics_record": MetricsRecord,
    "verify_report": VerifyReport,
}
# installed wheel: auditor/published_schemas/; a source checkout: schemas/ at the repository root
_PUBLISHED = (Path(__file__).parent / "published_schemas", Path(__file__).parent.parent / "schemas")
T = TypeVar("T")


def schema_document(name: str) -> dict[str, Any]:
    """The JSON Schema document for `name` generated from its model, with `$schema`, `$id` and a version."""
    from pydantic import TypeAdapter

    schema = TypeAdapter(MODELS[name]).json_schema(mode="validation")
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


@cache
def published_schema(name: str) -> dict[str, Any]:
    """The shipped schema document (generated from the model only when no published file is found)."""
    for folder in _PUBLISHED:
        path = folder / f"{name}.schema.json"
        if path.is_file():
            document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return document
    return schema_document(name)


def _json_path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(root)"


def validation_errors(name: str, instance: Any) -> list[str]:
    """jsonschema errors for `instance`, each naming its JSON path: `artifacts[3].sha256: ...`."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(published_schema(name))
    errors = sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{_json_path(e.absolute_path)}: {e.message}" for e in errors]


def to_jsonable(obj: Any) -> Any:
    """A model instance as plain JSON data (dataclasses become dicts, recursively)."""
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) and not isinstance(obj, type) else obj


def from_jsonable(cls: type[T], data: Any) -> T:
    """Build model `cls` from data that already passed `validation_errors` (nested models included)."""
    return typing.cast(T, _build(cls, data))


def _build(tp: Any, data: Any) -> Any:
    if data is None:
        return None
    if dataclasses.is_dataclass(tp) and isinstance(tp, type) and isinstance(data, dict):
        hints = typing.get_type_hints(tp)
        names = {f.name for f in dataclasses.fields(tp)}
        return tp(**{k: _build(hints[k], v) for k, v in data.items() if k in names})
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        models = [a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)]
        return _build(models[0], data) if models and isinstance(data, dict) else data
    if origin is list and isinstance(data, list):
        (item,) = typing.get_args(tp)
        return [_build(item, v) for v in data]
    return data
