"""Hostile-folder fuzzer for `audit verify` (not part of the pytest run).

    python bench/fuzz_verify.py [--cases 100000] [--seed 0] [--workers 1] [--time-limit-per-case 20]
                                [--cli-every 500] [--heavy-rate 0.002]
    python bench/fuzz_verify.py --seed 0 --replay 1234 [--keep /tmp/case]   # one case, with tracebacks

Each case builds a hostile run folder with tests/hostile.py (a copied base folder + seeded mutations), audits it
in process through auditor.verify.execute and renders every report format; every --cli-every'th case also goes
through the real CLI in a subprocess. Defects: an exception other than AuditInputError escaping execute/render,
a gate result holding auditor.verify.INTERNAL_ERROR (a gate that raised), a case past the time limit (a hang),
anything written in the audited folder, and CLI contract breaches (exit not 0/1/2, a traceback, "internal
error", exit 2 without exactly one `Error:` line). Case I of seed S is rebuilt exactly from (S, I).

Cases run in worker processes (fork), each with a SIGALRM per case (the traceback says where it hung) and a
faulthandler dump plus a parent-side kill as backstops for hangs that no signal interrupts. Running as root, the
workers drop DAC override (and the CLI runs as uid 65534 or without DAC override), so chmod 000 files bite.
Exit 0: no defect; 1: defects; 2: only harness errors (the generator raised).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import faulthandler
import multiprocessing
import os
import random
import re
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import hostile  # noqa: E402

FORMATS = ("text", "json", "junit", "markdown", "github")


class CaseTimeout(BaseException):
    """Raised by SIGALRM in a case: a BaseException, so no `except Exception` in a gate can swallow it."""


@dataclass
class Defect:
    """One defect of one case: its kind, a signature to group equal bugs, and the detail to read."""

    kind: str
    signature: str
    detail: str


@dataclass
class CaseResult:
    """What one case did."""

    index: int
    spec: str
    outcome: str = "?"
    seconds: float = 0.0
    build_seconds: float = 0.0
    total_seconds: float = 0.0
    mutations: tuple[str, ...] = ()
    defects: list[Defect] = field(default_factory=list)
    harness_error: str | None = None
    worker_exit: bool = False


def case_spec(seed: int, index: int, heavy_rate: float) -> hostile.HostileSpec:
    """The spec of case `index` under `seed` (independent of workers and of which cases ran before)."""
    return hostile.random_spec(random.Random(f"fuzz-verify:{seed}:{index}"), heavy_rate=heavy_rate)


def cli_choice(seed: int, index: int) -> tuple[str, str]:
    """Format and GITHUB_STEP_SUMMARY kind (none, file, unwritable) for a case's CLI run."""
    rng = random.Random(f"fuzz-cli:{seed}:{index}")
    fmt = rng.choice(FORMATS)
    summary = rng.choice(("none", "file", "file", "unwritable")) if fmt == "github" else "none"
    return fmt, summary


def cli_env(summary: str, scratch: Path) -> dict[str, str]:
    """GITHUB_STEP_SUMMARY for a CLI run: unset, a writable file outside the folder, or an unwritable path."""
    if summary == "file":
        return {"GITHUB_STEP_SUMMARY": str(scratch / "step_summary.md")}
    if summary == "unwritable":
        return {"GITHUB_STEP_SUMMARY": str(scratch / "no-such-dir" / "summary.md")}
    return {}


def auditor_frame(tb: traceback.StackSummary | list[traceback.FrameSummary]) -> str:
    """The innermost frame inside auditor/ as path:line (where to look), else the innermost frame."""
    frames = list(tb)
    for frame in reversed(frames):
        if f"{os.sep}auditor{os.sep}" in frame.filename:
            return f"{Path(frame.filename).relative_to(ROOT)}:{frame.lineno} in {frame.name}"
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"


