"""RunEvidence: one run folder, each kind of evidence parsed once and only when a gate asks for it."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from auditor.evidence.checkpoint import Checkpoint
from auditor.evidence.digests import SumsEntry, parse_sha256sums, sha256_files
from auditor.evidence.jsonload import JsonProblem, load_yaml
from auditor.evidence.logscan import (
    CRASH,
    CRASH_BYTES,
    CRASH_LITERALS,
    LOG_PATTERNS,
    TRACEBACK,
    TRACEBACK_BYTES,
    TRACEBACK_LITERALS,
    LogSignals,
    scan_log,
)
from auditor.evidence.metrics import (
    FinalRecord,
    MetricsSeries,
    Progress,
    flatten,
    infer_steps,
    last_progress,
)
from auditor.evidence.opener import EvidenceUnreadable, Folder, read_json_file
from auditor.evidence.paths import contained_path
from auditor.evidence.plan import normalize_device, plan_fields
from auditor.evidence.sources import CHECKPOINTS, METRICS
from auditor.evidence.sources.interface import Candidate, name_matches
from auditor.evidence.templates import TEMPLATE_SCAN_LIMIT, template_problem
from auditor.evidence.text import TextDoc
from auditor.models import Plan, RunManifest
from auditor.schemas import from_jsonable, to_jsonable, validation_errors

if TYPE_CHECKING:  # parsers for optional evidence are imported when a folder has that evidence
    from auditor.evidence.claims import SummaryClaims
    from auditor.evidence.envsnap import EnvFacts
    from auditor.evidence.nvsmi import GpuSnapshot, SampleStats
    from auditor.evidence.predictions import Predictions
    from auditor.evidence.ranks import RankRecord

_DEVICE_FLAG = re.compile(r"--device[= ]+['\"]?(cuda|gpu|tpu|cpu)\b", re.I)
RUN_FOLDER_MARKERS = (
    "run_manifest.json", "env_snapshot.json", "env_snapshot.txt", "gpu_snapshot.json", "gpu_snapshot.txt",
    "gpu_samples.jsonl", "training_log.txt", "eval_log.txt", "predictions.jsonl", "SHA256SUMS",
    "training_output",
)
# the manifest, and a model's own answers (a code model's prediction may well print a traceback)
NOT_OUTPUT_FILES = ("run_manifest.json", "predictions.jsonl")
NOT_OUTPUT_SUFFIXES = (".py", ".sh", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".md")  # code, configs, prose
TEXT_SUFFIXES = (".txt", ".log", ".md", ".json", ".jsonl", ".yaml", ".yml", ".cfg", ".toml", ".csv", ".sh", ".py",
                 ".env", ".ini", ".ipynb", ".out", ".err", "")


MAX_WALK_DEPTH = 32  # folder levels below the run folder that discovery enters


def is_run_folder(path: Path) -> bool:
    """A folder holding any run-folder file, or any file of a format `audit formats` lists, is a run folder,
    however broken."""
    try:
        names = set(os.listdir(path))
    except OSError:
        return False
    if names & set(RUN_FOLDER_MARKERS) or any(n.endswith(("_summary.md", "_config.yaml")) for n in names):
        return True
    evidence = RunEvidence(path)
    return bool(evidence.claimed or evidence.checkpoint_candidates)


@dataclass(frozen=True)
class Crash:
    """A failure signature at path:line, and what the run did after it (None: nothing, it ended there)."""

    path: str
    line: int
    text: str
    recovered: str | None = None


@dataclass(frozen=True)
class Symlink:
    """A symbolic link inside the folder and whether it leads out of it."""

    path: str
    target: str
    escapes: bool


@dataclass(frozen=True)
class ManifestDoc:
    """run_manifest.json as read: data, or why it could not be parsed (with line)."""

    data: Any
    error: str | None
    line: int | None


class RunEvidence:
    """The evidence of one run folder. Properties parse lazily and cache."""

    def __init__(self, root: Path, quick: bool = False) -> None:
        self.root = root
        self.quick = quick
        self._texts: dict[str, TextDoc | None] = {}
        self._heads: dict[str, bytes] = {}
        self._walk_cut: str | None = None
        self._walk_errors: list[tuple[str, str]] = []
        self._yaml: dict[str, tuple[Any, tuple[str, str, int | None] | None]] = {}
        self._inspected: dict[tuple[str, str], Checkpoint] = {}
        self._digests: dict[Path, tuple[int, int, str | None]] = {}

    def refresh(self, written: Iterable[str]) -> None:
        """Forget what depends on the folder listing and on files just `written` into it (a rendered summary):
        the next gate run sees them, while metrics, checkpoint headers and digests stay parsed."""
        for name in ("_walk", "folder", "summaries", "templates"):
            self.__dict__.pop(name, None)
        for rel in written:
            self._texts.pop(rel, None)

    def sha256(self, paths: Iterable[Path]) -> dict[Path, str | None]:
        """sha256 of files, each hashed once per evidence object unless its size or mtime changed."""
        stamps: dict[Path, tuple[int, int]] = {}
        for path in paths:
            try:
                info = path.stat()
            except OSError:
                stamps[path] = (-1, -1)
                continue
            stamps[path] = (info.st_size, info.st_mtime_ns)
        stale = [p for p, stamp in stamps.items() if self._digests.get(p, (None, None, None))[:2] != stamp]
        for path, digest in sha256_files(stale).items():
            self._digests[path] = (*stamps[path], digest)
        return {p: self._digests[p][2] for p in stamps}

    # -- files ---------------------------------------------------------------------------------------
    @cached_property
    def _walk(self) -> tuple[list[str], list[Symlink]]:
        files: list[str] = []
        links: list[Symlink] = []
        real_root = os.path.realpath(self.root)
        def unlisted(error: OSError) -> None:  # a folder that cannot be listed is reported, not skipped silently
            where = Path(error.filename).relative_to(self.root).as_posix() if error.filename else "."
            self._walk_errors.append((where, error.strerror or str(error)))

        for directory, dirnames, filenames in os.walk(self.root, followlinks=False, onerror=unlisted):
            rel_dir = Path(directory).relative_to(self.root).as_posix()
            for name in sorted(dirnames + filenames):
                full = Path(directory) / name
                rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                if full.is_symlink():
                    target = os.readlink(full)
                    real = os.path.realpath(full)
                    escapes = not (real == real_root or real.startswith(real_root + os.sep))
                    links.append(Symlink(rel, target, escapes))
                elif name in filenames:
                    files.append(rel)
            dirnames[:] = sorted(d for d in dirnames if not (Path(directory) / d).is_symlink())
            if dirnames and rel_dir.count("/") + (rel_dir != ".") >= MAX_WALK_DEPTH:
                self._walk_cut = self._walk_cut or f"{rel_dir}/{dirnames[0]}"
                dirnames[:] = []  # discovery is bounded: deeper folders are reported, not read
        return sorted(files), links

    @property
    def walk_cut(self) -> str | None:
        """The first folder the bounded walk did not enter (more than MAX_WALK_DEPTH levels down), if any."""
        return self._walk_cut if self._walk is not None else None

    @property
    def unlisted(self) -> list[tuple[str, str]]:
        """Folders the walk could not list (folder-relative path, why): their files were not read."""
        return self._walk_errors if self._walk is not None else []

    @property
    def files(self) -> list[str]:
        """Regular files, relative posix paths, sorted (symlinks excluded)."""
        return self._walk[0]

    @property
    def symlinks(self) -> list[Symlink]:
        """Symbolic links found in the folder."""
        return self._walk[1]

    def path(self, rel: str) -> Path:
        """Absolute path of a folder-relative path (caller ensures containment)."""
        return self.root / rel

    def first_existing(self, names: tuple[str, ...]) -> str | None:
        """The first of `names` that is a regular file in the folder."""
        present = set(self.files)
        return next((n for n in names if n in present), None)

    @cached_property
    def folder(self) -> Folder:
        """The folder as evidence sources see it (the one way they open files)."""
        return Folder(self.root, self.files, self._texts)

    def text(self, rel: str) -> TextDoc | None:
        """A decoded text file (cached)."""
        return self.folder.text(rel)

    def head(self, rel: str) -> bytes:
        """The first bytes of a file, for recognising its format (cached)."""
        if rel not in self._heads:
            self._heads[rel] = self.folder.head(rel)
        return self._heads[rel]

    def text_files(self) -> list[str]:
        """Files that hold text evidence (weights and other binaries excluded)."""
        return [f for f in self.files if Path(f).suffix.lower() in TEXT_SUFFIXES and not f.endswith(".safetensors")]

    # -- manifest and plan ---------------------------------------------------------------------------
    @cached_property
    def manifest(self) -> ManifestDoc | None:
        """run_manifest.json, parsed (None when absent)."""
        if "run_manifest.json" not in self.files:
            return None
        try:
            return ManifestDoc(read_json_file(self.root / "run_manifest.json", "run_manifest.json"), None, None)
        except EvidenceUnreadable as exc:
            return ManifestDoc(None, f"cannot be read ({str(exc).partition(': ')[2]})", None)
        except JsonProblem as exc:
            return ManifestDoc(None, exc.msg, exc.lineno)

    @cached_property
    def captured_by_audit_run(self) -> str | None:
        """A file only `audit run` writes (its NVML samples, its env_snapshot.json with host, cpu_count and the
        recorded variables), or None: a folder with one of them was recorded by `audit run`."""
        if "gpu_samples.jsonl" in self.files:
            return "gpu_samples.jsonl"
        if "env_snapshot.json" in self.files:
            from auditor.evidence.envsnap import snapshot_json

            if {"host", "cpu_count", "env"} <= set(snapshot_json(self.root)):
                return "env_snapshot.json"
        return None

    @property
    def is_auditor_manifest(self) -> bool:
        """True when the manifest declares our schema_version (else it is a team's own format)."""
        m = self.manifest
        return bool(m and isinstance(m.data, dict) and "schema_version" in m.data)

    @cached_property
    def manifest_errors(self) -> list[str]:
        """Schema violations of an auditor manifest, each naming its JSON path."""
        m = self.manifest
        if not self.is_auditor_manifest or m is None:
            return []
        return validation_errors("run_manifest", m.data)

    @cached_property
    def run_manifest(self) -> RunManifest | None:
        """The auditor manifest as a model, when it validates."""
        m = self.manifest
        if not self.is_auditor_manifest or self.manifest_errors or m is None:
            return None
        return from_jsonable(RunManifest, m.data)

    @cached_property
    def config_files(self) -> list[str]:
        """Config YAMLs at the folder root (`<name>_config.yaml`, `config.yaml`)."""
        return [f for f in self.files if "/" not in f and f.endswith((".yaml", ".yml"))]

    @cached_property
    def config_problems(self) -> list[tuple[str, str, int | None]]:
        """YAML files that do not parse: (path, problem, line)."""
        return [p for p in (self.load_yaml(f)[1] for f in self.config_files) if p is not None]

    def load_yaml(self, rel: str) -> tuple[Any, tuple[str, str, int | None] | None]:
        """A YAML file's data, or None and (path, problem, line) when it cannot be read or parsed (parsed once)."""
        if rel not in self._yaml:
            doc = self.text(rel)
            if doc is None:
                self._yaml[rel] = None, (rel, "cannot be read", None)
            else:
                try:
                    self._yaml[rel] = load_yaml(doc.text), None
                except JsonProblem as exc:
                    self._yaml[rel] = None, (rel, exc.msg, exc.lineno)
        return self._yaml[rel]

    @cached_property
    def plan(self) -> Plan:
        """The plan: auditor manifest first, then config YAMLs, a team manifest, trainer_state.json."""
        fields: dict[str, Any] = {}
        sources: dict[str, str] = {}
        if self.run_manifest is not None:
            declared = to_jsonable(self.run_manifest.plan)
            fields.update({k: v for k, v in declared.items() if k != "source" and v not in ({}, None)})
            sources.update({k: "run_manifest.json" for k in fields})
        layers: list[tuple[Any, str]] = [(self.load_yaml(f)[0], f) for f in self.config_files]
        if self.manifest and not self.is_auditor_manifest:
            layers.append((self.manifest.data, "run_manifest.json"))
        for data, source in layers:
            found, where = plan_fields(data, source)
            for key, value in found.items():
                if key not in fields:
                    fields[key] = value
                    sources[key] = where[key]
        if "device" not in fields and self.training_log is not None:
            for number, line in enumerate(self.training_log.lines, start=1):
                match = _DEVICE_FLAG.search(line)
                if match:
                    fields["device"] = normalize_device(match.group(1))
                    sources["device"] = f"{self.training_log.path}:{number}"
                    break
        for series in self._read_sources:  # plans the evidence formats declare (trainer_state max_steps, params)
            for key, value in series.plan.items():
                if key not in fields and value is not None:
                    fields[key] = value
                    sources[key] = series.path
        return Plan(**fields, source=sources)

    # -- logs ----------------------------------------------------------------------------------------
    @cached_property
    def log_files(self) -> list[str]:
        """Logs (logscan.LOG_PATTERNS: *log*.txt, *.log, slurm-*.out, *.out, *.err): training_log.txt first."""
        logs = [f for f in self.files if name_matches(f.lower(), LOG_PATTERNS) and not f.endswith(".ipynb")]
        return sorted(logs, key=lambda f: (f != "training_log.txt", f))

    @property
    def training_log(self) -> TextDoc | None:
        """training_log.txt (or the first log) decoded."""
        return self.text(self.log_files[0]) if self.log_files else None

    @cached_property
    def templates(self) -> dict[str, tuple[str, int | None]]:
        """Small text files left as templates: path → (why, line)."""
        found: dict[str, tuple[str, int | None]] = {}
        for rel in self.text_files():
            if self.folder.size(rel) > TEMPLATE_SCAN_LIMIT:
                continue
            doc = self.text(rel)
            # a manifest that validates says null where a run has no value yet (running, failed): not a template
            schema_nulls = rel == "run_manifest.json" and self.is_auditor_manifest and not self.manifest_errors
            problem = template_problem(doc, nulls_mean_template=not schema_nulls) if doc is not None else None
            if problem:
                found[rel] = problem
        return found

    @cached_property
    def log_signals(self) -> list[LogSignals]:
        """Signatures of every log that is not a template (a template's example lines prove nothing). A log's
        failure signatures come from the whole file (streamed up to textscan.SCAN_BYTES, a cut reported), not
        from its decoded first 64 MiB; any other text file (a stdout capture, a JSON result, a notebook) is
        scanned for a Python traceback, JSON escapes decoded."""
        from auditor.evidence.textscan import scan_file, unescaped

        out: list[LogSignals] = []
        for rel in self.log_files:
            doc = self.text(rel) if rel not in self.templates else None
            if doc is None:
                continue
            signals = scan_log(doc.lines, rel)
            scan = scan_file(self.folder, rel, CRASH_BYTES, CRASH_LITERALS, CRASH)
            signals.crashes = [(n, t.strip()[:160]) for n, t in scan.lines]
            signals.scan_cut = scan.cut_at
            out.append(signals)
        out += [scan_log(d.lines, d.path) for d in (METRICS[format_id].log_view(self.folder, rel)
                                                     for format_id, rel in self.format_logs) if d is not None]
        read = set(self.log_files) | {rel for _, rel in self.format_logs}
        skip = {s.path for s in self.summaries} | set(self.templates)
        # a metrics file's numbers-only records hold no text: only the lines its reader kept need scanning
        free_text = {s.path: s.free_text() for s in self.metrics_sources if s.kind == "metrics.jsonl"}
        for rel in self.text_files():
            if rel in read or rel in skip or rel.endswith(NOT_OUTPUT_SUFFIXES) or rel in NOT_OUTPUT_FILES:
                continue
            kept = free_text.get(rel)
            if kept is not None:
                hits = [(n, t) for n, t in [*kept, *unescaped(kept)] if TRACEBACK.search(t)]
                if hits:
                    out.append(LogSignals(path=rel, crashes=[(n, t.strip()[:160]) for n, t in hits]))
                continue
            scan = scan_file(self.folder, rel, TRACEBACK_BYTES, TRACEBACK_LITERALS, TRACEBACK)
            if scan.lines or scan.cut_at:
                out.append(LogSignals(path=rel, crashes=[(n, t.strip()[:160]) for n, t in scan.lines],
                                      scan_cut=scan.cut_at))
        return out

    @cached_property
    def crashes(self) -> list[Crash]:
        """Every failure signature in the folder's logs and outputs, each with what recovered from it: training
        that went on after it in the same file (a loss logged later, the final record, the progress bar further
        on) is a retry, a resume or a handled exception, not the run's end. A success banner after it is a claim,
        not training, and recovers nothing."""
        later: dict[str, tuple[int, str]] = {}

        def note(path: str, line: int | None, what: str) -> None:
            if line and line > later.get(path, (0, ""))[0]:
                later[path] = (line, what)

        for series in self.metrics_sources:
            if series.position == "line" and series.count:
                note(series.path, max(series.lines), "a loss logged")
        for final in self.final_records:
            note(final.path, final.line, "the final trainer record")
        if self.progress is not None and self.training_log is not None:
            note(self.training_log.path, self.progress.line, "the progress bar")
        found = []
        for signals in self.log_signals:
            for line, text in signals.crashes:
                after = later.get(signals.path)
                recovered = f"{after[1]} at {signals.path}:{after[0]}" if after and after[0] > line else None
                found.append(Crash(signals.path, line, text, recovered))
        return found

    @cached_property
    def format_logs(self) -> list[tuple[str, str]]:
        """(format id, file) of files of formats that are also logs (notebooks, MLPerf results), other than the
        *log* files already read as logs."""
        logs = set(self.log_files)
        return [(format_id, rel) for format_id, files in self.claimed.items() if METRICS[format_id].info.log
                for rel in files if rel not in logs and rel not in self.templates]

    @cached_property
    def progress(self) -> Progress | None:
        """The furthest progress-bar position in the training log."""
        log = self.training_log
        return last_progress(log.lines) if log else None

    # -- metrics -------------------------------------------------------------------------------------
    @cached_property
    def claimed(self) -> dict[str, list[str]]:
        """Format id → the files of the folder that metrics format reads (by name, then content)."""
        out: dict[str, list[str]] = {}
        for format_id, source in METRICS.items():
            files = [rel for rel in self.files
                     if name_matches(rel, source.info.looks_for) and source.claims(rel, self.head(rel))]
            if files:
                out[format_id] = source.select(files)
        return out

    @cached_property
    def _read_sources(self) -> list[MetricsSeries]:
        """Every series every metrics format read, in registry order (steps not yet inferred)."""
        found: list[MetricsSeries] = []
        for format_id, files in self.claimed.items():
            for rel in files:
                found.extend(METRICS[format_id].read(self.folder, rel))
        return found

    @cached_property
    def metrics_sources(self) -> list[MetricsSeries]:
        """Every metrics source found (metrics.jsonl, trainer_state.json, printed logs, TensorBoard, CSV, MLflow,
        MLPerf, ...); HF's printed dicts get their steps from the planned total."""
        sources = [s for s in self._read_sources if s.records or s.bad_count or s.outcome or s.evals]
        total = self.progress.total if self.progress else None
        total = total or (self.plan.max_steps if self.plan.max_steps else None)
        for series in sources:
            if series.rule == "hf_dict" and series.count and all(step < 0 for step in series.steps):
                infer_steps(series, total)
        return sources

    @cached_property
    def metrics(self) -> MetricsSeries | None:
        """The loss series to audit: the source with most loss points (earlier sources win ties)."""
        best: MetricsSeries | None = None
        for series in self.metrics_sources:
            if series.count and (best is None or series.count > best.count):
                best = series
        return best or next((s for s in self.metrics_sources if s.records), None)

    @cached_property
    def final_records(self) -> list[FinalRecord]:
        """Every end-of-training record: from each metrics source and from stray JSON metrics files."""
        chosen = self.metrics.run if self.metrics is not None else None
        finals = [s.final for s in self.metrics_sources if s.final is not None and s.run in (None, chosen)]
        for name in self.files:
            if "/" in name or not name.endswith(".json") or name == "run_manifest.json":
                continue
            try:
                data = read_json_file(self.root / name, name)
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and isinstance(data.get("metrics"), dict):
                series = MetricsSeries(path=name, kind="json")
                series.add(flatten(data), 0)
                if series.final is not None:
                    finals.append(series.final)
        return finals

    @cached_property
    def final_record(self) -> FinalRecord | None:
        """The trainer's final record: the chosen source's, completed with fields only other sources have
        (total_flos lives in metrics.jsonl, not in the printed dict). Disagreements are claims_consistent's."""
        chosen = self.metrics.final if self.metrics else None
        first = chosen or (self.final_records[0] if self.final_records else None)
        if first is None:
            return None
        values = dict(first.values)
        for other in self.final_records:
            for key, value in other.values.items():
                values.setdefault(key, value)
        return FinalRecord(values=values, path=first.path, line=first.line, step=first.step)

    @cached_property
    def evidence_max_step(self) -> int | None:
        """Highest step any metrics source or the progress bar shows."""
        steps = [s.max_step for s in self.metrics_sources if s.max_step is not None]
        steps += [f.step for f in self.final_records if f.step is not None]
        if self.progress:
            steps.append(self.progress.done)
        if self.checkpoint is not None and self.checkpoint.step is not None:
            steps.append(self.checkpoint.step)
        return max(steps) if steps else None

    @cached_property
    def independent_runs(self) -> list[MetricsSeries]:
        """Series of a folder that holds several independent runs, each with its recorded end (an MLPerf results
        folder's result_N.txt); empty for a folder of one run."""
        runs = [s for s in self.metrics_sources if s.run is not None and s.outcome is not None]
        by_kind: dict[str, set[str]] = {}
        for series in runs:
            by_kind.setdefault(series.kind, set()).add(str(series.run))
        # several runs of one format (not one run tracked by both MLflow and W&B)
        return [s for s in runs if len(by_kind[s.kind]) > 1]

    @cached_property
    def steps_taken(self) -> tuple[int | None, bool]:
        """Optimizer steps the evidence shows taken, and whether a source numbers its steps from 0 (it logged a loss
        at step 0, so its last step N means N + 1 steps: MLflow/TensorBoard loops over range(max_steps))."""
        reached = self.evidence_max_step
        zero_based = [s.max_step + 1 for s in self.metrics_sources
                      if s.max_step is not None and s.count and 0 in s.steps]
        if zero_based and (reached is None or max(zero_based) > reached):
            return max(zero_based), True
        return reached, False

    # -- other evidence ------------------------------------------------------------------------------
    @cached_property
    def checkpoint_candidates(self) -> list[Candidate]:
        """Every checkpoint of every format, the final one first: named final (final_model, last.ckpt, the
        `latest` tag), then by descending step, then in registry order."""
        found = [c for source in CHECKPOINTS.values() for c in source.find(self.folder)]
        order = {format_id: i for i, format_id in enumerate(CHECKPOINTS)}
        return sorted(found, key=lambda c: (not c.final, -(c.step if c.step is not None else -1),
                                            order[c.source], c.location))

    def inspect(self, candidate: Candidate) -> Checkpoint:
        """One checkpoint's structure, read from its bytes by its format (cached)."""
        key = (candidate.source, candidate.location)
        if key not in self._inspected:
            ckpt = self._inspected[key] = CHECKPOINTS[candidate.source].inspect(self.folder, candidate)
            for weights in ckpt.files:  # a format that hashed a file while checking it: never read it again
                digest, stamp = getattr(weights, "sha256", None), getattr(weights, "stamp", None)
                if digest and stamp:
                    self._digests.setdefault(self.root / weights.path, (*stamp, digest))
        return self._inspected[key]

    @cached_property
    def checkpoint(self) -> Checkpoint | None:
        """The final checkpoint's structure (headers only), None when the folder holds none."""
        candidates = self.checkpoint_candidates
        return self.inspect(candidates[0]) if candidates else None

    @cached_property
    def gpu_snapshot(self) -> GpuSnapshot | None:
        """gpu_snapshot.json (NVML), nvidia-smi text or `--query-gpu` CSV, by name, else by content (nvsmi)."""
        from auditor.evidence.nvsmi import find_gpu_snapshot, read_gpu_snapshot

        name = find_gpu_snapshot(self.files, self.head)
        return read_gpu_snapshot(self.folder, name) if name is not None else None

    @cached_property
    def ranks(self) -> list[RankRecord]:
        """Per-rank records of a torchrun launch (empty for a single-process run)."""
        from auditor.evidence.ranks import rank_files, read_rank

        return [read_rank(self.root / name, name) for name in rank_files(self.files)]

    @cached_property
    def gpu_samples(self) -> SampleStats | None:
        """NVML time series recorded by `audit run`."""
        if "gpu_samples.jsonl" not in self.files:
            return None
        from auditor.evidence.nvsmi import read_gpu_samples

        return read_gpu_samples(self.root / "gpu_samples.jsonl", "gpu_samples.jsonl")

    @cached_property
    def env(self) -> list[EnvFacts]:
        """Facts from every environment snapshot present, found by name, else by content (envsnap.env_files)."""
        from auditor.evidence.envsnap import env_files, read_env

        docs = (self.text(name) for name in env_files(self.files, self.head))
        return [read_env(doc) for doc in docs if doc is not None]

    def env_fact(self, key: str) -> tuple[str, str, int | None] | None:
        """(value, path, line) of one environment fact from any snapshot."""
        for facts in self.env:
            if key in facts.facts:
                return facts.facts[key], facts.path, facts.lines.get(key)
        return None

    @cached_property
    def summaries(self) -> list[SummaryClaims]:
        """Claims from `*_summary.md` and README.md at the folder root."""
        names = [f for f in self.files if "/" not in f and (f.endswith("_summary.md") or f == "README.md")]
        if not names:
            return []
        from auditor.evidence.claims import parse_summary

        docs = (self.text(n) for n in names)
        return [parse_summary(d.lines, d.path) for d in docs if d is not None]

    @cached_property
    def predictions(self) -> Predictions | None:
        """predictions.jsonl, streamed."""
        if "predictions.jsonl" not in self.files:
            return None
        from auditor.evidence.predictions import read_predictions

        return read_predictions(self.root / "predictions.jsonl", "predictions.jsonl")

    @cached_property
    def sha256sums(self) -> tuple[list[SumsEntry], list[int]] | None:
        """SHA256SUMS entries and its malformed lines."""
        if "SHA256SUMS" not in self.files:
            return None
        doc = self.text("SHA256SUMS")
        return parse_sha256sums(doc.lines) if doc else ([], [])

    def contained(self, rel: str) -> Path | None:
        """The one containment check, applied to this folder."""
        return contained_path(self.root, rel)
