"""code_unchanged: for evidence-only runs, a recorded commit, a clean tree, a diff confined to the folder."""

from __future__ import annotations

from auditor.evidence.run import RunEvidence
from auditor.gates.base import GateContext, Results, gate, ref
from auditor.models import EvidenceRef, GateResult

R = Results("code_unchanged")


@gate("code_unchanged", "for evidence-only runs: recorded commit, clean tree, diff confined to the evidence folder")
def check(ev: RunEvidence, ctx: GateContext) -> GateResult:
    """Only for runs declared evidence-only (manifest flag, or a summary saying so / claiming No Code Changes)."""
    manifest = ev.run_manifest
    declared: EvidenceRef | None = None
    if manifest is not None and manifest.evidence_only:
        declared = ref("run_manifest.json")
    for summary in ev.summaries:
        if declared is None and "code_unchanged" in summary.gate_claims:
            declared = ref(summary.path, summary.gate_claims["code_unchanged"][1])
        if declared is None and summary.evidence_only_line:
            declared = ref(summary.path, summary.evidence_only_line)
    if declared is None:
        return R("skip", "run is not declared evidence-only")
    git = manifest.git if manifest is not None else None
    if git is not None and git.commit:
        if git.dirty:
            outside = [f for f in git.changed_files if not f.startswith("submission_runs/")]
            if outside:
                return R("fail", f"evidence-only run, but the tree was dirty outside the evidence folder: "
                         f"{', '.join(outside[:5])}", ref("run_manifest.json"))
        return R("pass", f"commit {git.commit[:12]} recorded, tree clean outside the evidence folder",
                 ref("run_manifest.json"))
    commit = ev.env_fact("commit")
    if commit:
        return R("warn", f"evidence-only run: commit {commit[0][:12]} recorded ({commit[1]}), but no record of a "
                 "clean tree or of the diff; record runs with `audit run --evidence-only`",
                 declared, ref(commit[1], commit[2]))
    return R("fail", "declared evidence-only, but no commit is recorded: the code that ran cannot be identified",
             declared)
