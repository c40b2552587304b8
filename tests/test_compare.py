"""`audit compare` through the real CLI on the team's real M43 and M44 folders (the seeds' "M43 vs M44" table)
and on the committed example run: figures equal to what the evidence holds, deltas, and what differs."""

from __future__ import annotations

import json

import pytest
from conftest import REAL_RUNS, ROOT, audit

M43, M44 = REAL_RUNS / "m43_v1", REAL_RUNS / "m44_v1"
pytestmark = pytest.mark.skipif(not M44.is_dir(), reason="../shared/real_runs is not beside the checkout")


def test_m43_vs_m44_json() -> None:
    result = audit("compare", M43, M44, "--format", "json")
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    rows = {row["key"]: row for row in data["rows"]}
    assert data["runs"] == ["m43_v1", "m44_v1"]
    final = {}
    for name, folder in (("m43", M43), ("m44", M44)):
        records = [json.loads(line) for line in (folder / "training_output" / "metrics.jsonl").read_text().splitlines()
                   if line.strip()]
        flat = [{**r.get("metrics", {}), **r} for r in records]  # the team's format nests the trainer's figures
        final[name] = next(r for r in flat if "train_runtime" in r)
    assert rows["runtime_s"]["values"] == [final["m43"]["train_runtime"], final["m44"]["train_runtime"]]
    assert rows["steps"]["values"] == [138, 414] and rows["steps"]["deltas"] == ["+276 (+200.0%)"]
    assert rows["eval_examples"]["values"][1] == sum(
        1 for line in (M44 / "predictions.jsonl").read_text().splitlines() if line.strip())
    assert data["differences"]["config"]["training.optimizer"] == [None, "adafactor"]
    assert len(set(data["differences"]["commit"]["commit"])) == 2


def test_text_and_markdown_and_bad_input(tmp_path) -> None:  # type: ignore[no-untyped-def]
    example = ROOT / "submission_runs" / "example_cpu_v1"
    text = audit("compare", M44, example)
    assert text.code == 0 and text.stdout.splitlines()[0].split()[:3] == ["Metric", "m44_v1", "example_cpu_v1"]
    assert "What differs:" in text.stdout and "config: training.optimizer: adafactor | —" in text.stdout
    markdown = audit("compare", M43, M44, "--format", "markdown")
    assert markdown.stdout.startswith("| Metric | m43_v1 | m44_v1 | Δ m44_v1 vs m43_v1 |")
    assert "**What differs**" in markdown.stdout
    one = audit("compare", M44)
    assert one.code == 2 and one.stderr.startswith("Error: compare needs two")
    missing = audit("compare", M44, tmp_path / "nope")
    assert missing.code == 2 and missing.stderr.startswith("Error:")
