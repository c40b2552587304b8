"""The README's walk from `audit run` to `audit summary`, `audit compare` and `audit package` (the newcomer's
path), run command by command as written there, through the real CLI, in a fresh folder beside the committed
example run."""

from __future__ import annotations

import re
import shlex
import shutil
import zipfile
from pathlib import Path

from conftest import ROOT, CliResult, audit

WALK_START, WALK_END = "## From a run to a milestone report", "Audit any run folder"


def walk_commands() -> list[list[str]]:
    """The `audit ...` lines of the walk's bash blocks: comments dropped, optional `[...]` arguments left out."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    walk = text[text.index(WALK_START):text.index(WALK_END)]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", walk, re.S):
        for line in block.splitlines():
            line = re.sub(r"\s*\[[^\]]*\]", "", line.split("#", 1)[0]).strip()
            if line.startswith("audit "):
                commands.append(shlex.split(line))
    return commands


def test_readme_walk(tmp_path: Path) -> None:
    commands = walk_commands()
    assert [c[1] for c in commands] == ["run", "summary", "compare", "package", "attest", "reproduce"]
    shutil.copytree(ROOT / "submission_runs" / "example_cpu_v1", tmp_path / "submission_runs" / "example_cpu_v1")
    results: dict[str, CliResult] = {}
    for command in commands:
        result = audit(*command[1:], cwd=tmp_path)
        assert result.code == 0, f"{shlex.join(command)}: exit {result.code}\n{result.stdout[-1500:]}{result.stderr}"
        results[command[1]] = result
    run = tmp_path / "submission_runs" / "m45_v1"
    summary = (run / "m45_v1_summary.md").read_text(encoding="utf-8")
    assert summary.startswith("# M45 Milestone Summary: m45_v1\n") and "**Status:** ✅ PASS" in summary
    assert (run / "m45_v1_loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    compared = results["compare"].stdout
    assert compared.startswith("| Metric | example_cpu_v1 | m45_v1 | Δ m45_v1 vs example_cpu_v1 |\n")
    assert "| Steps | 300 | 300 | +0 (+0.0%) |" in compared and "| config: run.seed | 0 | 1 |" in compared
    with zipfile.ZipFile(tmp_path / "m45_v1.zip") as archive:
        names = archive.namelist()
    assert {"m45_v1/m45_v1_summary.md", "m45_v1/m45_v1_loss.png", "SHA256SUMS", "audit_report.json"} <= set(names)
    assert re.search(r"^sha256 [0-9a-f]{64}$", results["package"].stdout, re.M)
    assert (tmp_path / "m45_v1.intoto.json").is_file()
    assert results["reproduce"].stdout.startswith("reproduce: BITWISE")