def compact_traceback(exc: BaseException) -> str:
    """The exception line, then the auditor/ frames of its traceback, innermost last (library frames dropped)."""
    frames = [f"  {Path(f.filename).relative_to(ROOT)}:{f.lineno} in {f.name}: {(f.line or '').strip()[:100]}"
              for f in traceback.extract_tb(exc.__traceback__) if f"{os.sep}auditor{os.sep}" in f.filename]
    return "\n".join([f"{type(exc).__name__}: {str(exc)[:300]}", *frames[-10:]])


def exception_defect(kind: str, exc: BaseException) -> Defect:
    """A defect from an exception: signature = type + innermost auditor frame."""
    where = auditor_frame(traceback.extract_tb(exc.__traceback__))
    return Defect(kind, f"{type(exc).__name__} at {where}", compact_traceback(exc))


def debug_traceback(path: Path, limit: float) -> tuple[str, str]:
    """Re-run verify with debug=True (a gate's bug raises) for the traceback behind an INTERNAL_ERROR:
    (exception type at innermost auditor frame, compact traceback)."""
    from auditor.verify import VerifyOptions, execute

    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        execute(VerifyOptions(run_dirs=[path], debug=True))
    except CaseTimeout:
        return "?", "(debug re-run timed out)"
    except Exception as exc:
        return f"{type(exc).__name__} at {auditor_frame(traceback.extract_tb(exc.__traceback__))}", \
            compact_traceback(exc)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return "?", "(debug re-run raised nothing)"


_INTERNAL = re.compile(r"^(\w+): internal error in this gate: (\w+)")


def run_case(index: int, opts: argparse.Namespace, scratch: Path, cache: hostile.BaseCache) -> CaseResult:
    """Build, audit in process, check the folder is unchanged, maybe run the CLI; never raises."""
    spec = case_spec(opts.seed, index, opts.heavy_rate)
    result = CaseResult(index, spec.describe(), mutations=tuple(m for m, _ in spec.mutations))
    case_dir = scratch / f"case-{index}"
    case_dir.mkdir()
    began = time.perf_counter()
    # armed for the build too: a generator that blocks (a write into a FIFO) is reported, as a harness error
    faulthandler.dump_traceback_later(opts.time_limit_per_case + 5, exit=True, file=opts.dump_file)
    try:
        start = time.perf_counter()
        try:
            folder = hostile.materialize(spec, case_dir, cache).path
        except Exception as exc:
            result.harness_error = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-6:])
            return result
        result.build_seconds = time.perf_counter() - start
        audit_case(folder, opts, result)
        if opts.cli_every and index % opts.cli_every == 0 and not result.worker_exit:
            cli_case(folder, opts, index, scratch, result)
    finally:
        faulthandler.cancel_dump_traceback_later()
        try:
            hostile.remove_tree(case_dir)
        except OSError as exc:
            result.harness_error = f"cleanup failed: {exc}"
        result.total_seconds = time.perf_counter() - began
    return result


def audit_case(folder: Path, opts: argparse.Namespace, result: CaseResult) -> None:
    """The in-process audit under a per-case alarm, with the before/after snapshot."""
    before = hostile.tree_snapshot(folder)
    start = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, opts.time_limit_per_case)
    faulthandler.dump_traceback_later(opts.time_limit_per_case + 5, exit=True, file=opts.dump_file)
    report = None
    try:
        result.outcome, report = hostile.audit_and_render(folder)
    except CaseTimeout as exc:
        result.outcome = "hang"
        defect = exception_defect("hang", exc)
        result.defects.append(Defect("hang", defect.signature.replace("CaseTimeout at ", ""),
                                     f"no result within {opts.time_limit_per_case}s\n{defect.detail}"))
        result.worker_exit = True  # the interrupted audit may have left threads or pools behind
    except Exception as exc:
        result.outcome = "exception"
        result.defects.append(exception_defect("exception", exc))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    result.seconds = time.perf_counter() - start
    if result.outcome != "hang" and result.seconds > opts.time_limit_per_case:
        result.defects.append(Defect("hang", "past the time limit (alarm missed)", f"{result.seconds:.1f}s"))
    if report is not None:
        errors = hostile.internal_errors(report)
        if errors:
            record_internal_errors(errors, folder, opts, result)
    changes = hostile.snapshot_changes(before, hostile.tree_snapshot(folder))
    if changes:
        result.defects.append(Defect("folder_changed", changes[0].split(":")[0][:80], "\n".join(changes)))


