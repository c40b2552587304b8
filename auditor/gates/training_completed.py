"""training_completed: the planned end was reached."""

from __future__ import annotations

import socket
from datetime import datetime, timezone

from auditor.capture.files import pid_alive
from auditor.evidence.metrics import MetricsSeries
from auditor.evidence.ranks import RankRecord
from auditor.evidence.run import RunEvidence
from auditor.gates.base import GateContext, Results, gate, ref, where
from auditor.models import EvidenceRef, GateResult

R = Results("training_completed")
ABANDONED_AFTER_S = 600


def _wrapper_gone(host: str | None, pid: int | None) -> bool:
    """The recorded wrapper ran on this host and its process no longer exists."""
    return bool(host) and pid is not None and host == socket.gethostname() and not pid_alive(pid)


def _age_seconds(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return (datetime.now(timezone.utc) - when).total_seconds()


def _blame(rank: RankRecord) -> int:
    """Root cause first: a rank that exited with its own error, then one killed outright, then the ranks
    torchrun stopped with SIGTERM because another failed."""
    if rank.status == "exited" and rank.exit_code not in (0, 143):
        return 0
    return 1 if rank.status != "exited" else 2


def _failed_ranks(ranks: list[RankRecord]) -> list[RankRecord]:
    """Ranks that did not exit 0, root cause first."""
    return sorted((r for r in ranks if r.status != "exited" or r.exit_code != 0), key=_blame)


def _rank_end(rank: RankRecord) -> str:
    """How a failed rank ended, in words."""
    if rank.status != "exited":
        return f"never recorded its exit (its record says {rank.status!r}): it was killed or crashed hard"
    return f"exited {rank.exit_code}" + (f": {rank.error}" if rank.error else "")


def _rank_problem(ev: RunEvidence) -> GateResult | None:
    """Under torchrun every rank must have started and exited 0, and a rank that logged steps must have logged
    as far as the plan; the world size comes from the manifest, else from the rank records themselves."""
    ranks = ev.ranks
    manifest = ev.run_manifest
    recorded = manifest.environment.get("world_size") if manifest is not None else None
    world = recorded if isinstance(recorded, int) and not isinstance(recorded, bool) else None
    if world is None:
        world = max((r.world_size or 0 for r in ranks), default=0)
    if world <= 1 and not ranks:
        return None
    missing = sorted(set(range(world)) - {r.rank for r in ranks})
    if missing:
        return R("fail", f"{world} ranks launched but rank(s) {', '.join(map(str, missing))} left no record under "
                 "ranks/: they never started the training", ref("run_manifest.json"))
    failed = _failed_ranks(ranks)
    if failed:
        return R("fail", f"rank {failed[0].rank} {_rank_end(failed[0])} ({failed[0].path})", ref(failed[0].path))
    planned = ev.plan.max_steps
    short = [r for r in ranks if planned is not None and r.last_step is not None and r.last_step < planned]
    if short:
        return R("fail", f"rank {short[0].rank} logged up to step {short[0].last_step} of {planned} planned "
                 f"({short[0].path}): it stopped taking part", ref(short[0].path))
    return None


def _run_set(runs: list[MetricsSeries]) -> GateResult:
    """A folder of independent runs (a benchmark's result_N.txt): each must have ended successfully and, where the
    source knows a quality target, reached it; the set passes when no more failed than its rules allow."""
    good = [s for s in runs
            if s.outcome is not None and s.outcome.succeeded and s.facts.get("reached_target") != "false"]
    bad = [s for s in runs if s not in good]
    allowed = max(s.failures_allowed for s in runs)
    targets = sum(1 for s in runs if "reached_target" in s.facts)
    what = "ended successfully" + (" and reached the quality target" if targets else "")

    def why(series: MetricsSeries) -> str:
        out = series.outcome
        assert out is not None
        missed = "; no evaluation met the target" if series.facts.get("reached_target") == "false" else ""
        return f"{series.at(out.line)}: {out.detail or out.status}{missed}"

    pointers = [ref(s.path, s.outcome.line if s.outcome and s.position == "line" else None) for s in bad[:10]]
    if len(bad) > allowed:
        return R("fail", f"{len(good)} of {len(runs)} runs {what}; {len(bad)} did not, more than the {allowed} its "
                 f"rules allow: {why(bad[0])}", *pointers)
    dropped = f"; {len(bad)} did not ({allowed} may): {why(bad[0])}" if bad else ""
    return R("pass", f"{len(good)} of {len(runs)} runs {what}{dropped}", *(pointers or [ref(runs[0].path)]))


@gate("training_completed",
      "the planned end was reached: planned steps in metrics, exit 0 where recorded, final record present")
def check(ev: RunEvidence, ctx: GateContext) -> GateResult:
    """Compare the furthest step/epoch in the evidence with the plan; respect a recorded outcome."""
    manifest = ev.run_manifest
    if manifest is not None:
        out = manifest.outcome
        if out.status == "running":
            age = _age_seconds(out.heartbeat_at or out.started_at)
            if _wrapper_gone(out.host, out.wrapper_pid) or age is None or age > ABANDONED_AFTER_S:
                return R("fail", "run_manifest.json still says status 'running' with no heartbeat for "
                         f"{'an unknown time' if age is None else f'{age:.0f}s'}: the wrapper died, run abandoned",
                         ref("run_manifest.json"))
            return R("fail", "run is still running (heartbeat recent); verify after it ends", ref("run_manifest.json"))
        if out.status != "succeeded" or (out.exit_code not in (0, None)):
            detail = f"exit code {out.exit_code}" if out.exit_code is not None else "no exit code"
            signal = f", signal {out.signal}" if out.signal else ""
            failed = _failed_ranks(ev.ranks)
            rank = f"; rank {failed[0].rank} {_rank_end(failed[0])} ({failed[0].path})" if failed else ""
            return R("fail", f"run ended '{out.status}' ({detail}{signal}) per run_manifest.json{rank}",
                     ref("run_manifest.json"), *([ref(failed[0].path)] if failed else []))
    problem = _rank_problem(ev)
    if problem is not None:
        return problem
    if ev.independent_runs:
        return _run_set(ev.independent_runs)
    ended = [s for s in ev.metrics_sources if s.outcome is not None]
    trained = any(s.count for s in ev.metrics_sources)
    # a source's recorded end is the run's when it logged the training (or nothing else did): an analysis
    # notebook with a cell never run says nothing of the training beside it
    bad_ends = [s for s in ended if s.outcome is not None and not s.outcome.succeeded and (s.count or not trained)]
    if bad_ends and bad_ends[0].outcome is not None:
        first = bad_ends[0].outcome
        more = f" (+{len(bad_ends) - 1} more)" if len(bad_ends) > 1 else ""
        detail = f": {first.detail}" if first.detail else ""
        return R("fail", f"{bad_ends[0].at(first.line)} records the run ended {first.status!r}{detail}{more}",
                 ref(bad_ends[0].path, first.line if bad_ends[0].position == "line" else None))
    ranks = f"; all {len(ev.ranks)} ranks exited 0" if ev.ranks else ""
    plan = ev.plan
    reached = ev.evidence_max_step
    series = ev.metrics
    evidence: list[EvidenceRef] = []
    if series is not None:
        evidence.append(ref(series.path))
    final = ev.final_record
    planned_steps = plan.max_steps
    if planned_steps is not None:
        source = plan.source.get("max_steps", "plan")
        if reached is None:
            return R("fail", f"planned {planned_steps} steps ({source}) but no training step was recorded "
                     "(no metrics, no trainer_state, no progress in the log)", ref(source))
        taken, zero_based = ev.steps_taken
        counted = f" (steps numbered from 0: {taken} taken)" if zero_based else ""
        if taken is not None and taken < planned_steps:
            return R("fail", f"planned {planned_steps} steps ({source}), evidence reaches step {reached}{counted}: "
                     "training stopped early", ref(source), *evidence)
        return R("pass", f"reached step {reached}{counted} of {planned_steps} planned{ranks}", ref(source), *evidence)
    if plan.num_epochs is not None:
        source = plan.source.get("num_epochs", "plan")
        epochs = [e for e in (s.max_epoch for s in ev.metrics_sources) if e is not None]
        epochs += [f.values["epoch"] for f in ev.final_records if "epoch" in f.values]
        last = max(epochs, default=None)
        if last is None:
            return R("fail", f"planned {plan.num_epochs:g} epochs ({source}) but no epoch was recorded", ref(source))
        if last + 0.01 < plan.num_epochs:
            return R("fail", f"planned {plan.num_epochs:g} epochs ({source}), evidence reaches epoch {last:g}",
                     ref(source), *evidence)
        return R("pass", f"reached epoch {last:g} of {plan.num_epochs:g} planned", ref(source), *evidence)
    exited_zero = manifest is not None and manifest.outcome.status == "succeeded" and manifest.outcome.exit_code == 0
    if series is not None and series.count and (exited_zero or ended):
        how = "the command exited 0 (run_manifest.json)" if exited_zero else \
            f"{ended[0].at(ended[0].outcome.line if ended[0].outcome else None)} records a successful end"
        crash = next(((c.path, c.line, c.text) for c in ev.crashes if c.recovered is None), None)
        if crash is not None:  # an exception the script caught, or a crash it exited 0 from: not proven either way
            return R("warn", f"no planned step count declared; {how}, but {where(crash[0], crash[1])} shows a "
                     f"failure ({crash[2][:80]!r}): declare max_steps to prove the run reached its end",
                     ref(crash[0], crash[1]), *evidence)
        return R("pass", f"no planned step count declared; {how} after logging up to step {reached} "
                 f"({series.path}{f', read by rule {series.rule}' if series.rule else ''})",
                 ref("run_manifest.json") if exited_zero else ref(ended[0].path), *evidence)
    progress = ev.progress
    if progress is not None and final is not None:
        log = ev.training_log.path if ev.training_log else "training_log.txt"
        if progress.done < progress.total:
            return R("fail", f"progress bar stops at {progress.done}/{progress.total} "
                     f"({where(log, progress.line)})", ref(log, progress.line))
        return R("pass", f"no plan recorded; progress reached {progress.done}/{progress.total} and the final "
                 f"trainer record is present ({where(final.path, final.line)})",
                 ref(log, progress.line), ref(final.path, final.line))
    if final is not None:
        return R("warn", "no planned step count recorded (config, manifest or trainer_state); the final trainer "
                 f"record is present at {where(final.path, final.line)}, but completion cannot be proven "
                 "against a plan", ref(final.path, final.line))
    if series is not None and series.count:
        return R("fail", f"{series.count} loss records but no final trainer record and no plan: cannot show "
                 "that training reached its end", ref(series.path))
    return R("fail", "no training record at all: no metrics, no trainer_state.json, no progress in a log")
