"""evidence_complete: files exist, are non-empty, are not templates; digests match; paths stay inside."""

from __future__ import annotations

import stat
from pathlib import Path

from auditor.evidence.run import MAX_WALK_DEPTH, RunEvidence
from auditor.gates.base import GateContext, Results, gate, ref, where
from auditor.models import EvidenceRef, GateResult

R = Results("evidence_complete")
@gate("evidence_complete", "expected files exist, are non-empty, are not templates/placeholders, digests "
      "(manifest or SHA256SUMS) match, every path stays inside the folder, metrics lines parse")
def check(ev: RunEvidence, ctx: GateContext) -> GateResult:
    """Collect every completeness problem; fail on the first kind found, listing the rest by count."""
    problems: list[tuple[str, EvidenceRef]] = []
    for link in ev.symlinks:
        if link.escapes:
            problems.append((f"{link.path} is a symlink leading outside the folder ({link.target})", ref(link.path)))
    if ev.walk_cut:
        problems.append((f"{ev.walk_cut} lies more than {MAX_WALK_DEPTH} folders deep: nothing below it was read; "
                         "keep evidence within that depth", ref(ev.walk_cut)))
    if not ev.log_files and not ev.format_logs:
        problems.append(("no training log (training_log.txt)", ref("training_log.txt")))
    # the log `audit run` captured is empty when the command printed nothing: a fact, not a gap, where the
    # training's evidence is in other files (TensorBoard, W&B, ...)
    silent = ev.run_manifest is not None and any(s.records for s in ev.metrics_sources)
    for rel in ev.files:
        info = ev.path(rel).lstat()
        if not stat.S_ISREG(info.st_mode):
            problems.append((f"{rel} is not a regular file (a FIFO, socket or device): it is not read", ref(rel)))
        elif info.st_size == 0 and not (silent and rel == "training_log.txt"):
            problems.append((f"{rel} is empty", ref(rel)))
    for rel, (why, line) in ev.templates.items():
        problems.append((f"{where(rel, line)} is a template: {why}", ref(rel, line)))
    for series in ev.metrics_sources:
        if series.bad_count:
            line, why = series.bad_lines[0]
            what = "unparseable metrics line(s)" if series.position == "line" else "unreadable metrics record(s)"
            problems.append((f"{series.bad_count} {what}; first {series.at(line)}: {why}",
                             ref(series.path, line if series.position == "line" else None,
                                 None if series.position == "line" else f"{series.position} {line}")))
    for rel, problem, line in ev.config_problems:
        problems.append((f"{where(rel, line)} {problem}", ref(rel, line)))
    digest_checks, digest_note = _digests(ev, ctx, problems)
    if problems:
        first = problems[0][0]
        more = f" (+{len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        return R("fail", first + more, *[p for _, p in problems[:10]])
    return R("pass", f"{len(ev.files)} files present and non-empty, no templates, {digest_checks} {digest_note}")


def _digests(ev: RunEvidence, ctx: GateContext, problems: list[tuple[str, EvidenceRef]]) -> tuple[str, str]:
    expected: dict[str, tuple[str, EvidenceRef]] = {}
    sums = ev.sha256sums
    if sums is not None:
        entries, bad = sums
        for line in bad[:3]:
            problems.append((f"SHA256SUMS:{line} is not in `sha256sum` format", ref("SHA256SUMS", line)))
        for entry in entries:
            expected[entry.path] = (entry.digest, ref("SHA256SUMS", entry.line))
    manifest = ev.run_manifest
    if manifest is not None:
        for artifact in manifest.artifacts:
            expected.setdefault(artifact.path, (artifact.sha256, ref("run_manifest.json", note=artifact.path)))
    if not expected:
        return "no digest list", "(add SHA256SUMS or record the run with `audit run`)"
    to_hash: dict[str, Path] = {}
    for rel, (_, pointer) in expected.items():
        path = ev.contained(rel)
        if path is None:
            problems.append((f"{where(pointer.path, pointer.line)} names {rel!r}, a path outside the folder", pointer))
        elif not path.is_file():
            problems.append((f"{where(pointer.path, pointer.line)} lists {rel}, which is missing", pointer))
        else:
            to_hash[rel] = path
    if ctx.options.quick:
        return f"{len(expected)} listed file(s) present;", "digests not checked (--quick)"
    actual = ev.sha256(to_hash.values())
    for rel, path in to_hash.items():
        digest, pointer = expected[rel]
        if actual.get(path) != digest:
            problems.append((f"{rel} does not match its sha256 in {where(pointer.path, pointer.line)}: the file "
                             "changed after it was recorded", ref(rel)))
    return f"{len(to_hash)} digest(s)", "match"
