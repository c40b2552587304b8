"""`audit summary`: verify a run folder, then render its milestone summary (markdown in the seeds' structure,
a loss plot and a GPU utilisation plot beside it) from the evidence. An existing summary keeps everything
outside the blocks the tool owns."""

from __future__ import annotations

import re
from array import array
from dataclasses import dataclass, field
from pathlib import Path

from auditor.capture.files import write_atomic
from auditor.compare import run_facts
from auditor.errors import AuditInputError
from auditor.evidence.nvsmi import SampleStats, read_gpu_samples
from auditor.evidence.paths import is_within, relative_name
from auditor.evidence.run import RunEvidence
from auditor.gates import REGISTRY, GateOptions
from auditor.models import RunReport
from auditor.render.owned import merge, owned_or_refuse
from auditor.render.plot import Plotter, available
from auditor.render.summary import RENDERERS, SummaryInput, blocks, document
from auditor.verify import audit_run_dir, check_run_dir

_MILESTONE = re.compile(r"^(m\d+)(?:[_-]|$)", re.I)
SETTLE_ROUNDS = 3  # re-verifies after writing into the folder; two settle every case seen (a changed verdict)
PLOT_EXTRA = "matplotlib is not installed: `pip install 'auditor[plot]'` to draw the plots"


@dataclass
class SummaryResult:
    """What `audit summary` wrote."""

    text: str
    verdict: str
    output: Path | None
    plots: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    updated: bool = False


def milestone_of(name: str) -> str:
    """'m44_v1' → 'M44'; a name without a milestone prefix is its own milestone."""
    match = _MILESTONE.match(name)
    return match.group(1).upper() if match else name


def default_output(run_dir: Path) -> Path:
    """`<run_dir>/<folder name>_summary.md`: verify reads it as the run's summary. The name comes from the folder,
    never from the evidence (a manifest's run_id of `../x` or `/etc/x` must not decide where anything is written)."""
    return run_dir / f"{run_dir.resolve().name}_summary.md"


def plot_paths(output: Path) -> tuple[Path, Path]:
    """The loss and GPU plots beside `output` (m44_v1_summary.md → m44_v1_loss.png, m44_v1_gpu.png)."""
    stem = output.name.removesuffix(".md").removesuffix("_summary")
    return output.with_name(f"{stem}_loss.png"), output.with_name(f"{stem}_gpu.png")


def _existing(output: Path | None) -> str | None:
    """The current text of `output`, checked for well-formed owned blocks before anything is computed."""
    if output is not None and output.is_symlink():
        raise AuditInputError(f"{output} is a link: the summary is never written through one (or read from where "
                              "it leads); remove the link or name another file with --output")
    if output is None or not output.exists():
        return None
    if not output.is_file():
        raise AuditInputError(f"--output {output} is not a file: name the markdown file to write")
    try:
        text = output.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditInputError(f"{output}: cannot be read as UTF-8 text ({exc}); render elsewhere with "
                              "--output") from None
    owned_or_refuse(text.split("\n"), str(output))
    return text


def _name(data: SummaryInput) -> str:
    """'M44: m44_v1', or the folder's name alone when it is its own milestone."""
    folder = data.ev.root.resolve().name
    return folder if data.milestone == folder else f"{data.milestone}: {folder}"


def _start_plotter() -> Plotter | None:
    """The drawing worker, started now so it imports matplotlib while verify reads; None without matplotlib."""
    if not available():
        return None
    try:
        return Plotter()
    except OSError:  # cannot start a process here: the summary says the plots are missing
        return None


def _submit(plotter: Plotter | None, data: SummaryInput, loss_path: Path, gpu_path: Path,
            result: SummaryResult) -> list[tuple[str, Path]]:
    """Hand the series to the drawing worker and link the plots it will draw (the markdown is rendered while it
    draws); without matplotlib, say so in the summary instead."""
    series, stats = data.ev.metrics, data.samples
    wanted: list[tuple[str, Path, str, list[array]]] = []
    title = _name(data)
    if series is not None and series.count:
        wanted.append(("loss", loss_path, f"{title} — loss ({series.path})", [series.steps, series.losses]))
    if stats is not None and stats.series:
        arrays = [a for gpu in sorted(stats.series) for a in (array("q", [gpu]), *stats.series[gpu])]
        wanted.append(("gpu", gpu_path, f"{title} — GPU utilisation and memory ({stats.path})", arrays))
    if plotter is None:
        if wanted:
            data.plot_note = PLOT_EXTRA
            result.notes.append(PLOT_EXTRA)
        return []
    for kind, path, plot_title, arrays in wanted:
        plotter.submit(kind, path, plot_title, arrays)
        setattr(data, f"{kind}_plot", path.name)
    return [(kind, path) for kind, path, _, _ in wanted]


