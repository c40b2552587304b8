"""Claims in a summary markdown: figure tables, loss-curve tables, quality-gate tables, objective notes
("138 steps, 73.2s runtime") and status lines.

A figure table is two columns (`| Total Steps | 138 |`) or wider, where the claimed figure is the column headed
value/achieved/result/actual/measured, else the column headed with this run's name (`| Metric | M43 | M44 |` in
m44_summary.md), else the second column unless that one is a target, a plan or another run. A row is a claim when
its label, normalised (case, markup, punctuation, a unit or a qualifier in brackets: "Runtime (s)",
"Train loss (final)"), is made only of words known for one figure: "Loss scale", "Wrapper wall time" and
"Tokens/sec (computed)" are not claims. Figures are read the way people write them: "≈1.2k tok/s", "412/414 (99.5%)",
"3 min 23 s", "1h 02m", "2.5M params", "1,234.5", a second unit or a note in brackets after them, markup around
them. A figure scaled by a magnitude or a time unit matches within half a unit of its last written digit."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from auditor.models import Claim, LossRow

_NUMBER = r"(-?\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?)"
_MARKUP = re.compile(r"~~.*?~~|[*`]")  # struck-through text is withdrawn: dropped with its marks
_UNDERSCORE_EMPHASIS = re.compile(r"(?<!\w)_+|_+(?!\w)")  # "_0.66_"; file names keep theirs
_CELL_SPLIT = re.compile(r"(?<!\\)\|")
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

RATE_KEYS = ("samples_per_second", "tokens_per_second", "steps_per_second")
PLAN_KEYS = ("batch_size", "gradient_accumulation_steps", "max_steps")

# -- labels ----------------------------------------------------------------------------------------------------
_PER_SECOND = ((re.compile(r"\s*/\s*"), "/"), (re.compile(r"\s+per\s+(?:seconds?|secs?|s)\b"), "/s"),
               (re.compile(r"/(?:seconds?|secs?)\b"), "/s"))
_LABEL_TOKEN = re.compile(r"[a-z]+/s\b|[a-z]+|\d+(?:\.\d+)?|%")
_SYNONYMS = {
    **dict.fromkeys(("sample/s", "samples/s", "seq/s", "sequence/s", "sequences/s", "example/s", "examples/s",
                     "img/s", "images/s"), "samples/s"),
    **dict.fromkeys(("tok/s", "toks/s", "token/s", "tokens/s"), "tokens/s"),
    **dict.fromkeys(("step/s", "steps/s", "it/s", "its/s", "iter/s", "iters/s", "iteration/s", "iterations/s"),
                    "steps/s"),
    **dict.fromkeys(("evaluation", "validation", "val", "valid", "eval", "dev"), "eval"),
    **dict.fromkeys(("avg", "average", "mean"), "mean"),
    **dict.fromkeys(("initial", "start", "starting", "first", "begin", "beginning"), "start"),
    **dict.fromkeys(("final", "end", "ending", "last"), "end"),
    **dict.fromkeys(("param", "params", "parameter", "parameters"), "params"),
    **dict.fromkeys(("epoch", "epochs"), "epochs"),
    **dict.fromkeys(("grad", "gradient", "gradients"), "grad"),
    **dict.fromkeys(("accum", "accumulation", "accumulate", "accumulated"), "accum"),
    **dict.fromkeys(("example", "examples"), "examples"),
    **dict.fromkeys(("sample", "samples"), "samples"),
    **dict.fromkeys(("prediction", "predictions"), "predictions"),
    **dict.fromkeys(("flos", "flops"), "flos"),
    **dict.fromkeys(("tflos", "tflops"), "tflops"),
    "wallclock": "wall", "walltime": "wall",
}
_FILLER = frozenset(("the", "of", "a", "an", "in", "total", "overall", "train", "training", "trainer", "run",
                     "achieved", "actual", "measured", "reported", "observed", "logged", "recorded", "number",
                     "num", "no", "nr", "completed", "taken", "done", "model", "value"))
_CONTEXT = frozenset(("train", "training", "run", "total", "overall", "wall", "elapsed"))  # "Time" alone is no claim
_RATE_TOKENS = {"samples/s": "samples_per_second", "tokens/s": "tokens_per_second", "steps/s": "steps_per_second"}
TIME_UNITS = {
    **dict.fromkeys(("ms", "msec", "millisecond", "milliseconds"), 0.001),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1.0),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60.0),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600.0),
    **dict.fromkeys(("d", "day", "days"), 86400.0),
}


@dataclass(frozen=True)
class LabelKey:
    """What a row label claims: the figure's key, and a unit the label carries ("Runtime (min)", "Total FLOs")."""

    key: str
    unit: str | None = None