def record_internal_errors(errors: list[str], folder: Path, opts: argparse.Namespace, result: CaseResult) -> None:
    """One defect per exception type among the gates' INTERNAL_ERROR results, located by a debug re-run."""
    debug_where, debug_tb = debug_traceback(folder, opts.time_limit_per_case)
    gates: dict[str, list[str]] = {}
    for error in errors:
        match = _INTERNAL.match(error)
        if match:  # no_false_success quoting another gate's internal error does not match: counted there
            gates.setdefault(match.group(2), []).append(match.group(1))
    for kind, ids in gates.items():
        if debug_where.startswith(kind + " "):
            signature, detail = debug_where, debug_tb
        else:
            signature, detail = f"{kind} in gate {ids[0]}", next(e for e in errors if f": {kind}" in e)[:600]
        result.defects.append(Defect("internal_error", signature, f"gates: {', '.join(ids)}\n{detail}"))


def cli_case(folder: Path, opts: argparse.Namespace, index: int, scratch: Path, result: CaseResult) -> None:
    """The real CLI over the same folder: exit 0/1/2, no traceback, no internal error, one `Error:` line."""
    fmt, summary = cli_choice(opts.seed, index)
    env = cli_env(summary, scratch)
    before = hostile.tree_snapshot(folder)
    run = hostile.run_cli(["verify", folder, "--format", fmt], timeout=opts.time_limit_per_case * 3,
                          unprivileged=True, env=env)
    problems = run.problems()
    for problem in problems:
        signature = re.sub(r"\d+", "N", problem.split(":")[0])
        error = next((line for line in run.stderr.splitlines() if line.startswith("Error:")), "")
        result.defects.append(Defect("cli", f"{signature} ({fmt}, summary={summary}) {error[:100]}",
                                     f"{problem}\n{run.tail(1200)}"))
    changes = hostile.snapshot_changes(before, hostile.tree_snapshot(folder))
    if changes:
        result.defects.append(Defect("folder_changed", "cli: " + changes[0].split(":")[0][:80], "\n".join(changes)))


def _on_alarm(signum: int, frame: Any) -> None:
    raise CaseTimeout()


def worker_main(conn: Connection, opts: argparse.Namespace, worker_id: int, workdir: Path) -> None:
    """Run the cases the parent sends until it sends None (or a hang makes this worker stale)."""
    os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGALRM, _on_alarm)
    if opts.drop_privileges:
        hostile.drop_dac_capabilities()
    scratch = Path(tempfile.mkdtemp(prefix=f"w{worker_id}-", dir=workdir))
    cache = hostile.BaseCache(scratch / "bases")
    cases = scratch / "cases"
    cases.mkdir()
    opts.dump_file = open(workdir / f"w{worker_id}.dump", "w")  # noqa: SIM115 (faulthandler needs it open)
    try:
        while True:
            index = conn.recv()
            if index is None:
                break
            opts.dump_file.seek(0)
            opts.dump_file.truncate()
            result = run_case(index, opts, cases, cache)
            conn.send(result)
            if result.worker_exit:
                break
    finally:
        opts.dump_file.close()
        with contextlib.suppress(OSError):
            hostile.remove_tree(scratch)


@dataclass
class Worker:
    """A worker process, its pipe and the case it is running."""

    process: multiprocessing.process.BaseProcess
    conn: Connection
    case: int | None = None
    started: float = 0.0


