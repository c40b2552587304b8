"""The format registry drives `audit formats` and docs/formats.md, and every registered format is listed."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import ROOT, audit

from auditor.evidence.sources import CHECKPOINTS, METRICS
from auditor.formats import formats_markdown

# Every format issue 11 names, by its registry id (a format that disappears from the registry fails here).
EXPECTED = {"metrics_jsonl", "hf_trainer_state", "printed_progress", "csv_log", "mlflow", "mlperf", "notebook",
            "tensorboard", "wandb", "safetensors", "torch_archive", "dcp", "deepspeed", "orbax", "keras"}


def test_docs_formats_md_is_what_the_registry_says() -> None:
    assert (ROOT / "docs" / "formats.md").read_text(encoding="utf-8") == formats_markdown(), \
        "regenerate with `audit formats --format markdown > docs/formats.md`"


def test_audit_formats_lists_every_format_with_what_it_looks_for() -> None:
    done = audit("formats", "--format", "json")
    assert done.code == 0, done.stderr
    rows = {row["id"]: row for row in json.loads(done.stdout)["formats"]}
    assert set(rows) == set(METRICS) | set(CHECKPOINTS)
    assert set(rows) >= EXPECTED, f"missing: {sorted(EXPECTED - set(rows))}"
    for row in rows.values():
        assert row["looks_for"] and row["reads"] and row["proves"] and row["kind"] in ("metrics", "checkpoint")
    text = audit("formats")
    assert text.code == 0
    for format_id, row in rows.items():
        assert format_id in text.stdout and row["looks_for"][0] in text.stdout


def test_a_folder_of_one_format_is_a_run_folder(tmp_path: Path) -> None:
    """A folder with nothing but a Lightning CSV log is audited (exit 1: no checkpoint), not refused with exit 2."""
    run = tmp_path / "csv_only"
    run.mkdir()
    (run / "metrics.csv").write_text("epoch,step,train_loss\n0,0,2.0\n0,1,1.0\n", encoding="utf-8")
    done = audit("verify", run, "--format", "json")
    assert done.code == 1, done.stderr
    assert done.status("loss_decreased") == "pass"
    empty = tmp_path / "nothing"
    empty.mkdir()
    (empty / "notes.md").write_text("hello\n", encoding="utf-8")
    refused = audit("verify", empty)
    assert refused.code == 2 and refused.stderr.startswith("Error:")


def test_discovery_is_bounded_in_depth_and_says_where_it_stopped(tmp_path: Path) -> None:
    run = tmp_path / "deep_run"
    deep = run.joinpath(*(f"d{i}" for i in range(40)))
    deep.mkdir(parents=True)
    (deep / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n', encoding="utf-8")
    (run / "training_log.txt").write_text("step 1 loss 2.0\nstep 2 loss 1.0\n", encoding="utf-8")
    done = audit("verify", run, "--format", "json")
    gate = done.gate("evidence_complete")
    cut = "/".join(f"d{i}" for i in range(33))
    assert gate["status"] == "fail" and gate["message"].startswith(f"{cut} lies more than 32 folders deep"), gate
    assert done.gate("loss_decreased")["evidence"][0]["path"] == "training_log.txt"  # the deep file was not read


def test_a_fifo_named_like_evidence_is_reported_not_waited_on(tmp_path: Path) -> None:
    """Discovery opens evidence through the one opener: a FIFO named metrics.jsonl never blocks verify."""
    import os

    run = tmp_path / "fifo_run"
    run.mkdir()
    os.mkfifo(run / "metrics.jsonl")
    (run / "training_log.txt").write_text("step 1 loss 2.0\nstep 2 loss 1.0\n", encoding="utf-8")
    done = audit("verify", run, "--format", "json")
    assert done.code == 1
    gate = done.gate("evidence_complete")
    assert gate["message"].startswith("metrics.jsonl is not a regular file"), gate
