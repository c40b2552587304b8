"""predictions.jsonl: one JSON object per line with a non-empty prediction text, and how many distinct examples
the lines are predictions for."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditor.evidence.jsonload import load_json
from auditor.evidence.opener import EvidenceUnreadable, bounded_lines, open_file

TEXT_FIELDS = ("prediction", "final_answer", "output", "response", "completion", "generated_text")
# What makes two lines the same example: an id field (top level, then in a meta mapping), else the input text,
# else the whole line.
ID_FIELDS = ("id", "idx", "example_id", "eval_id", "sample_id", "question_id", "task_id", "doc_id", "uid")
ID_HOLDERS = ("meta", "metadata")
INPUT_FIELDS = ("prompt", "input", "question", "instruction", "query", "problem", "messages", "text", "context")
MAX_KEPT = 10


@dataclass
class Predictions:
    """Counts and the first problems of a predictions file."""

    path: str
    count: int = 0
    valid: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)
    problem_count: int = 0
    distinct: int = 0  # distinct examples among the valid lines
    identity: Counter[str] = field(default_factory=Counter)  # what identified the examples: field → lines
    first_repeat: int | None = None  # line of the first prediction for an example already seen

    @property
    def identified_by(self) -> str:
        """'id', 'meta.eval_id', 'prompt' or 'the whole line' (several, most used first, when lines differ)."""
        return ", ".join(name for name, _ in self.identity.most_common(3)) or "the whole line"


def example_identity(record: dict[str, Any]) -> tuple[str, str]:
    """(what identifies the example, its value as canonical JSON) for one prediction record."""
    holders: list[tuple[str, dict[str, Any]]] = [("", record)]
    holders += [(f"{name}.", record[name]) for name in ID_HOLDERS if isinstance(record.get(name), dict)]
    for prefix, holder in holders:
        for name in ID_FIELDS:
            if holder.get(name) not in (None, ""):
                return f"{prefix}{name}", _canonical(holder[name])
    for name in INPUT_FIELDS:
        if record.get(name) not in (None, "", [], {}):
            return name, _canonical(record[name])
    return "the whole line", _canonical(record)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def read_predictions(path: Path, name: str) -> Predictions:
    """Stream predictions; every line must be an object with a non-empty text field."""
    preds = Predictions(path=name)
    seen: set[bytes] = set()  # digests, so memory does not grow with prompt length

    def bad(line: int, why: str) -> None:
        preds.problem_count += 1
        if len(preds.problems) < MAX_KEPT:
            preds.problems.append((line, why))

    try:
        handle = open_file(path, name)
    except EvidenceUnreadable as exc:
        bad(1, str(exc))
        return preds
    with handle:
        for number, raw in enumerate(bounded_lines(handle), start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if not raw.strip():
                continue
            preds.count += 1
            try:
                record = load_json(raw)
            except (ValueError, UnicodeDecodeError, RecursionError):
                bad(number, "not valid JSON")
                continue
            if not isinstance(record, dict):
                bad(number, "not a JSON object")
                continue
            texts = [record[f] for f in TEXT_FIELDS if f in record]
            if not texts:
                bad(number, f"no prediction field (one of {', '.join(TEXT_FIELDS)})")
            elif not any(isinstance(t, str) and t.strip() for t in texts):
                bad(number, "prediction is empty")
            else:
                preds.valid += 1
                kind, value = example_identity(record)
                preds.identity[kind] += 1
                key = hashlib.blake2b(f"{kind}\0{value}".encode("utf-8", "surrogatepass"), digest_size=16).digest()
                if key in seen:
                    preds.first_repeat = preds.first_repeat or number
                else:
                    seen.add(key)
    preds.distinct = len(seen)
    return preds