class Summary:
    """Counts, defects grouped by signature, timings."""

    def __init__(self) -> None:
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.mutations: collections.Counter[str] = collections.Counter()
        self.defective_mutations: collections.Counter[str] = collections.Counter()
        self.defects: dict[tuple[str, str], list[tuple[int, str, str]]] = {}
        self.harness: list[tuple[int, str, str]] = []
        self.slowest: list[tuple[float, int, str]] = []
        self.done = 0
        self.cases_with_defects = 0
        self.hang_seconds = 0.0
        self.costs: list[tuple[float, float, float]] = []  # (case, audit, build) seconds of cases that did not hang

    def add(self, result: CaseResult) -> None:
        """Fold one case in."""
        self.done += 1
        self.outcomes[result.outcome] += 1
        self.mutations.update(set(result.mutations))
        if result.harness_error:
            self.harness.append((result.index, result.spec, result.harness_error))
        if result.defects:
            self.cases_with_defects += 1
            self.defective_mutations.update(set(result.mutations))
        for defect in result.defects:
            self.defects.setdefault((defect.kind, defect.signature), []).append(
                (result.index, result.spec, defect.detail))
        if result.outcome in ("hang", "harness"):
            self.hang_seconds += max(result.total_seconds, result.seconds)
        else:
            self.costs.append((result.total_seconds, result.seconds, result.build_seconds))
        self.slowest.append((result.seconds, result.index, result.spec))
        self.slowest = sorted(self.slowest, reverse=True)[:5]


def dispatch(opts: argparse.Namespace, workdir: Path) -> tuple[Summary, float]:
    """Run the cases over the workers, replacing any that hangs or dies; print progress."""
    ctx = multiprocessing.get_context("fork")
    summary = Summary()
    queue = collections.deque(range(opts.start, opts.start + opts.cases))
    workers: dict[int, Worker] = {}
    start = last = time.perf_counter()

    def feed(worker_id: int) -> None:
        worker = workers[worker_id]
        worker.case = queue.popleft() if queue else None
        worker.started = time.perf_counter()
        worker.conn.send(worker.case)

    def spawn(worker_id: int) -> None:
        if not queue:
            return
        parent, child = ctx.Pipe()
        process = ctx.Process(target=worker_main, args=(child, opts, worker_id, workdir), daemon=True)
        process.start()
        child.close()
        workers[worker_id] = Worker(process, parent)
        feed(worker_id)

    def lost(worker_id: int, why: str) -> None:
        worker = workers.pop(worker_id)
        if worker.process.is_alive() and worker.process.pid:
            os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process.join(10)
        worker.conn.close()
        if worker.case is None:
            return
        dump = (workdir / f"w{worker_id}.dump").read_text(errors="replace")
        frames = [line.strip() for line in dump.splitlines() if "/auditor/" in line]
        spec = case_spec(opts.seed, worker.case, opts.heavy_rate)
        result = CaseResult(worker.case, spec.describe(), outcome="hang", seconds=time.perf_counter() - worker.started,
                            mutations=tuple(m for m, _ in spec.mutations))
        if frames:
            result.defects.append(Defect("hang", f"{why}: {frames[0]}", dump[-2500:]))
        else:  # stuck in the generator or the harness itself, not in verify
            result.outcome = "harness"
            result.harness_error = f"{why}, outside auditor/:\n{dump[-2500:]}"
        summary.add(result)

    for worker_id in range(opts.workers):
        spawn(worker_id)
    while workers:
        ready = wait([w.conn for w in workers.values()], timeout=1.0)
        for worker_id, worker in list(workers.items()):
            if worker.conn in ready:
                try:
                    result: CaseResult = worker.conn.recv()
                except (EOFError, OSError):
                    lost(worker_id, "worker died")
                    spawn(worker_id)
                    continue
                summary.add(result)
                if result.worker_exit:
                    worker.case = None
                    lost(worker_id, "stale")
                    spawn(worker_id)
                else:
                    feed(worker_id)
            elif worker.case is not None:
                cli = opts.cli_every and worker.case % opts.cli_every == 0
                budget = opts.time_limit_per_case * (5 if cli else 2) + 30
                if time.perf_counter() - worker.started > budget:
                    lost(worker_id, f"killed after {budget:.0f}s")
                    spawn(worker_id)
        now = time.perf_counter()
        if now - last >= opts.progress_every:
            last = now
            print(progress_line(summary, now - start, opts.cases), flush=True)
    seconds = time.perf_counter() - start
    print(progress_line(summary, seconds, opts.cases), flush=True)
    return summary, seconds


