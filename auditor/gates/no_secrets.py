"""no_secrets: no credentials in any evidence file."""

from __future__ import annotations

from auditor.evidence.run import RunEvidence
from auditor.evidence.secrets import PREFILTER, PREFILTER_BYTES, PREFILTER_TEXT, scan_numbered
from auditor.evidence.textscan import SCAN_BYTES, scan_file, unescaped
from auditor.gates.base import GateContext, Results, gate, ref
from auditor.models import GateResult

R = Results("no_secrets")


@gate("no_secrets", "no credentials in any evidence file (tokens, keys, private key blocks)")
def check(ev: RunEvidence, ctx: GateContext) -> GateResult:
    """Scan every text file of the folder (streamed, JSON escapes decoded) for credential patterns."""
    findings = []
    scanned = 0
    cut: list[str] = []
    unread: list[str] = []
    # in a metrics file, only what the reader did not match as numbers-only records can hold text
    free_text = {s.path: s.free_text() for s in ev.metrics_sources if s.kind == "metrics.jsonl"}
    for rel in ev.text_files():
        lines = free_text.get(rel)
        if lines is not None:
            scanned += 1
            findings.extend(scan_numbered([*lines, *unescaped(lines)], rel))
            continue
        # through the one opener: a FIFO or a link out of the folder is not read (nor waited on)
        scan = scan_file(ev.folder, rel, PREFILTER_BYTES, PREFILTER, PREFILTER_TEXT)
        if scan.unreadable:
            unread.append(scan.unreadable)
            continue
        scanned += 1
        findings.extend(scan_numbered(scan.lines, rel))
        if scan.cut_at is not None:
            cut.append(rel)
    if findings:
        first = findings[0]
        more = f" (+{len(findings) - 1} more)" if len(findings) > 1 else ""
        return R("fail", f"{first.kind} at {first.path}:{first.line} ({first.masked}){more}: revoke it and remove it "
                 "from the evidence (and the git history)", *[ref(f.path, f.line, f.kind) for f in findings[:10]])
    unread += [f"{rel}/ cannot be listed ({why})" for rel, why in ev.unlisted]
    if unread:
        return R("warn", f"no credentials in {scanned} text file(s), but {unread[0]}"
                 f"{f' (+{len(unread) - 1} more)' if len(unread) > 1 else ''}: not scanned")
    if cut:
        return R("warn", f"no credentials in the {SCAN_BYTES >> 20} MiB scanned of {cut[0]}"
                 f"{f' (+{len(cut) - 1} more)' if len(cut) > 1 else ''}, but it is longer: the rest was not scanned",
                 *[ref(rel) for rel in cut[:10]])
    return R("pass", f"no credentials in {scanned} text file(s)")
