"""`audit run`: make the folder, preflight, launch, capture, write the manifest, verify.

The manifest is written atomically with status `running` before launch and refreshed by a heartbeat; the final
outcome replaces it after the child ends, with every file's digest (`sealed_at`: a file added later is reported
by verify). Evidence is never lost: the log is appended as it arrives, metrics are flushed per line by
auditor.runtime, and a wrapper that dies leaves a `running` manifest that verify reports as abandoned. A
capture that cannot finish (the disk filled, the command could not start, a Ctrl-C while evidence is collected)
still replaces the `running` manifest, with the reason, and ends in one `Error:` line (exit 2).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from auditor.capture.environment import finish_probe, interpreter_of, snapshot, start_probe
from auditor.capture.files import LOCK_NAME, FolderLock, utc_now, write_json_atomic
from auditor.capture.git import capture_git
from auditor.capture.gpu import start_capture
from auditor.capture.outputs import MAX_ENTRIES, OutputWatch
from auditor.capture.process import ChildNotStarted, Interrupts, ProcessResult, run_child
from auditor.capture.torchrun import python_target, tidy_rank_logs, torchrun_command
from auditor.errors import AuditInputError
from auditor.evidence.digests import sha256_files
from auditor.evidence.secrets import redact
from auditor.models import Artifact, GitInfo, Outcome, Plan, RunManifest
from auditor.models.manifest import LeftoverProcess, RunStatus
from auditor.runtime import ENV_RUN_DIR, METRICS
from auditor.schemas import to_jsonable

if TYPE_CHECKING:
    from runners import Runner

HEARTBEAT_S = 15.0
MANIFEST = "run_manifest.json"
LOG = "training_log.txt"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class RunRequest:
    """What the user asked `audit run` for."""

    runner: str
    command: list[str] = field(default_factory=list)
    config: Path | None = None
    out: Path | None = None
    name: str | None = None
    device: str = "auto"
    nproc_per_node: int = 1
    evidence_only: bool = False
    capture_env: tuple[str, ...] = ()
    force: bool = False
    seed: int | None = None
    sample_interval: float = 1.0
    device_memory: str | None = None
    metrics_regex: str | None = None


@dataclass
class LaunchSpec:
    """What a runner built: the command, its environment additions, the plan and the seed."""

    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    plan: Plan = field(default_factory=Plan)
    seed: int | None = None


def run_folder(request: RunRequest) -> Path:
    """--out DIR, or submission_runs/<name>; refuses a non-empty folder (exit 2)."""
    if request.out is not None:
        folder = request.out
    else:
        name = request.name or f"{request.runner}_{utc_now()[:19].replace(':', '').replace('-', '')}"
        if not _RUN_ID.match(name):
            raise AuditInputError(f"--name {name!r} is not a folder name: use letters, digits, '.', '_', '-'")
        folder = Path("submission_runs") / name
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise AuditInputError(f"{folder} already exists and is not empty: a run folder holds one run; "
                              "choose another --out/--name")
    return folder


def _artifacts(folder: Path) -> list[Artifact]:
    """Every file of the folder (the manifest, the lock and temp files excepted) with its sha256, size and role:
    verify reports a file missing from this list as written after the run (sealed_at)."""
    files = []
    for directory, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames.sort()
        for name in filenames:
            path = Path(directory) / name
            ours = name == LOCK_NAME or (name.startswith(".") and name.endswith(".tmp")) or path == folder / MANIFEST
            if not ours and path.is_file() and not path.is_symlink():
                files.append(path)  # evidence is regular files: no links, no FIFOs (hashing one would block)
    files.sort()
    digests = sha256_files(files)
    out = []
    for path in files:
        digest = digests.get(path)
        if digest is None:
            continue
        rel = path.relative_to(folder).as_posix()
        out.append(Artifact(path=rel, sha256=digest, size=path.stat().st_size, role=_role(rel)))
    return out


def _role(rel: str) -> str:
    name = rel.rsplit("/", 1)[-1]
    if rel.endswith("metrics.jsonl"):
        return "metrics"
    if "/checkpoints/" in rel or "/final_model/" in rel:
        return "checkpoint"
    if rel.startswith("outputs/"):
        return "output"
    roles = {LOG: "log", "predictions.jsonl": "predictions", "eval_log.txt": "eval", "env_snapshot.json": "env",
             "gpu_snapshot.json": "gpu", "gpu_snapshot.txt": "gpu", "gpu_samples.jsonl": "gpu",
             "git_diff.patch": "diff"}
    if name in roles:
        return roles[name]
    return "config" if name.endswith((".yaml", ".yml")) else "other"


class ManifestWriter:
    """Owns run_manifest.json during a run: atomic writes, serialised with the heartbeat thread."""

    def __init__(self, folder: Path, manifest: RunManifest) -> None:
        self.path = folder / MANIFEST
        self.manifest = manifest
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def write(self) -> None:
        with self._lock:
            write_json_atomic(self.path, to_jsonable(self.manifest))

    def start_heartbeat(self, interval: float = HEARTBEAT_S) -> None:
        def beat() -> None:
            while not self._stop.wait(interval):
                self.manifest.outcome.heartbeat_at = utc_now()
                with contextlib.suppress(OSError):  # a full disk: the next beat retries, the final write reports
                    self.write()

        self._thread = threading.Thread(target=beat, name="audit-heartbeat", daemon=True)
        self._thread.start()

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def execute_run(request: RunRequest, runner: Runner, echo: Any = None) -> tuple[Path, ProcessResult]:
    """Run one training under capture; returns the folder and how the child ended. Raises AuditInputError
    (exit 2) for problems found before launch: a used folder, a failed preflight, a command that cannot start."""
    folder = run_folder(request)
    spec = runner.build(request)
    if request.nproc_per_node > 1:
        if not runner.supports_torchrun:
            raise AuditInputError(f"--nproc-per-node: the {runner.name} runner does not launch through torchrun "
                                  "(JAX starts its own processes); drop the option")
        python_target(spec.command)
    problems = runner.preflight(request, spec)
    device = spec.plan.device or request.device
    if device in ("cuda", "tpu"):
        from auditor.preflight import plan_fit

        try:
            problem = plan_fit(spec.plan, device, request.device_memory)
        except ValueError as exc:  # --device-memory that is not a size
            raise AuditInputError(f"--device-memory: {exc}") from None
        if problem:
            problems.append(problem)
    if problems and not request.force:
        raise AuditInputError("preflight: " + "; ".join(problems) + " (--force runs anyway)")
    folder.mkdir(parents=True, exist_ok=True)
    lock = FolderLock(folder)
    lock.acquire()
    try:
        return folder, _run_locked(request, runner, spec, folder, echo, lock)
    finally:
        lock.release()


def _run_locked(request: RunRequest, runner: Runner, spec: LaunchSpec, folder: Path, echo: Any,
                lock: FolderLock) -> ProcessResult:
    run_id = folder.name
    config_rel = None
    try:
        if request.config is not None:
            config_rel = f"{run_id}_config{request.config.suffix or '.yaml'}"
            shutil.copyfile(request.config, folder / config_rel)
        git = capture_git(Path.cwd(), folder)
    except OSError as exc:
        raise AuditInputError(f"cannot write into {folder}: {exc.strerror or exc}") from None
    command = spec.command
    if request.nproc_per_node > 1:
        command = torchrun_command(spec.command, request.nproc_per_node, folder)
    watch = OutputWatch(Path.cwd(), folder)
    started = utc_now()
    manifest = RunManifest(
        run_id=run_id, created_at=started, runner=request.runner, command=[redact(c) for c in command],
        config_path=config_rel, evidence_only=request.evidence_only, seed=spec.seed, plan=spec.plan,
        outcome=Outcome(status="running", started_at=started, heartbeat_at=started, host=socket.gethostname(),
                        wrapper_pid=os.getpid()),
        git=git if git is not None else GitInfo(),
    )
    writer = ManifestWriter(folder, manifest)
    with Interrupts() as interrupts:
        try:
            writer.write()
        except OSError as exc:
            raise AuditInputError(f"cannot write {writer.path}: {exc.strerror or exc}") from None
        result: ProcessResult | None = None
        try:
            writer.start_heartbeat()
            env = {**os.environ, **spec.env, ENV_RUN_DIR: str(folder.resolve()), "PYTHONUNBUFFERED": "1"}
            result, probe, gpu_facts = _launch(request, spec, folder, command, env, echo, interrupts)
            if result.capture_error is None:
                interrupts.collecting = True
                _warn_leftovers(result.leftovers)
                _seal(request, runner, spec, folder, writer, result, watch, env, probe, gpu_facts)
                return result
            failure: tuple[RunStatus, str] = ("failed", result.capture_error)
        except ChildNotStarted as exc:
            interrupts.finalising = True
            _record_end(writer, lock, None, "failed", f"cannot start {command[0]!r}: {exc}")
            raise AuditInputError(f"cannot start {command[0]!r}: {exc}") from None
        except KeyboardInterrupt as exc:
            failure = (result.status if result is not None else "interrupted",
                       f"audit run was interrupted ({exc or 'SIGINT'}) while collecting the evidence: no artifacts "
                       "recorded")
        except OSError as exc:  # the disk filled, or the folder went away: the evidence cannot be kept
            where = f"{exc.filename}: " if exc.filename else ""
            failure = ("failed", f"cannot write the run's evidence: {where}{exc.strerror or exc}")
        except Exception as exc:  # a bug, or a runner's refusal: still never leave the manifest `running`
            interrupts.finalising = True
            why = str(exc) if isinstance(exc, AuditInputError) else f"audit run failed: {type(exc).__name__}: {exc}"
            _record_end(writer, lock, result, "failed", why)
            raise
        interrupts.finalising = True
        raise AuditInputError(_record_end(writer, lock, result, *failure))


def _launch(request: RunRequest, spec: LaunchSpec, folder: Path, command: list[str], env: dict[str, str], echo: Any,
            interrupts: Interrupts) -> tuple[ProcessResult, list[subprocess.Popen[str] | str], dict[str, Any]]:
    """Start the GPU sampler and the status line, run the child, stop them again (whatever happened)."""
    sampler, gpu_facts = start_capture(folder, request.sample_interval)
    probe: list[subprocess.Popen[str] | str] = []

    def on_start(pid: int) -> None:
        if sampler is not None:
            sampler.start(pid)
        probe.append(start_probe(interpreter_of(spec.command), env))

    status = None
    if echo is None and sys.stdout.isatty():
        from auditor.capture.status import StatusLine

        status = StatusLine(sys.stdout.buffer, folder / METRICS, spec.plan.max_steps)
    try:
        result = run_child(command, env, Path.cwd(), folder / LOG, echo=echo or status or sys.stdout.buffer,
                           on_start=on_start, interrupts=interrupts)
    finally:
        if status is not None:
            with contextlib.suppress(OSError):
                status.close()
        if sampler is not None:
            gpu_facts["nvml_sampler"] = sampler.stop()
    return result, probe, gpu_facts


def _warn_leftovers(leftovers: list[LeftoverProcess] | None) -> None:
    if not leftovers:
        return
    shown = "; ".join(f"pid {p.pid}: {p.command or '?'}"[:120] for p in leftovers[:3])
    more = f" (+{len(leftovers) - 3} more)" if len(leftovers) > 3 else ""
    print(f"audit run: warning: {len(leftovers)} process(es) of the training still ran after it ended and were "
          f"sent SIGTERM ({shown}{more}); recorded in run_manifest.json outcome.leftover_processes",
          file=sys.stderr, flush=True)


def _seal(request: RunRequest, runner: Runner, spec: LaunchSpec, folder: Path, writer: ManifestWriter,
          result: ProcessResult, watch: OutputWatch, env: dict[str, str], probe: list[subprocess.Popen[str] | str],
          gpu_facts: dict[str, Any]) -> None:
    """After the child: collect the runner's and the working directory's evidence, the environment, and write the
    final manifest with every file's digest (the folder is sealed: a file added later is reported by verify)."""
    manifest = writer.manifest
    writer.stop_heartbeat()
    tidy_rank_logs(folder)
    facts = runner.collect(request, spec, folder)
    brought = watch.collect(folder)
    if brought:
        facts["outputs_collected"] = f"{len(brought)} file(s) the command wrote into {Path.cwd()}, under outputs/"
    if watch.truncated:
        facts["outputs_scan"] = f"stopped after {MAX_ENTRIES} entries of the working directory"
    env_doc = snapshot(finish_probe(probe[0]) if probe else {"probe_error": "the training never started"}, env,
                       request.capture_env)
    env_doc.update(facts)
    env_doc.update(gpu_facts)
    env_doc["wrapper"] = {"python": sys.version.split()[0], "cpu_seconds": result.cpu_seconds,
                          "peak_rss_mib": result.peak_rss_mib}
    env_doc["world_size"] = request.nproc_per_node
    env_doc["launcher"] = "torchrun" if request.nproc_per_node > 1 else "direct"
    write_json_atomic(folder / "env_snapshot.json", env_doc)
    manifest.environment = {k: v for k, v in env_doc.items() if isinstance(v, (str, int, float, bool))}
    manifest.outcome = _outcome(manifest.outcome, result, result.status, result.reason)
    manifest.sealed_at = utc_now()
    manifest.artifacts = _artifacts(folder)
    writer.write()


