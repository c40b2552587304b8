"""evidence_complete: files exist, are non-empty, are not templates; digests match; paths stay inside."""

from __future__ import annotations

import stat
from pathlib import Path

from auditor.evidence.paths import relative_name
from auditor.evidence.run import MAX_WALK_DEPTH, RunEvidence
from auditor.evidence.text import MAX_TEXT_BYTES
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
    for rel, why in ev.unlisted:
        problems.append((f"{rel}/ cannot be listed ({why}): nothing in it was read; make it readable", ref(rel)))
    if not ev.log_files and not ev.format_logs:
        problems.append(("no training log (training_log.txt)", ref("training_log.txt")))
    # the log `audit run` captured is empty when the command printed nothing: a fact, not a gap, where the
    # training's evidence is in other files (TensorBoard, W&B, ...)
    silent = ev.run_manifest is not None and any(s.records for s in ev.metrics_sources)
    for rel in ev.files:
        try:
            info = ev.path(rel).lstat()
        except OSError:  # listed a moment ago, gone now: something is still writing the folder
            problems.append((f"{rel} disappeared while the folder was read: is a run still writing it?", ref(rel)))
            continue
        if not stat.S_ISREG(info.st_mode):
            problems.append((f"{rel} is not a regular file (a FIFO, socket or device): it is not read", ref(rel)))
        elif (unreadable := ev.folder.unreadable(rel)) is not None:
            problems.append((f"{unreadable}: its evidence is not read; make it readable", ref(rel)))
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
    cut = [rel for rel in ev.log_files if ev.folder.size(rel) > MAX_TEXT_BYTES]
    if cut:  # read as text up to the limit: metrics and claims past it were not seen (the scans read it all)
        return R("warn", f"{cut[0]} is longer than the {MAX_TEXT_BYTES >> 20} MiB text limit: lines past it were not "
                 "read for metrics or progress (credential and failure scans read the whole file); "
                 f"{digest_checks} {digest_note}", *[ref(rel) for rel in cut[:10]])
    return R("pass", f"{len(ev.files)} files present and non-empty, no templates, {digest_checks} {digest_note}")


def _may_follow_sealing(rel: str) -> bool:
    """Files a sealed folder may gain: the manifest, the run lock and temp files, and what `audit summary`
    renders at the top (<name>_summary.md, whose claims claims_consistent checks, and its plots)."""
    name = rel.rsplit("/", 1)[-1]
    return (rel in ("run_manifest.json", ".audit.lock") or (name.startswith(".") and name.endswith(".tmp"))
            or ("/" not in rel and name.endswith(("_summary.md", "_loss.png", "_gpu.png"))))


def _digests(ev: RunEvidence, ctx: GateContext, problems: list[tuple[str, EvidenceRef]]) -> tuple[str, str]:
    expected: dict[str, list[tuple[str, EvidenceRef]]] = {}  # every digest source of a file must agree
    sums = ev.sha256sums
    if sums is not None:
        entries, bad = sums
        for line in bad[:3]:
            problems.append((f"SHA256SUMS:{line} is not in `sha256sum` format", ref("SHA256SUMS", line)))
        for entry in entries:
            expected.setdefault(entry.path, []).append((entry.digest.lower(), ref("SHA256SUMS", entry.line)))
    manifest = ev.run_manifest
    if manifest is not None:
        for artifact in manifest.artifacts:
            expected.setdefault(artifact.path, []).append((artifact.sha256.lower(),
                                                           ref("run_manifest.json", note=artifact.path)))
        if manifest.sealed_at:  # `audit run` listed every file: one it did not list came later
            sealed = {artifact.path for artifact in manifest.artifacts}
            for rel in ev.files:
                if rel not in sealed and not _may_follow_sealing(rel):
                    problems.append((f"{rel} was written after the run was sealed ({manifest.sealed_at}): "
                                     "run_manifest.json does not list it", ref(rel)))
    if not expected:
        return "no digest list", "(add SHA256SUMS or record the run with `audit run`)"
    to_hash: dict[str, Path] = {}
    listed = set(ev.files)
    for rel, recorded in expected.items():
        pointer = recorded[0][1]
        path = ev.contained(rel)
        name = relative_name(ev.root, path) if path is not None else None
        if path is None:
            problems.append((f"{where(pointer.path, pointer.line)} names {rel!r}, a path outside the folder", pointer))
        elif name not in listed:
            problems.append((f"{where(pointer.path, pointer.line)} lists {rel}, which is missing (or not a regular "
                             "file of the folder)", pointer))
        else:
            to_hash[rel] = path
    if ctx.options.quick:
        return f"{len(expected)} listed file(s) present;", "digests not checked (--quick)"
    actual = ev.sha256(to_hash.values())
    for rel, path in to_hash.items():
        if actual.get(path) is None:  # unreadable: named above, not called changed
            problems.append((f"{rel} cannot be read to check its sha256", ref(rel)))
            continue
        for digest, pointer in expected[rel]:
            if actual.get(path) != digest:
                others = [where(p.path, p.line) for d, p in expected[rel] if d == actual.get(path)]
                agree = f" (though {', '.join(others)} lists the new digest)" if others else ""
                problems.append((f"{rel} does not match its sha256 in {where(pointer.path, pointer.line)}{agree}: "
                                 "the file changed after it was recorded", ref(rel)))
    return f"{len(to_hash)} digest(s)", "match"
