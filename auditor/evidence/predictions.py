"""predictions.jsonl: one JSON object per line with a non-empty prediction text."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from auditor.evidence.jsonload import load_json

TEXT_FIELDS = ("prediction", "final_answer", "output", "response", "completion", "generated_text")
MAX_KEPT = 10


@dataclass
class Predictions:
    """Counts and the first problems of a predictions file."""

    path: str
    count: int = 0
    valid: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)
    problem_count: int = 0


def read_predictions(path: Path, name: str) -> Predictions:
    """Stream predictions; every line must be an object with a non-empty text field."""
    preds = Predictions(path=name)

    def bad(line: int, why: str) -> None:
        preds.problem_count += 1
        if len(preds.problems) < MAX_KEPT:
            preds.problems.append((line, why))

    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
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
    return preds