def _label_words(label: str) -> tuple[list[str], bool] | None:
    """The label's significant words (synonyms folded, filler dropped) and whether it names the training run
    ("Training time"), or None when it holds something no figure label holds (a number, '%')."""
    text = _clean(label).lower().replace("_", " ").replace("-", " ").strip().rstrip(":").strip()
    for pattern, replacement in _PER_SECOND:
        text = pattern.sub(replacement, text)
    words: list[str] = []
    context = False
    for token in _LABEL_TOKEN.findall(text):
        if not token[0].isalpha():  # a number or '%': "Loss (epoch 3)", "MFU %"
            return None
        context = context or token in _CONTEXT
        if token in _FILLER:
            continue
        words.append(_SYNONYMS.get(token, token))
    return words, context


def label_key(label: str) -> LabelKey | None:
    """The figure a row label claims, or None: every significant word must belong to that one figure."""
    found = _label_words(label)
    if found is None:
        return None
    tokens, context = found
    units = [t for t in tokens if t in TIME_UNITS]
    words = frozenset(t for t in tokens if t not in TIME_UNITS)
    key = _key_of(words, context)
    if key is None or (units and key != "runtime_seconds") or len(units) > 1:
        return None
    if key == "total_tflos":
        return LabelKey(key, "tflops" if "tflops" in words else "flos")
    return LabelKey(key, units[0] if units else None)


def _key_of(w: frozenset[str], context: bool) -> str | None:
    """The figure named by a label's significant words (see label_key)."""
    if not w:
        return None
    if "loss" in w:
        rest = w - {"loss"}
        if "eval" in rest:
            return "eval_loss" if rest <= {"eval", "end"} else None
        if "mean" in rest:
            return "mean_train_loss" if rest <= {"mean"} else None
        if "start" in rest:
            return "first_loss" if rest == {"start"} else None
        return "final_loss" if rest <= {"end"} else None
    rates = w & _RATE_TOKENS.keys()
    if rates or "throughput" in w:
        if len(rates) > 1 or w - rates - {"throughput"}:
            return None
        return _RATE_TOKENS[next(iter(rates))] if rates else "samples_per_second"
    if w & {"runtime", "time", "duration", "elapsed"} or w in ({"wall"}, {"wall", "clock"}):
        if not w <= {"runtime", "time", "duration", "elapsed", "wall", "clock"}:
            return None
        return "runtime_seconds" if context or not w <= {"time", "duration"} else None
    if {"grad", "accum"} <= w <= {"grad", "accum", "steps"} or w == {"accum", "steps"}:
        return "gradient_accumulation_steps"
    if w & {"steps", "step"}:
        if w in ({"max", "steps"}, {"max", "step"}):
            return "max_steps"
        if "steps" in w and w <= {"steps", "optimizer", "global", "count", "end"}:
            return "total_steps"
        if w <= {"step", "optimizer", "global", "count", "end"} and w & {"global", "count", "end"}:
            return "total_steps"
        return None
    if w <= {"epochs", "end"} and "epochs" in w:
        return "epochs"
    if "predictions" in w and w <= {"predictions", "eval", "count"}:
        return "eval_examples"
    if "eval" in w and w & {"examples", "samples", "count", "size"} and w <= {"eval", "examples", "samples",
                                                                              "count", "size"}:
        return "eval_examples"
    if {"batch", "size"} <= w <= {"batch", "size", "per", "device", "gpu"}:
        return "batch_size"
    if w in ({"tflops"}, {"flos"}):
        return "total_tflos"
    if "params" in w and w <= {"params", "count"}:
        return "num_parameters"
    return None


# -- figures ---------------------------------------------------------------------------------------------------
_APPROX = r"(?P<approx>(?:[~≈∼]|\babout\b|\bapprox(?:\.|imately\b)?|\baround\b|\broughly\b|\bca\.)\s*)?"
_FIGURE = re.compile(
    _APPROX + r"(?<![\w.])(?P<number>-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?)"
    r"(?:\s?(?P<magnitude>[kKMBGT])(?![A-Za-z]))?(?:\s*(?P<unit>%|[A-Za-z]+(?:/[A-Za-z]+)?))?")
