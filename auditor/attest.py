"""`audit attest`: an in-toto Statement v1 for a run folder.

One subject per file of the folder (its path relative to the folder, and its sha256), the predicate type of a
training-run audit owned by this project, and a predicate holding the manifest's plan and outcome, the digest of
the environment snapshot, and the verify verdict with every gate result. The statement is unsigned: sign it with
the tool a team already uses (cosign, in-toto's own) to make it an attestation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from auditor.evidence.digests import sha256_files
from auditor.package import folder_files

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://github.com/auditor-ml/auditor/attestation/training-run-audit/v1"
ENV_FILES = ("env_snapshot.json", "env_snapshot.txt")


def statement(folder: Path, report: dict[str, Any], manifest: dict[str, Any] | None) -> dict[str, Any]:
    """The Statement for `folder`, given its verify report (JSON form) and its run manifest, if any."""
    files = folder_files(folder)
    digests = sha256_files(files)
    names = {p.relative_to(folder).as_posix(): digest for p in files if (digest := digests.get(p))}
    subjects = [{"name": name, "digest": {"sha256": digest}} for name, digest in names.items()]
    env = next((name for name in ENV_FILES if name in names), None)
    run = report["runs"][0]
    predicate = {
        "run_id": folder.resolve().name,
        "tool": report.get("tool"),
        "verdict": run["verdict"],
        "gates": [{"id": g["id"], "status": g["status"], "message": g["message"]} for g in run["gates"]],
        "plan": (manifest or {}).get("plan"),
        "outcome": (manifest or {}).get("outcome"),
        "runner": (manifest or {}).get("runner"),
        "git": (manifest or {}).get("git"),
        "environment": {"path": env, "sha256": names[env]} if env else None,
    }
    return {"_type": STATEMENT_TYPE, "subject": subjects, "predicateType": PREDICATE_TYPE, "predicate": predicate}
