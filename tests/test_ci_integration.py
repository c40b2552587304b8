"""The CI integration as users adopt it: the composite action's commands, run here as the action runs them,
against the committed run and a broken copy (annotations, step summary, JUnit file, exit codes)."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml
from conftest import ROOT, audit

EXAMPLE = ROOT / "submission_runs" / "example_cpu_v1"


def action_commands() -> list[str]:
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    script = action["runs"]["steps"][-1]["run"]
    return [line.strip() for line in script.splitlines() if line.strip().startswith("audit verify")]


def test_action_steps_on_a_passing_and_a_failing_folder(tmp_path: Path) -> None:
    junit_cmd, github_cmd = action_commands()
    assert "--format junit" in junit_cmd and "--exit-zero" in junit_cmd and "--format github" in github_cmd
    broken = Path(shutil.copytree(EXAMPLE, tmp_path / "broken_v1"))
    (broken / "eval_log.txt").write_text("edited after the run\n")
    junit = tmp_path / "audit-junit.xml"
    first = audit("verify", EXAMPLE, broken, "--format", "junit", "--output", junit, "--exit-zero")
    assert first.code == 0
    suites = ET.parse(junit).getroot()
    failures = [(case.get("classname"), case.get("name")) for case in suites.iter("testcase")
                if case.find("failure") is not None]
    assert failures == [(str(broken), "evidence_complete")], failures
    summary = tmp_path / "summary.md"
    second = audit("verify", EXAMPLE, broken, "--format", "github", env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert second.code == 1 and "::error" in second.stdout and "eval_log.txt" in second.stdout
    assert summary.read_text().strip(), "the markdown report goes to the job summary"
    assert audit("verify", EXAMPLE, "--format", "github").code == 0
