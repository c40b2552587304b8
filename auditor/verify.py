"""`audit verify`: run the gates over run folders and decide the verdict and exit code, in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from auditor import __version__
from auditor.errors import AuditInputError
from auditor.evidence.run import RunEvidence, is_run_folder
from auditor.gates import REGISTRY, GateContext, GateOptions
from auditor.models import GateResult, RunReport, ToolInfo, VerifyReport
from auditor.models.report import Verdict

EXIT_OK, EXIT_FAIL, EXIT_CANNOT_AUDIT = 0, 1, 2


@dataclass
class VerifyOptions:
    """Everything `audit verify` was asked to do."""

    run_dirs: list[Path]
    quick: bool = False
    strict: bool = False
    exit_zero: bool = False
    select: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)
    gate_options: GateOptions = field(default_factory=GateOptions)
    debug: bool = False  # a gate's own bug raises (a traceback) instead of becoming its failed result


def selected_gates(select: list[str], ignore: list[str]) -> list[str]:
    """Gate ids to run, in registry order; unknown ids are a usage error (exit 2)."""
    for gate_id in [*select, *ignore]:
        if gate_id not in REGISTRY:
            raise AuditInputError(f"unknown gate {gate_id!r}; `audit gates` lists the ids: {', '.join(REGISTRY)}")
    chosen = [g for g in REGISTRY if (not select or g in select) and g not in ignore]
    if not chosen:
        raise AuditInputError("--select/--ignore leave no gate to run")
    return chosen


def check_run_dir(path: Path) -> None:
    """Exit-2 conditions for one argument: missing, not a directory, not a run folder."""
    if not path.exists():
        raise AuditInputError(f"{path}: no such directory; pass a run folder such as submission_runs/m44_v1")
    if not path.is_dir():
        raise AuditInputError(f"{path}: not a directory; pass the run folder that holds the evidence files")
    if not os.access(path, os.R_OK | os.X_OK):
        raise AuditInputError(f"{path}: cannot be read (permission denied)")
    if not is_run_folder(path):
        raise AuditInputError(
            f"{path}: not a run folder (none of run_manifest.json, training_log.txt, env_snapshot.*, "
            "training_output/, predictions.jsonl, *_summary.md); pass the folder that holds the evidence"
        )


def verdict_of(results: list[GateResult], strict: bool) -> Verdict:
    """fail if any gate fails (or, with strict, warns); warn if any warns; else pass."""
    statuses = {r.status for r in results}
    if "fail" in statuses or (strict and "warn" in statuses):
        return "fail"
    return "warn" if "warn" in statuses else "pass"


INTERNAL_ERROR = "internal error in this gate"  # how a gate's own bug reads in its result (the fuzz counts them)


def run_gate(gate_id: str, evidence: RunEvidence, context: GateContext, debug: bool = False) -> GateResult:
    """One gate's result. A bug in a gate fails that gate, naming the error, and never stops the audit or passes
    the folder (with `debug` it raises for a traceback)."""
    try:
        return REGISTRY[gate_id].run(evidence, context)
    except Exception as exc:
        if debug:
            raise
        return GateResult(id=gate_id, status="fail", evidence=[],
                          message=f"{INTERNAL_ERROR}: {type(exc).__name__}: {exc}; it could not check this folder "
                                  "(run `audit --debug verify` for a traceback and report it)")


def audit_run_dir(path: Path, gate_ids: list[str], options: GateOptions, strict: bool,
                  evidence: RunEvidence | None = None, debug: bool = False) -> RunReport:
    """All selected gates over one folder (over `evidence` when the caller has already opened it, so it is parsed
    once). no_false_success runs after the others: it judges their claims."""
    evidence = evidence or RunEvidence(path, quick=options.quick)
    context = GateContext(options=options)
    ordered = sorted(gate_ids, key=lambda g: g == "no_false_success")
    for gate_id in ordered:
        if gate_id == "no_false_success":
            for other in REGISTRY:
                if other not in context.results and other != gate_id:
                    context.results[other] = run_gate(other, evidence, context, debug)
        context.results[gate_id] = run_gate(gate_id, evidence, context, debug)
    results = [context.results[g] for g in gate_ids]
    return RunReport(run_dir=str(path), verdict=verdict_of(results, strict), gates=results)


def execute(options: VerifyOptions) -> VerifyReport:
    """Audit every folder; raises AuditInputError (exit 2) before auditing anything if an argument is bad."""
    gate_ids = selected_gates(options.select, options.ignore)
    for path in options.run_dirs:
        check_run_dir(path)
    gate_options = GateOptions(loss_window=options.gate_options.loss_window,
                               min_loss_drop=options.gate_options.min_loss_drop, quick=options.quick)
    runs = [audit_run_dir(p, gate_ids, gate_options, options.strict, debug=options.debug)
            for p in options.run_dirs]
    return VerifyReport(tool=ToolInfo(version=__version__, quick=options.quick, strict=options.strict), runs=runs)


def exit_code(report: VerifyReport, exit_zero: bool) -> int:
    """0 when every run passes (or --exit-zero), 1 when any run fails."""
    if exit_zero:
        return EXIT_OK
    return EXIT_FAIL if any(r.verdict == "fail" for r in report.runs) else EXIT_OK