MAGNITUDES = {"k": 1e3, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}
# written out, or lower-case where the figure is no duration (a duration's "m" is minutes)
_MAGNITUDE_WORDS = {"thousand": 1e3, "m": 1e6, "mn": 1e6, "mil": 1e6, "million": 1e6, "b": 1e9, "bn": 1e9,
                    "billion": 1e9, "trillion": 1e12}
_TIME_UNIT = r"(?:days?|d|hours?|hrs?|h|minutes?|mins?|ms|m|seconds?|secs?|s)(?![A-Za-z])"
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?\s*" + _TIME_UNIT + r"[\s,]*(?:and\s+)?)+", re.I)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(" + _TIME_UNIT + ")", re.I)
_CLOCK = re.compile(r"(\d+):([0-5]\d)(?::([0-5]\d(?:\.\d+)?))?(?![\d:])")
_NOT_ACHIEVED = re.compile(r"[(\[]\s*(?:plan|planned|target|goal|expected|configured|budget|limit)\b", re.I)
_PLACEHOLDER = re.compile(r"\b(?:TODO|TBD|TBA|TBC|FIXME|XXX*)\b|\bX+\.X+\b|^\s*(?:\?+|\.\.\.|…)\s*$|<[^<>]+>|"
                          r"\{\{[^{}]*\}\}|\bfill(?:\s+in|\s+me)?\b", re.I)


@dataclass(frozen=True)
class Figure:
    """One figure as written in a cell: its value (times its magnitude), precision, unit and where it sits."""

    value: float
    decimals: int
    places: int  # of the last written digit, below the point: 2 for 1.02, -12 for 8.37e14
    scale: float
    unit: str
    approximate: bool
    bracketed: bool
    start: int

    @property
    def half(self) -> float:
        """Half a unit of the last written digit, in the figure's value: 1.2k → 50, 8.37e14 → 5e11."""
        return 0.5 * 10.0 ** -self.places * self.scale

    @property
    def tolerance(self) -> float | None:
        """`half` where a magnitude or an exponent scaled the figure ("1.2k", "8.37e14"), else None (decimals
        say it)."""
        return self.half if self.scale != 1.0 or self.places < 0 else None


def places_of(text: str) -> int:
    """Position of the last displayed digit below the point, negative above it (1.02 → 2; 2.0e-5 → 6;
    8.37e14 → -12)."""
    mantissa, _, exponent = text.lower().partition("e")
    places = len(mantissa.split(".")[1]) if "." in mantissa else 0
    try:
        shifted = places - int(exponent) if exponent else places
    except ValueError:  # an exponent of more digits than an int converts
        return 0
    return max(-300, min(300, shifted))  # beyond a float's range either way: 10.0 ** places stays finite


def decimals_of(text: str) -> int:
    """Digits after the decimal point as displayed (1.02 → 2; 2.0e-5 → 6)."""
    return max(0, places_of(text))


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _clean(cell: str) -> str:
    return _MARKUP.sub("", cell).replace("\\|", "|").replace("\u2212", "-").strip()


def _cells(line: str) -> list[str]:
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") and not body.endswith("\\|") else body
    return [_clean(c) for c in _CELL_SPLIT.split(body)]


def _per_second(text: str) -> str:
    """'samples per second', 'tokens / sec' → 'samples/s', 'tokens/s'."""
    for pattern, replacement in _PER_SECOND:
        text = pattern.sub(replacement, text)
    return text


def _depths(text: str) -> list[int]:
    depth, out = 0, []
    for char in text:
        depth += char in "(["
        depth -= char in ")]" and depth > 0
        out.append(depth)
    return out


def figures(text: str, duration: bool = False) -> list[Figure]:
    """Every figure written in `text` (normalised by _per_second), in order: "≈1.04k tok/s" is 1040 tok/s,
    approximate, to ±5. In a `duration`, "m" is minutes, not millions."""
    depth = _depths(text)
    out: list[Figure] = []
    for match in _FIGURE.finditer(text):
        number, unit = match.group("number"), match.group("unit") or ""
        scale = MAGNITUDES.get(match.group("magnitude") or "", 1.0)
        word = unit.lower()
        if scale == 1.0 and word in _MAGNITUDE_WORDS and not (duration and word in TIME_UNITS):
            scale, unit = _MAGNITUDE_WORDS[word], ""
        out.append(Figure(value=_number(number) * scale, decimals=decimals_of(number), places=places_of(number),
                          scale=scale,
                          unit=unit.lower(), approximate=bool(match.group("approx")),
                          bracketed=depth[match.start("number")] > 0, start=match.start("number")))
    return out


