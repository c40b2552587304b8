"""The CLI contract: exit codes, one-line errors, report formats, read-only verify, schemas."""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import ROOT, audit, verify_json

from auditor.schemas import MODELS, schema_text, validation_errors


def test_missing_path_is_exit_2(tmp_path: Path) -> None:
    result = audit("verify", tmp_path / "nope")
    assert result.code == 2
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_file_instead_of_folder_is_exit_2(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    result = audit("verify", tmp_path / "f.txt")
    assert result.code == 2 and "not a directory" in result.stderr


def test_folder_without_run_files_is_exit_2(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    result = audit("verify", tmp_path)
    assert result.code == 2 and "not a run folder" in result.stderr


def test_broken_run_folder_is_exit_1_not_2(tmp_path: Path) -> None:
    (tmp_path / "training_log.txt").write_bytes(b"\xff\xfe\x00garbage\x00\x00")
    (tmp_path / "run_manifest.json").write_text("{not json")
    result = verify_json(tmp_path)
    assert result.code == 1
    assert result.status("manifest_valid") == "fail"


def test_unknown_gate_is_exit_2(run_dir: Path) -> None:
    result = audit("verify", run_dir, "--select", "no_such_gate")
    assert result.code == 2 and "unknown gate 'no_such_gate'" in result.stderr


def test_select_and_ignore(run_dir: Path) -> None:
    only = verify_json(run_dir, "--select", "loss_decreased,no_secrets")
    assert [g["id"] for g in only.report["runs"][0]["gates"]] == ["loss_decreased", "no_secrets"]
    rest = verify_json(run_dir, "--ignore", "manifest_valid")
    assert "manifest_valid" not in {g["id"] for g in rest.report["runs"][0]["gates"]}


def test_strict_and_exit_zero(run_dir: Path) -> None:
    assert verify_json(run_dir).code == 0  # manifest_valid warns on a seed-style folder
    strict = verify_json(run_dir, "--strict")
    assert strict.code == 1 and strict.report["runs"][0]["verdict"] == "fail"
    assert verify_json(run_dir, "--strict", "--exit-zero").code == 0


def test_json_report_matches_published_schema(run_dir: Path) -> None:
    result = verify_json(run_dir)
    assert result.report["schema_version"] == 1
    assert validation_errors("verify_report", result.report) == []


def test_junit_has_one_testcase_per_gate(run_dir: Path, tmp_path: Path) -> None:
    (run_dir / "env_snapshot.json").unlink()
    out = tmp_path / "report.xml"
    result = audit("verify", run_dir, "--format", "junit", "--output", out)
    assert result.code == 1 and result.stdout == ""
    suite = ET.parse(out).getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == 15
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert failed == ["environment_captured"] and suite.get("failures") == "1"


def test_github_annotations_and_step_summary(run_dir: Path, tmp_path: Path) -> None:
    (run_dir / "predictions.jsonl").write_text('{"prediction": ""}\n')
    summary = tmp_path / "summary.md"
    result = audit("verify", run_dir, "--format", "github", env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.code == 1
    error = next(line for line in result.stdout.splitlines() if "title=evaluation_ran" in line)
    assert error.startswith("::error file=") and "predictions.jsonl,line=1," in error
    assert "| `evaluation_ran` | ❌ FAIL |" in summary.read_text()


def test_text_output_has_no_colour_when_piped(run_dir: Path) -> None:
    result = audit("verify", run_dir)
    assert "\x1b[" not in result.stdout and "verdict: WARN" in result.stdout


def test_verify_never_writes_into_the_folder(run_dir: Path) -> None:
    def tree() -> dict[str, str]:
        return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(run_dir.rglob("*")) if p.is_file()}

    before = tree()
    for fmt in ("text", "json", "junit", "markdown", "github"):
        audit("verify", run_dir, "--format", fmt)
    assert tree() == before


def test_two_folders_one_report(run_dir: Path, trained_run: Path) -> None:
    (run_dir / "env_snapshot.json").unlink()
    result = audit("verify", trained_run, run_dir, "--format", "json")
    assert result.code == 1
    assert [r["verdict"] for r in json.loads(result.stdout)["runs"]] == ["warn", "fail"]


def test_gates_lists_all_fifteen() -> None:
    result = audit("gates")
    assert result.code == 0 and len(result.stdout.splitlines()) == 15


@pytest.mark.parametrize("name", list(MODELS))
def test_committed_schemas_match_models(name: str) -> None:
    committed = (ROOT / "schemas" / f"{name}.schema.json").read_text(encoding="utf-8")
    assert committed == schema_text(name), "schemas/ drifted: run `audit schema --write schemas/`"
    document = json.loads(committed)
    assert document["$id"].endswith(f"/v1/{name}.schema.json") and document["x-schema-version"] == 1


def test_schema_command_prints_and_writes(tmp_path: Path) -> None:
    printed = audit("schema", "run_manifest")
    assert printed.code == 0 and json.loads(printed.stdout)["title"] == "RunManifest"
    assert audit("schema", "--write", tmp_path).code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.schema.json" for n in MODELS)
    assert audit("schema", "nope").code == 2


def test_help_does_not_import_frameworks() -> None:
    import subprocess
    import sys

    code = ("import sys, auditor.cli; "
            "print(','.join(m for m in ('torch','transformers','jax','pydantic','rich') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "", f"import auditor.cli pulled in {loaded}"
