"""Executed Jupyter notebooks (.ipynb: how Kaggle and Colab runs are kept). The cell outputs are the run's log:
stream text, text/plain results and error tracebacks, in execution order. They are laid out at the lines of the
.ipynb file where they are stored (a sparse view: source code lines are blank), so the printed-progress rules,
the crash and success signatures and every message point at the notebook's own lines. An `error` output is the
run failing in that cell: a notebook that printed "Training completed!" after it is a false success."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from auditor.evidence.jsonload import load_json
from auditor.evidence.metrics import MetricsSeries, SourceOutcome
from auditor.evidence.opener import EvidenceUnreadable, Folder
from auditor.evidence.sources.interface import FormatInfo, MetricsSource
from auditor.evidence.sources.printed import read_printed
from auditor.evidence.sources.registry import register
from auditor.evidence.text import TextDoc, decode_bytes

MAX_NOTEBOOK_BYTES = 64 * 1024 * 1024
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_ESCAPED_ANSI = re.compile(r"\\u001[bB]\[[0-9;]*[A-Za-z]|\x1b\[[0-9;]*[A-Za-z]")  # as stored in the JSON text


@dataclass(frozen=True)
class CellError:
    """An error output: its cell (1-based, in file order), execution count, exception and line in the file."""

    cell: int
    execution_count: int | None
    ename: str
    evalue: str
    line: int | None


@dataclass(frozen=True)
class NotebookOutputs:
    """The outputs of an executed notebook: a sparse line view of the file, and the cells that raised."""

    doc: TextDoc
    errors: tuple[CellError, ...]
    cells: int
    problem: str | None = None
    unexecuted: int = 0  # code cells with no execution count: the run never reached them


def _texts(output: dict[str, Any]) -> list[str]:
    kind = output.get("output_type")
    if kind == "stream":
        value: Any = output.get("text", "")
    elif kind in ("execute_result", "display_data"):
        data = output.get("data")
        value = data.get("text/plain", "") if isinstance(data, dict) else ""
    elif kind == "error":
        value = output.get("traceback", [])
    else:
        return []
    parts = value if isinstance(value, list) else [value]
    text = "".join(p if p.endswith("\n") or kind != "error" else p + "\n" for p in parts if isinstance(p, str))
    return [_ANSI.sub("", line) for line in text.splitlines()]


class _Placer:
    """Finds where each output line is stored in the file, searching forward (outputs appear in file order)."""

    def __init__(self, raw_lines: list[str]) -> None:
        self.raw = [_ESCAPED_ANSI.sub("", line) if "001" in line or "\x1b" in line else line for line in raw_lines]
        self.cursor = 0

    def find(self, text: str) -> int | None:
        if not text.strip():
            return None
        needles = {json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]}
        for number in range(self.cursor, len(self.raw)):
            if any(n in self.raw[number] for n in needles):
                self.cursor = number
                return number
        return None


def notebook_outputs(data: bytes, rel: str) -> NotebookOutputs:
    """Parse an .ipynb and lay its outputs out at their lines in the file; never raises."""
    raw_text, encoding = decode_bytes(data)
    raw_lines = raw_text.split("\n")
    lines = [""] * len(raw_lines)
    try:
        nb = load_json(raw_text)
    except (ValueError, RecursionError) as exc:
        return NotebookOutputs(TextDoc(rel, tuple(lines), encoding), (), 0, f"is not valid JSON ({exc})")
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        return NotebookOutputs(TextDoc(rel, tuple(lines), encoding), (), 0, "has no cells list")
    placer = _Placer(raw_lines)
    errors: list[CellError] = []
    unexecuted = 0
    for number, cell in enumerate(cells, start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        if not isinstance(cell.get("execution_count"), int) and str(cell.get("source", "")).strip():
            unexecuted += 1
        outputs = cell.get("outputs")
        for output in outputs if isinstance(outputs, list) else []:
            if not isinstance(output, dict):
                continue
            ename = str(output.get("ename", "error"))
            first: int | None = None  # for an error: the traceback line naming the exception
            for text in _texts(output):
                at = placer.find(text)
                if at is not None:
                    lines[at] = f"{lines[at]} {text}".strip() if lines[at] else text
                    if first is None and (output.get("output_type") != "error" or ename in text):
                        first = at
            if output.get("output_type") == "error":
                count = cell.get("execution_count")
                errors.append(CellError(number, count if isinstance(count, int) else None, ename,
                                        str(output.get("evalue", ""))[:200], first + 1 if first is not None else None))
    return NotebookOutputs(TextDoc(rel, tuple(lines), encoding), tuple(errors), len(cells), None, unexecuted)


def read_notebook(folder: Folder, rel: str) -> NotebookOutputs:
    """A notebook of the folder through the one opener (bounded), parsed once for its series and its log view."""
    return folder.parsed("notebook", rel, lambda: _read_notebook(folder, rel))


def _read_notebook(folder: Folder, rel: str) -> NotebookOutputs:
    try:
        data, cut = folder.read(rel, MAX_NOTEBOOK_BYTES)
    except EvidenceUnreadable as exc:
        return NotebookOutputs(TextDoc(rel, (), "utf-8"), (), 0, str(exc))
    if cut:
        return NotebookOutputs(TextDoc(rel, (), "utf-8"), (), 0, f"is larger than {MAX_NOTEBOOK_BYTES} bytes")
    return notebook_outputs(data, rel)


@register
class Notebook(MetricsSource):
    """Executed .ipynb notebooks."""

    info = FormatInfo(
        id="notebook", kind="metrics", title="Executed Jupyter notebook (.ipynb)",
        looks_for=("*.ipynb",),
        reads="every code cell's outputs (stream text, text/plain results, error tracebacks) at the lines of the "
              "file that store them; loss points by the printed-progress rules; error outputs with their cell",
        proves="what the notebook printed when it ran: its loss curve, crash and success lines; an error output "
               "is a failed run (reported with its cell and line), so success printed after it is a false success",
        log=True,
    )

    def log_view(self, folder: Folder, rel: str) -> TextDoc | None:
        return read_notebook(folder, rel).doc

    def read(self, folder: Folder, rel: str) -> list[MetricsSeries]:
        outputs = read_notebook(folder, rel)
        found = read_printed(outputs.doc.lines, rel) if outputs.doc.lines else []
        if not found:
            found = [MetricsSeries(path=rel, kind="notebook")]
        series = found[0]
        if outputs.problem:
            series._bad(1, f"{rel} {outputs.problem}")
        if outputs.errors:
            error = outputs.errors[0]
            more = f" (+{len(outputs.errors) - 1} more failing cell(s))" if len(outputs.errors) > 1 else ""
            count = f" [{error.execution_count}]" if error.execution_count is not None else ""
            series.outcome = SourceOutcome(f"error in cell {error.cell}{count}", False, error.line,
                                           f"{error.ename}: {error.evalue}{more}")
        elif outputs.cells and not outputs.problem:
            ran = outputs.unexecuted == 0
            series.outcome = SourceOutcome("every code cell ran" if ran else f"{outputs.unexecuted} code cell(s) "
                                           "never ran", ran, None, "no error output")
        return found