def _first(found: list[Figure]) -> Figure | None:
    """The claimed figure of a cell: the first outside brackets ("0.66 (epoch 3)"), else the first."""
    return next((f for f in found if not f.bracketed), found[0] if found else None)


def _duration(text: str, first: Figure, label_unit: str | None) -> tuple[float, float, int]:
    """Seconds, tolerance and decimals of the duration that starts at `first`: "203.4 s", "3.4 min", "3 min 23 s",
    "1h 02m", "0:03:23", or a bare number in the label's unit (seconds by default)."""
    clock = _CLOCK.match(text, first.start)
    if clock:
        parts = [p for p in clock.groups() if p is not None]
        scales = (3600.0, 60.0, 1.0) if len(parts) == 3 else (60.0, 1.0)
        places = decimals_of(parts[-1])
        return sum(float(p) * s for p, s in zip(parts, scales, strict=True)), 0.5 * 10 ** -places, places
    span = _DURATION.match(text, first.start)
    parts_scaled: list[tuple[str, float]] = []
    for part in _DURATION_PART.finditer(span.group(0) if span else ""):
        scale = TIME_UNITS[part.group(2).lower()]
        if parts_scaled and scale >= parts_scaled[-1][1]:  # "3 min 23 s" descends; else it is another figure
            break
        parts_scaled.append((part.group(1), scale))
    if parts_scaled:
        shown, scale = parts_scaled[-1]
        places = decimals_of(shown)
        return sum(float(n) * s for n, s in parts_scaled), 0.5 * 10 ** -places * scale, places
    scale = TIME_UNITS.get(first.unit, TIME_UNITS.get(label_unit or "", 1.0))
    return first.value * scale, first.half * scale, first.decimals


def _is_rate(unit: str) -> bool:
    return unit.endswith("/s")


_COUNTED = {"samples": "samples_per_second", "sample": "samples_per_second", "seq": "samples_per_second",
            "sequence": "samples_per_second", "sequences": "samples_per_second", "example": "samples_per_second",
            "examples": "samples_per_second", "img": "samples_per_second", "images": "samples_per_second",
            "tok": "tokens_per_second", "toks": "tokens_per_second", "token": "tokens_per_second",
            "tokens": "tokens_per_second", "step": "steps_per_second", "steps": "steps_per_second",
            "it": "steps_per_second", "its": "steps_per_second", "iter": "steps_per_second",
            "iters": "steps_per_second", "iteration": "steps_per_second", "iterations": "steps_per_second"}


def _rate_key(unit: str, default: str) -> str | None:
    """The rate a figure's unit names ('tok/s' → tokens_per_second; none → the label's), None for a rate of
    something else ('1.2 GB/s', '45 TFLOPS', '120 ms/step')."""
    if not unit:
        return default
    return _COUNTED.get(unit.removesuffix("/s"))


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
    placeholders: list[tuple[str, str, int]] = field(default_factory=list)  # (label, cell, line): a figure not filled


def _declares_evidence_only(line: str) -> bool:
    """'an evidence-only run' declares it; 'run is not declared evidence-only' (verify's own skip message) does
    not."""
    match = _EVIDENCE_ONLY.search(line)
    return match is not None and _NEGATED.search(line[:match.start()]) is None


def _claim(key: str, label: str, text: str, value: float, decimals: int, tolerance: float | None,
           approximate: bool, unit: str | None, path: str, line: int) -> Claim:
    return Claim(key=key, label=label, text=text, value=value, decimals=decimals, tolerance=tolerance,
                 approximate=approximate, unit=unit or None, path=path, line=line)


