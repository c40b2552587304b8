"""manifest_valid: run_manifest.json validates against the published schema."""

from __future__ import annotations

from auditor.evidence.run import RunEvidence
from auditor.gates.base import GateContext, Results, gate, ref
from auditor.models import GateResult

R = Results("manifest_valid")


@gate("manifest_valid", "run_manifest.json validates against the schema (seed-style folder without one: warn)")
def check(ev: RunEvidence, ctx: GateContext) -> GateResult:
    """Validate the manifest; a team's own manifest format is read but reported as warn."""
    doc = ev.manifest
    captured = ev.captured_by_audit_run
    if doc is None and captured is not None:
        return R("fail", f"no run_manifest.json, but {captured} was written by `audit run`: the run's manifest was "
                 "removed, and a folder recorded by `audit run` is never audited by the laxer seed-style reading; "
                 "restore the manifest or re-record the run", ref(captured))
    if doc is None:
        return R("warn", "no run_manifest.json: seed-style folder, audited from its files; "
                 "record runs with `audit run` to get a manifest")
    if doc.error:
        return R("fail", f"run_manifest.json {doc.error}; fix the file or re-record the run",
                 ref("run_manifest.json", doc.line))
    if not isinstance(doc.data, dict):
        return R("fail", "run_manifest.json is not a JSON object", ref("run_manifest.json", 1))
    if not ev.is_auditor_manifest:
        return R("warn", "run_manifest.json is in a team's own format (no schema_version): its plan fields "
                 "were read, but it cannot be validated; record runs with `audit run`",
                 ref("run_manifest.json"))
    errors = ev.manifest_errors
    if errors:
        more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
        return R("fail", "run_manifest.json does not match schema v1: " + "; ".join(errors[:3]) + more,
                 ref("run_manifest.json"))
    return R("pass", "run_manifest.json validates against run_manifest schema v1", ref("run_manifest.json"))
