"""no_false_success: nothing claims success that the evidence contradicts. Runs last: it judges the
summary's quality-gate table against the gates' own results."""

from __future__ import annotations

import re

from auditor.evidence.run import RunEvidence
from auditor.gates.base import GateContext, Results, gate, ref, where
from auditor.models import EvidenceRef, GateResult

R = Results("no_false_success")
_PASS = re.compile(r"pass|✅", re.I)


def success_claims(ev: RunEvidence) -> list[EvidenceRef]:
    """Every place that claims the run succeeded."""
    claims: list[EvidenceRef] = []
    for summary in ev.summaries:
        claims.extend(ref(summary.path, line, "status claims success") for line in summary.success_lines)
    for signals in ev.log_signals:
        claims.extend(ref(signals.path, line, "success banner") for line in signals.successes)
    manifest = ev.manifest
    if manifest and isinstance(manifest.data, dict):
        outcome = manifest.data.get("outcome")
        status = outcome.get("status") if isinstance(outcome, dict) else manifest.data.get("status")
        if isinstance(status, str) and status.lower() in ("completed", "succeeded", "success", "complete"):
            claims.append(ref("run_manifest.json", note=f"status {status}"))
    return claims


@gate("no_false_success", "nothing claims success that the evidence contradicts: crash/OOM/kill signatures in "
      "logs, non-zero exit, fewer steps than claimed, claimed files missing")
def check(ev: RunEvidence, ctx: GateContext) -> GateResult:
    """Contradictions between success claims and crash evidence, step counts, files and gate results."""
    claims = success_claims(ev)
    problems: list[tuple[str, EvidenceRef]] = []
    for summary in ev.summaries:
        for gate_id, (status, line) in summary.gate_claims.items():
            computed = ctx.results.get(gate_id)
            if computed is not None and computed.status == "fail" and _PASS.search(status):
                problems.append((f"{where(summary.path, line)} claims {gate_id} PASS, but the gate fails: "
                                 f"{computed.message}", ref(summary.path, line)))
        for rel, line in summary.file_mentions:
            found = ev.contained(rel)
            if found is None or not found.exists():
                problems.append((f"{where(summary.path, line)} lists {rel} as an artifact, but it is not in the "
                                 "folder", ref(summary.path, line)))
        for claim in summary.figures:
            reached = ev.evidence_max_step
            slack = claim.tolerance or 0.0  # "1.2k steps" is true of 1,180 steps
            if claim.key == "total_steps" and claim.value and reached is not None and reached < claim.value - slack:
                problems.append((f"{where(claim.path, claim.line)} claims {claim.value:g} steps, evidence reaches "
                                 f"only step {reached}", ref(claim.path, claim.line)))
    crashes = [(c.path, c.line, c.text) for c in ev.crashes if c.recovered is None]
    recovered = [c for c in ev.crashes if c.recovered is not None]
    cut = next((s for s in ev.log_signals if s.scan_cut), None)
    manifest = ev.run_manifest
    failed_exit = manifest is not None and manifest.outcome.status in ("failed", "killed", "interrupted")
    if claims and crashes:
        log_path, log_line, text = crashes[0]
        problems.append((f"{where(claims[0].path, claims[0].line)} claims success, but {where(log_path, log_line)} "
                         f"shows a failure: {text!r}", ref(log_path, log_line)))
    if claims and failed_exit and manifest is not None:
        other = next((c for c in claims if c.path != "run_manifest.json"), None)
        if other is not None:
            problems.append((f"{where(other.path, other.line)} claims success, but the run ended "
                             f"'{manifest.outcome.status}' (exit {manifest.outcome.exit_code})", other))
    if problems:
        first = problems[0][0]
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        return R("fail", first + more, *[p for _, p in problems[:10]])
    if crashes:
        log_path, log_line, text = crashes[0]
        return R("warn", f"{where(log_path, log_line)} shows a failure signature ({text!r}), though nothing claims "
                 "success", ref(log_path, log_line))
    if cut is not None and cut.scan_cut is not None:
        return R("warn", f"{cut.path} is longer than the {cut.scan_cut >> 20} MiB scan limit: failure signatures "
                 "past it were not looked for", ref(cut.path))
    after = ""
    if recovered:
        went_on = recovered[0]
        more = f" (+{len(recovered) - 1} more)" if len(recovered) > 1 else ""
        after = (f"; recovered from {where(went_on.path, went_on.line)} ({went_on.text[:60]!r}){more}: training "
                 f"went on after it ({went_on.recovered})")
    if not claims:
        return R("pass", "no success claims to contradict" + after)
    return R("pass", f"{len(claims)} success claim(s), none contradicted by the logs, exit status, step counts "
             "or gate results" + after)