def figure_claims(named: LabelKey, label: str, text: str, path: str, line: int) -> list[Claim]:
    """Claims from one value cell; a rate cell may hold several ('7.51 samples/sec, 1.88 steps/sec',
    '8.1 samples/s (≈1.04k tok/s)'); a loss cell may be a range ('2.21 → 0.76')."""
    key = named.key
    written = _per_second(_UNDERSCORE_EMPHASIS.sub("", text))
    found = figures(written, duration=key == "runtime_seconds")
    first = _first(found)
    if first is None or _NOT_ACHIEVED.search(written):
        return []
    if key in RATE_KEYS:
        out = []
        after = False
        for figure in found:
            rate = _rate_key(figure.unit, key)
            after = after or figure is first
            # the first figure, and later ones that are rates too ("8.11 (epoch 3)": the 3 is a note)
            if rate is not None and (figure is first or (after and _is_rate(figure.unit))):
                out.append(_claim(rate, label, text, figure.value, figure.decimals, figure.tolerance,
                                  figure.approximate, figure.unit, path, line))
        return out
    if key == "runtime_seconds":
        seconds, half, decimals = _duration(written, first, named.unit)
        return [_claim(key, label, text, seconds, decimals, half, first.approximate, "s", path, line)]
    value: float = first.value
    tolerance: float | None = first.tolerance
    if key == "total_tflos" and named.unit == "flos":  # counted in FLOs: as TFLOs
        value, tolerance = value / 1e12, first.half / 1e12
    elif key == "total_tflos" and first.scale == 1e12:  # "837.1T" under TFLOPS: the T is the label's
        value, tolerance = value / 1e12, None
    if key == "final_loss" and (arrow := _ARROW.match(written, first.start)):  # "2.21 → 0.76": start and end
        return [_claim(end, f"{label} ({end})", text, _number(shown), decimals_of(shown), None, False, None, path,
                       line) for end, shown in (("first_loss", arrow.group(1)), ("final_loss", arrow.group(2)))]
    return [_claim(key, label, text, value, first.decimals, tolerance, first.approximate, first.unit, path, line)]


def _note_claims(text: str, label: str, path: str, line: int) -> list[Claim]:
    out = []
    for key, pattern in _NOTE_PATTERNS:
        match = pattern.search(text)
        if match:
            out.append(Claim(key=key, label=label, text=text, value=_number(match.group(1)),
                             decimals=decimals_of(match.group(1)), path=path, line=line))
    return out


def _gate_key(label: str) -> str | None:
    low = label.lower().strip().rstrip(":")
    return next((key for key, names in GATE_LABELS.items() if low in names), None)


# -- tables ----------------------------------------------------------------------------------------------------
VALUE_HEADERS = frozenset(("value", "values", "achieved", "result", "results", "actual", "measured", "observed",
                           "reported", "recorded", "outcome", "this run", "figure"))
NOT_VALUE_HEADERS = frozenset((  # a column of these is never the run's figure
    "target", "targets", "goal", "plan", "planned", "expected", "budget", "limit", "threshold", "required",
    "requirement", "spec", "config", "configured", "default", "unit", "units", "notes", "note", "description",
    "source", "evidence", "status", "where", "file", "path", "comment", "comments", "min", "max", "range", "gate"))
COMPARISON_HEADERS = frozenset((  # beside other columns: which one is this run is not said
    "before", "after", "baseline", "previous", "prev", "old", "new", "current", "delta", "change", "diff", "vs",
    "reference", "ref", "paper", "published", "other"))
_RUN_NAME = re.compile(r"(?:[a-z]+[ _-]?)?v?\d+(?:[._-]\w+)*\b")
_STEP_HEADERS = ("step", "steps", "global step", "iteration", "iter")


def _header_word(header: str) -> str:
    return re.sub(r"\s*[(\[].*$", "", header).strip()


@dataclass
class _Table:
    """A table's header and what its columns hold."""

    header: list[str]
    value_col: int | None
    loss_col: int | None
    step_col: int | None
    epoch_col: int | None


def _run_names(path: str) -> set[str]:
    """What a summary calls its own run: 'm44' for m44_summary.md (or m44_v1_summary.md)."""
    name = PurePosixPath(path).name.lower()
    if not name.endswith("_summary.md"):
        return set()
    stem = name[: -len("_summary.md")]
    return {stem, stem.split("_")[0]} if stem else set()


def _is_loss_column(header: str) -> bool:
    """'Loss', 'Train loss', 'Training loss': a loss curve's column (not 'Eval loss', not 'Final loss')."""
    found = _label_words(header)
    return found is not None and found[0] == ["loss"]