def _collect(plotter: Plotter | None, jobs: list[tuple[str, Path]], data: SummaryInput,
             result: SummaryResult) -> bool:
    """Wait for the drawings; unlink any that failed and note why. True when a link had to be taken back."""
    if plotter is None or not jobs:
        return False
    failed = False
    for (kind, path), answer in zip(jobs, plotter.finish(), strict=True):
        if answer.get("ok"):
            result.plots.append(path)
            continue
        note = f"the {kind} plot was not drawn: {answer.get('error')}"
        setattr(data, f"{kind}_plot", None)
        data.plot_note = data.plot_note or note
        result.notes.append(note)
        failed = True
    return failed


def _text(data: SummaryInput, bodies: dict[str, str], existing: str | None, output: Path | None) -> str:
    """The whole file: the existing one with its owned blocks replaced, or a new document."""
    if existing is not None:
        return merge(existing, bodies, str(output))
    folder = data.ev.root.resolve().name
    own = data.milestone == folder
    return document(f"Run Summary: {folder}" if own else f"{data.milestone} Milestone Summary: {folder}", bodies)


def _outcome(report: RunReport) -> list[tuple[str, str, str]]:
    return [(g.id, g.status, g.message) for g in report.gates]


def summarize(run_dir: Path, output: Path | None, milestone: str | None = None, to_stdout: bool = False) -> \
        SummaryResult:
    """Verify `run_dir` and render its summary into `output` (default `<run_dir>/<run_id>_summary.md`), or only
    return the text with `to_stdout` (no plots then).

    A summary written into the run folder is evidence itself (verify checks its figures), so the gates are run
    again over the folder with it, reusing everything already parsed, and the header and gate table are
    rendered again until that changes nothing: the summary states what `audit verify` says of the folder it is
    in."""
    check_run_dir(run_dir)
    ev = RunEvidence(run_dir)
    output = None if to_stdout else output or default_output(run_dir)
    existing = None if to_stdout else _existing(output)
    plotter = None if to_stdout else _start_plotter()
    try:
        report = audit_run_dir(run_dir, list(REGISTRY), GateOptions(), strict=False, evidence=ev)
        samples: SampleStats | None = None
        if "gpu_samples.jsonl" in ev.files:
            samples = read_gpu_samples(ev.root / "gpu_samples.jsonl", "gpu_samples.jsonl", keep_series=not to_stdout)
        data = SummaryInput(ev=ev, report=report, facts=run_facts(ev, report), run_dir=run_dir.as_posix(),
                            milestone=milestone or milestone_of(run_dir.resolve().name), samples=samples)
        result = SummaryResult(text="", verdict=report.verdict, output=output)
        jobs: list[tuple[str, Path]] = []
        if output is not None:
            loss_path, gpu_path = plot_paths(output)
            output.parent.mkdir(parents=True, exist_ok=True)
            root = run_dir.resolve()
            mine = (output, loss_path, gpu_path)
            data.hidden = {relative_name(root, p.resolve()) for p in mine if is_within(p, root)}
            jobs = _submit(plotter, data, loss_path, gpu_path, result)
        bodies = blocks(data)
        if _collect(plotter, jobs, data, result):
            bodies.update({name: RENDERERS[name](data) for name in ("loss-curve", "gpu-utilisation")})
    finally:
        if plotter is not None:
            plotter.close()
    result.text = _text(data, bodies, existing, output)
    result.updated = existing is not None
    if output is None:
        return result
    write_atomic(output, result.text)
    for _ in range(SETTLE_ROUNDS if data.hidden else 0):  # written into the folder: verify it as it now stands
        ev.refresh(data.hidden)
        again = audit_run_dir(run_dir, list(REGISTRY), GateOptions(), strict=False, evidence=ev)
        if _outcome(again) == _outcome(data.report) and again.verdict == data.report.verdict:
            break
        data.report, result.verdict = again, again.verdict  # e.g. its own PASS status is now a success claim
        bodies.update({name: RENDERERS[name](data) for name in ("header", "quality-gates")})
        result.text = _text(data, bodies, existing, output)
        write_atomic(output, result.text)
    return result