def progress_line(summary: Summary, seconds: float, total: int) -> str:
    """One progress line."""
    rate = summary.done / seconds if seconds else 0.0
    classes = " ".join(f"{k} {v}" for k, v in sorted(summary.outcomes.items()))
    return (f"[{seconds:7.1f}s] {summary.done}/{total} cases {rate:6.1f}/s | {classes} | "
            f"defects {sum(len(v) for v in summary.defects.values())} in {summary.cases_with_defects} cases")


def report(summary: Summary, seconds: float, opts: argparse.Namespace) -> int:
    """Print the final summary; the exit code."""
    print(f"\n== fuzz_verify: {summary.done} cases, seed {opts.seed}, {opts.workers} worker(s), "
          f"{seconds:.1f}s, {summary.done / seconds if seconds else 0:.1f} cases/s")
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.outcomes.items())))
    if summary.costs:
        n = len(summary.costs)
        case, audit, build = (sum(c[i] for c in summary.costs) / n for i in range(3))
        p50 = sorted(c[1] for c in summary.costs)[n // 2]
        print(f"cost per case (the {n} that did not hang): {case * 1000:.0f} ms mean = audit+render {audit * 1000:.0f} "
              f"ms (p50 {p50 * 1000:.0f} ms) + build {build * 1000:.0f} ms + snapshots/cleanup/CLI; "
              f"{summary.hang_seconds:.0f} worker-seconds went to hangs")
        hours = 100_000 * case / opts.workers / 3600
        print(f"  at that cost, 100,000 cases on {opts.workers} worker(s) take {hours:.1f} h (plus hangs); "
              f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("slowest: " + "; ".join(f"case {i} {s:.2f}s" for s, i, _ in summary.slowest))
    if summary.slowest:
        print(f"  slowest spec: {summary.slowest[0][2]}")
    rates = sorted(((summary.defective_mutations[m] / n, m, n) for m, n in summary.mutations.items()), reverse=True)
    print("cases with a defect, by mutation: " + ", ".join(f"{m} {r:.0%} of {n}" for r, m, n in rates if r))
    by_kind = collections.Counter({k: 0 for k, _ in summary.defects})
    for (kind, _), hits in summary.defects.items():
        by_kind[kind] += len(hits)
    print("defects by kind: " + (", ".join(f"{k} {v}" for k, v in by_kind.most_common()) or "none"))
    for (kind, signature), hits in sorted(summary.defects.items(), key=lambda kv: (kv[0][0], -len(kv[1]))):
        cases = ", ".join(str(i) for i, _, _ in hits[:5])
        print(f"\n[{kind}] x{len(hits)}  {signature}\n  cases: {cases}  (replay: python bench/fuzz_verify.py "
              f"--seed {opts.seed} --replay {hits[0][0]})\n  spec: {hits[0][1]}")
        print("  " + "\n  ".join(hits[0][2].strip().splitlines()[-opts.detail_lines:]))
    for index, spec, error in summary.harness[:5]:
        print(f"\n[harness error] case {index}: {spec}\n{error}")
    if summary.defects:
        return 1
    return 2 if summary.harness else 0


def replay(opts: argparse.Namespace) -> int:
    """Rebuild one case, show what it is, audit it with debug tracebacks, run the CLI over it."""
    parent = Path(opts.keep) if opts.keep else Path(tempfile.mkdtemp(prefix="fuzz-replay-"))
    parent.mkdir(parents=True, exist_ok=True)
    try:
        replay_in(parent, opts)
    finally:
        if not opts.keep:
            hostile.remove_tree(parent)
    return 0


def replay_in(parent: Path, opts: argparse.Namespace) -> None:
    """replay, with the folder built under `parent`."""
    from auditor.verify import VerifyOptions, execute

    spec = case_spec(opts.seed, opts.replay, opts.heavy_rate)
    folder = hostile.materialize(spec, parent)
    print(f"case {opts.replay}: {spec.describe()}\nfolder: {folder.path}")
    for note in folder.notes:
        print(f"  - {note[:300]}")
    signal.signal(signal.SIGALRM, _on_alarm)
    before = hostile.tree_snapshot(folder.path)
    start = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, opts.time_limit_per_case)
    try:
        report_ = execute(VerifyOptions(run_dirs=[folder.path], debug=True))
        outcome, _ = hostile.audit_and_render(folder.path)
        print(f"in process: {outcome} in {time.perf_counter() - start:.2f}s")
        for run_report in report_.runs:
            for gate in run_report.gates:
                print(f"  {gate.id:22s} {gate.status:5s} {gate.message[:200]}")
    except CaseTimeout:
        print(f"HANG: no result within {opts.time_limit_per_case}s")
        traceback.print_exc()
    except Exception:
        traceback.print_exc()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    changes = hostile.snapshot_changes(before, hostile.tree_snapshot(folder.path))
    print("folder changed: " + ("; ".join(changes) if changes else "no"))
    fmt, summary = cli_choice(opts.seed, opts.replay)
    cli = hostile.run_cli(["verify", folder.path, "--format", fmt], timeout=opts.time_limit_per_case * 3,
                          unprivileged=True, env=cli_env(summary, parent))
    print(f"CLI ({fmt}, GITHUB_STEP_SUMMARY {summary}): {cli.problems() or 'ok'}\n{cli.tail(2000)}")


def warm_up(workdir: Path) -> None:
    """Audit and render one plausible folder here, so every forked worker starts with the lazy imports done."""
    import auditor.render.github
    import auditor.render.json_report
    import auditor.render.junit
    import auditor.render.markdown
    import auditor.render.text  # noqa: F401

    for base in hostile.BASES:
        hostile.audit_and_render(hostile.write_base(workdir / "warm" / base / "run_v1", base))
    hostile.remove_tree(workdir / "warm")


def main() -> int:
    """Parse options, run the cases (or replay one), print the summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=int, default=0, help="first case index (cases are START..START+N-1)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--time-limit-per-case", type=float, default=20.0)
    parser.add_argument("--cli-every", type=int, default=500, help="every Nth case also through the CLI (0: never)")
    parser.add_argument("--heavy-rate", type=float, default=0.002,
                        help="share of cases that add a 2 GiB sparse file or a 1,500-deep tree")
    parser.add_argument("--progress-every", type=float, default=10.0, help="seconds between progress lines")
    parser.add_argument("--detail-lines", type=int, default=14, help="lines of detail per distinct defect")
    parser.add_argument("--no-drop-privileges", dest="drop_privileges", action="store_false",
                        help="as root, keep DAC override in the workers (chmod 000 then never bites in process)")
    parser.add_argument("--replay", type=int, help="rebuild and audit only case REPLAY, verbosely")
    parser.add_argument("--keep", help="with --replay: build the folder under this directory and keep it")
    opts = parser.parse_args()
    if opts.replay is not None:
        return replay(opts)
    workdir = Path(tempfile.mkdtemp(prefix="fuzz-verify-"))
    warm_up(workdir)
    print(f"fuzz_verify: {opts.cases} cases from {opts.start}, seed {opts.seed}, {opts.workers} worker(s), "
          f"limit {opts.time_limit_per_case}s/case, CLI every {opts.cli_every}, heavy rate {opts.heavy_rate}, "
          f"unprivileged CLI: {hostile.unprivileged_mode() or 'n/a'}, work dir {workdir}", flush=True)
    try:
        summary, seconds = dispatch(opts, workdir)
    finally:
        hostile.remove_tree(workdir)
    return report(summary, seconds, opts)


if __name__ == "__main__":
    sys.exit(main())