def _table(header: list[str], path: str) -> _Table:
    words = [_header_word(h) for h in header]
    value_col: int | None = None
    if len(header) >= 2:
        own = _run_names(path)
        named = next((i for i, h in enumerate(words[1:], 1) if h in VALUE_HEADERS), None)
        mine = next((i for i, h in enumerate(header[1:], 1) if (h.split() or [""])[0] in own), None)
        second = words[1]
        if named is not None:
            value_col = named
        elif mine is not None:
            value_col = mine
        elif second not in NOT_VALUE_HEADERS and (len(header) == 2 or not (
                second in COMPARISON_HEADERS or _RUN_NAME.fullmatch(second))):
            value_col = 1
    loss_col = next((i for i, h in enumerate(header) if _is_loss_column(h)), None)
    step_col = next((i for i, h in enumerate(words) if h in _STEP_HEADERS), None)
    epoch_col = next((i for i, h in enumerate(words) if h in ("epoch", "epochs")), None)
    if loss_col is None or (step_col is None and epoch_col is None):
        loss_col = None
    return _Table(header, value_col, loss_col, step_col, epoch_col)


def parse_summary(lines: tuple[str, ...], path: str) -> SummaryClaims:
    """Extract claims from a summary markdown's lines."""
    claims = SummaryClaims(path=path)
    table: _Table | None = None
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        status = _SUCCESS.search(line)
        if status and re.search(r"✅|complete|success|done", status.group(1), re.I):
            claims.success_lines.append(number)
        if claims.evidence_only_line is None and _declares_evidence_only(line):
            claims.evidence_only_line = number
        if not stripped.startswith("|"):
            table = None
            continue
        cells = _cells(stripped)
        if table is None:
            table = _table([c.lower() for c in cells], path)
            continue
        if all(re.fullmatch(r":?-{2,}:?", c or "--") for c in cells):
            continue
        _row(claims, table, cells, path, number)
    return claims


def _row(claims: SummaryClaims, table: _Table, cells: list[str], path: str, line: int) -> None:
    header = table.header
    label = cells[0] if cells else ""
    if header and header[0] in ("file", "artifact", "path") and _FILE_CELL.fullmatch(label):
        claims.file_mentions.append((label, line))
        return
    if table.loss_col is not None:
        _loss_row(claims, table, cells, path, line)
        return
    gate = _gate_key(label)
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
    named = label_key(label) if len(cells) >= 2 else None
    if named is not None and table.value_col is not None:
        text = cells[table.value_col] if table.value_col < len(cells) else ""
        found = figure_claims(named, label, text, path, line)
        if found:
            claims.figures.extend(found)
        elif not figures(_per_second(_UNDERSCORE_EMPHASIS.sub("", text))) and _PLACEHOLDER.search(text):
            claims.placeholders.append((label, text, line))
        return
    if len(cells) >= 3 and any(h in ("notes", "evidence", "result") for h in header):
        claims.figures.extend(_note_claims(cells[-1], label, path, line))


def _loss_row(claims: SummaryClaims, table: _Table, cells: list[str], path: str, line: int) -> None:
    if len(cells) != len(table.header) or table.loss_col is None:
        return
    loss_match = re.search(_NUMBER, cells[table.loss_col])
    if loss_match is None:
        return
    key_col = table.step_col if table.step_col is not None else table.epoch_col
    key_cell = cells[key_col] if key_col is not None else ""
    has_step = table.step_col is not None
    final = "final" in key_cell.lower() or ("end" in key_cell.lower() and has_step)
    step = epoch = None
    epoch_decimals = 0
    key_match = re.search(_NUMBER, key_cell)
    if has_step and key_match and not final:
        shown = _number(key_match.group(1))
        if not math.isfinite(shown) or abs(shown) >= 2**63:  # no trainer counts steps beyond 64 bits
            return
        step = int(shown)
    elif table.epoch_col is not None:
        epoch_match = re.search(_NUMBER, cells[table.epoch_col])
        if epoch_match:
            epoch, epoch_decimals = _number(epoch_match.group(1)), decimals_of(epoch_match.group(1))
    if step is None and epoch is None and not final:
        return
    loss_text = loss_match.group(1)
    claims.loss_rows.append(LossRow(step=step, epoch=epoch, epoch_decimals=epoch_decimals,
                                    loss=_number(loss_text), loss_decimals=decimals_of(loss_text),
                                    final=final, path=path, line=line))
