"""`audit attest` through the real CLI: the in-toto Statement v1 layout, every subject digest recomputed from the
file, and the predicate carrying the real gate results, the plan, the outcome and the environment digest."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

from conftest import REAL_RUNS, ROOT, audit

EXAMPLE = ROOT / "submission_runs" / "example_cpu_v1"


def check_layout(doc: dict) -> None:
    """The in-toto Statement v1 fields: _type, a non-empty subject list of {name, digest}, predicateType (a URI),
    predicate (an object)."""
    assert doc["_type"] == "https://in-toto.io/Statement/v1"
    assert isinstance(doc["subject"], list) and doc["subject"]
    for subject in doc["subject"]:
        assert set(subject) == {"name", "digest"} and isinstance(subject["name"], str) and subject["name"]
        assert re.fullmatch(r"[0-9a-f]{64}", subject["digest"]["sha256"])
    assert re.match(r"^https://\S+/v1$", doc["predicateType"])
    assert isinstance(doc["predicate"], dict)


def test_statement_of_a_real_run(tmp_path: Path) -> None:
    out = tmp_path / "statement.json"
    result = audit("attest", EXAMPLE, "--output", out)
    assert result.code == 0 and "verdict pass" in result.stdout, result.stderr
    doc = json.loads(out.read_text())
    check_layout(doc)
    names = {s["name"] for s in doc["subject"]}
    files = {p.relative_to(EXAMPLE).as_posix() for p in EXAMPLE.rglob("*") if p.is_file()}
    assert names == files
    for subject in doc["subject"]:
        assert hashlib.sha256((EXAMPLE / subject["name"]).read_bytes()).hexdigest() == subject["digest"]["sha256"]
    predicate = doc["predicate"]
    manifest = json.loads((EXAMPLE / "run_manifest.json").read_text())
    assert predicate["plan"] == manifest["plan"] and predicate["outcome"] == manifest["outcome"]
    assert predicate["verdict"] == "pass" and len(predicate["gates"]) == 15
    env = (EXAMPLE / "env_snapshot.json").read_bytes()
    assert predicate["environment"] == {"path": "env_snapshot.json", "sha256": hashlib.sha256(env).hexdigest()}


def test_failing_and_seed_style_folders_are_attested_as_they_are(tmp_path: Path) -> None:
    folder = Path(shutil.copytree(EXAMPLE, tmp_path / "run"))
    (folder / "eval_log.txt").write_text("edited later\n")
    doc = json.loads(audit("attest", folder).stdout)
    check_layout(doc)
    assert doc["predicate"]["verdict"] == "fail"
    assert "evidence_complete" in {g["id"] for g in doc["predicate"]["gates"] if g["status"] == "fail"}
    seed = REAL_RUNS / "m44_v1"
    if seed.is_dir():
        result = audit("attest", seed)
        assert result.code == 0
        seed_doc = json.loads(result.stdout)
        check_layout(seed_doc)
        assert seed_doc["predicate"]["plan"] is None  # no auditor manifest: nothing invented
