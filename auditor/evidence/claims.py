"""Claims in a summary markdown: two-column figure tables, loss-curve tables, quality-gate tables,
objective notes ("138 steps, 73.2s runtime") and status lines."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from auditor.models import Claim, LossRow

_NUMBER = r"(-?\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?)"
_NUM_UNIT = re.compile(_NUMBER + r"\s*([A-Za-z%]+(?:/[A-Za-z]+)?)?")
_MARKUP = re.compile(r"[*`]")
LABELS: dict[str, tuple[str, ...]] = {
    "total_steps": ("total steps", "steps", "training steps", "max steps", "optimizer steps"),
    "runtime_seconds": ("runtime", "train runtime", "training runtime", "training time", "wall time"),
    "samples_per_second": ("throughput", "samples/sec", "samples per second", "train samples per second"),
    "tokens_per_second": ("tokens/sec", "tokens per second", "toks/s"),
    "steps_per_second": ("steps/sec", "steps per second", "steps/s"),
    "final_loss": ("final loss", "final train loss", "final training loss", "loss (end)", "end loss",
                   "last logged loss"),
    "mean_train_loss": ("mean train loss", "mean train loss (run average)", "average train loss",
                        "train loss (run average)"),
    "first_loss": ("loss (start)", "initial loss", "start loss"),
    "eval_examples": ("eval examples", "evaluation examples", "eval count", "predictions"),
    "epochs": ("epochs", "num epochs"),
    "batch_size": ("batch size", "per-device batch size"),
    "gradient_accumulation_steps": ("gradient accumulation", "grad accum", "gradient accumulation steps"),
    "total_tflos": ("tflops", "total flos", "total tflops"),
}
GATE_LABELS: dict[str, tuple[str, ...]] = {
    "training_completed": ("training completes", "training completed", "training complete"),
    "gpu_used": ("gpu used", "gpu utilized", "gpu utilised", "tpu used", "accelerator used"),
    "loss_decreased": ("loss decreases", "loss decreased", "loss decreasing"),
    "checkpoint_saved": ("checkpoint saved", "checkpoint saves", "model saved"),
    "evaluation_ran": ("evaluation runs", "evaluation ran", "eval runs", "evaluation completed"),
    "code_unchanged": ("no code changes", "code unchanged"),
    "evidence_complete": ("evidence captured", "evidence complete"),
}
_NOTE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("total_steps", re.compile(r"(?<![\d.])(\d+)(?:/\d+)? steps\b")),
    ("runtime_seconds", re.compile(r"(\d+(?:\.\d+)?)\s*s(?:ec(?:onds)?)? runtime")),
    ("samples_per_second", re.compile(r"(\d+(?:\.\d+)?) samples/sec")),
    ("eval_examples", re.compile(r"(\d+) (?:examples|predictions)\b")),
)
_ARROW = re.compile(_NUMBER + r"\s*(?:→|->|=>)\s*~?" + _NUMBER)
_FILE_CELL = re.compile(r"[\w.-]+(?:/[\w.-]+)*\.[A-Za-z]{2,10}")
_EVIDENCE_ONLY = re.compile(r"evidence[- ]only", re.I)
_NEGATED = re.compile(r"\b(?:not|never|no)\b[\w ]{0,24}$", re.I)
_SUCCESS = re.compile(r"\*\*Status:?\*\*:?\s*(.*)", re.I)


@dataclass
class SummaryClaims:
    """Everything one summary file claims."""

    path: str
    figures: list[Claim] = field(default_factory=list)
    loss_rows: list[LossRow] = field(default_factory=list)
    gate_claims: dict[str, tuple[str, int]] = field(default_factory=dict)
    success_lines: list[int] = field(default_factory=list)
    file_mentions: list[tuple[str, int]] = field(default_factory=list)
    evidence_only_line: int | None = None


def _declares_evidence_only(line: str) -> bool:
    """'an evidence-only run' declares it; 'run is not declared evidence-only' (verify's own skip message) does
    not."""
    match = _EVIDENCE_ONLY.search(line)
    return match is not None and _NEGATED.search(line[:match.start()]) is None


def decimals_of(text: str) -> int:
    """Digits after the decimal point as displayed (1.02 → 2; 2.0e-5 → 6)."""
    mantissa, _, exponent = text.lower().partition("e")
    places = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return max(0, places - int(exponent)) if exponent else places


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _clean(cell: str) -> str:
    return _MARKUP.sub("", cell).strip()


def _cells(line: str) -> list[str]:
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") else body
    return [_clean(c) for c in body.split("|")]


RATE_KEYS = ("samples_per_second", "tokens_per_second", "steps_per_second")
TIME_SCALE = {"min": 60.0, "mins": 60.0, "minutes": 60.0, "m": 60.0, "h": 3600.0, "hours": 3600.0}


def _rate_key(unit: str, default: str) -> str:
    if unit.startswith("tok"):
        return "tokens_per_second"
    if unit.startswith("step"):
        return "steps_per_second"
    return default


def _figure(key: str, label: str, text: str, path: str, line: int) -> list[Claim]:
    """Claims from one value cell; a rate cell may hold several ('7.51 samples/sec, 1.88 steps/sec')."""
    out: list[Claim] = []
    for match in _NUM_UNIT.finditer(text):
        number, unit = match.group(1), (match.group(2) or "").lower()
        value = _number(number)
        claim_key = key
        if key in RATE_KEYS:
            claim_key = _rate_key(unit, key)
        elif key == "runtime_seconds":
            value *= TIME_SCALE.get(unit, 1.0)
        approximate = text[: match.start()].rstrip().endswith(("~", "≈"))
        out.append(Claim(key=claim_key, label=label, text=text, value=value, decimals=decimals_of(number),
                         approximate=approximate, unit=unit or None, path=path, line=line))
        if key not in RATE_KEYS:
            break
    return out


def _label_key(label: str, table: dict[str, tuple[str, ...]]) -> str | None:
    low = label.lower().strip().rstrip(":")
    for key, names in table.items():
        if low in names:
            return key
    return None


def _note_claims(text: str, label: str, path: str, line: int) -> list[Claim]:
    out = []
    for key, pattern in _NOTE_PATTERNS:
        match = pattern.search(text)
        if match:
            out.append(Claim(key=key, label=label, text=text, value=_number(match.group(1)),
                             decimals=decimals_of(match.group(1)), path=path, line=line))
    return out


def parse_summary(lines: tuple[str, ...], path: str) -> SummaryClaims:
    """Extract claims from a summary markdown's lines."""
    claims = SummaryClaims(path=path)
    header: list[str] | None = None
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        status = _SUCCESS.search(line)
        if status and re.search(r"✅|complete|success|done", status.group(1), re.I):
            claims.success_lines.append(number)
        if claims.evidence_only_line is None and _declares_evidence_only(line):
            claims.evidence_only_line = number
        if not stripped.startswith("|"):
            header = None
            continue
        cells = _cells(stripped)
        if header is None:
            header = [c.lower() for c in cells]
            continue
        if all(re.fullmatch(r":?-{2,}:?", c or "--") for c in cells):
            continue
        _row(claims, header, cells, path, number)
    return claims


def _row(claims: SummaryClaims, header: list[str], cells: list[str], path: str, line: int) -> None:
    label = cells[0] if cells else ""
    if header and header[0] in ("file", "artifact", "path") and _FILE_CELL.fullmatch(label):
        claims.file_mentions.append((label, line))
        return
    if "loss" in header and ("step" in header or "epoch" in header):
        _loss_row(claims, header, cells, path, line)
        return
    gate = _label_key(label, GATE_LABELS)
    if gate and len(cells) >= 2 and ("status" in header or "gate" in header):
        claims.gate_claims[gate] = (cells[1], line)
        if len(cells) >= 3:
            arrow = _ARROW.search(cells[2])
            if arrow and gate == "loss_decreased":
                for end, shown in (("first_loss", arrow.group(1)), ("final_loss", arrow.group(2))):
                    claims.figures.append(Claim(key=end, label=f"{label} ({end})", text=cells[2],
                                                value=_number(shown), decimals=decimals_of(shown),
                                                path=path, line=line))
            else:
                claims.figures.extend(_note_claims(cells[2], label, path, line))
        return
    if len(cells) == 2 and len(header) == 2:
        key = _label_key(label, LABELS)
        if key:
            claims.figures.extend(_figure(key, label, cells[1], path, line))
        return
    if len(cells) >= 3 and any(h in ("notes", "evidence", "result") for h in header):
        claims.figures.extend(_note_claims(cells[-1], label, path, line))


def _loss_row(claims: SummaryClaims, header: list[str], cells: list[str], path: str, line: int) -> None:
    if len(cells) != len(header):
        return
    row = dict(zip(header, cells, strict=True))
    loss_match = re.search(_NUMBER, row.get("loss", ""))
    if loss_match is None:
        return
    key_cell = row.get("step", row.get("epoch", ""))
    final = "final" in key_cell.lower() or ("end" in key_cell.lower() and "step" in header)
    step = epoch = None
    epoch_decimals = 0
    key_match = re.search(_NUMBER, key_cell)
    if "step" in header and key_match and not final:
        step = int(_number(key_match.group(1)))
    elif "epoch" in header:
        epoch_text = row.get("epoch", "")
        epoch_match = re.search(_NUMBER, epoch_text)
        if epoch_match:
            epoch, epoch_decimals = _number(epoch_match.group(1)), decimals_of(epoch_match.group(1))
    if step is None and epoch is None and not final:
        return
    loss_text = loss_match.group(1)
    claims.loss_rows.append(LossRow(step=step, epoch=epoch, epoch_decimals=epoch_decimals,
                                    loss=_number(loss_text), loss_decimals=decimals_of(loss_text),
                                    final=final, path=path, line=line))