def _outcome(running: Outcome, result: ProcessResult | None, status: RunStatus, reason: str | None) -> Outcome:
    now = utc_now()
    return Outcome(status=status, exit_code=result.exit_code if result else None,
                   signal=result.signal if result else None, started_at=running.started_at, ended_at=now,
                   heartbeat_at=now, wall_seconds=result.wall_seconds if result else None, host=running.host,
                   wrapper_pid=os.getpid(), reason=reason, leftover_processes=result.leftovers if result else None)


def _record_end(writer: ManifestWriter, lock: FolderLock, result: ProcessResult | None, status: RunStatus,
                reason: str) -> str:
    """Replace the `running` manifest with how the run ended when its capture could not finish, without artifacts
    (nothing is sealed); returns the `Error:` message. The lock goes first: its reserved blanks make room for
    this write on a full disk (the folder is not empty, so no other run can start in it meanwhile)."""
    writer.stop_heartbeat()
    lock.release()
    manifest = writer.manifest
    manifest.outcome = _outcome(manifest.outcome, result, status, reason)
    manifest.artifacts, manifest.sealed_at = [], None
    try:
        writer.write()
    except OSError as exc:
        return (f"{writer.path.parent}: {reason}; run_manifest.json could not be updated either "
                f"({exc.strerror or exc}): it still says running, and verify reports the run abandoned")
    return f"{writer.path.parent}: {reason}; run_manifest.json records the run as {status}"
