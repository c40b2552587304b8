"""no_secrets: no credentials in any evidence file."""

from __future__ import annotations

from auditor.evidence.run import RunEvidence
from auditor.evidence.secrets import candidate_lines, scan_lines, scan_numbered
from auditor.gates.base import GateContext, Results, gate, ref
from auditor.models import GateResult

R = Results("no_secrets")
SCAN_LIMIT = 1 << 30  # bytes of one file scanned for credentials


@gate("no_secrets", "no credentials in any evidence file (tokens, keys, private key blocks)")
def check(ev: RunEvidence, ctx: GateContext) -> GateResult:
    """Scan every text file of the folder for credential patterns."""
    findings = []
    scanned = 0
    # in a metrics file, only what the reader did not match as numbers-only records can hold text
    free_text = {s.path: s.free_text() for s in ev.metrics_sources if s.kind == "metrics.jsonl"}
    for rel in ev.text_files():
        lines = free_text.get(rel)
        if lines is not None:
            scanned += 1
            findings.extend(scan_numbered(lines, rel))
            continue
        try:  # through the one opener: a FIFO or a link out of the folder is not read (nor waited on)
            data, _ = ev.folder.read(rel, SCAN_LIMIT)
        except OSError:
            continue
        scanned += 1
        candidates = candidate_lines(data)
        if candidates is not None:
            findings.extend(scan_numbered(candidates, rel))
            continue
        doc = ev.text(rel)
        if doc is not None:
            findings.extend(scan_lines(doc.lines, rel))
    if findings:
        first = findings[0]
        more = f" (+{len(findings) - 1} more)" if len(findings) > 1 else ""
        return R("fail", f"{first.kind} at {first.path}:{first.line} ({first.masked}){more}: revoke it and remove it "
                 "from the evidence (and the git history)", *[ref(f.path, f.line, f.kind) for f in findings[:10]])
    return R("pass", f"no credentials in {scanned} text file(s)")
