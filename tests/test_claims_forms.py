"""Summary claims the way people write them, through the real `audit verify` CLI (click, in process) on real files
in tmp folders. Every form has a true and a false version: the true one passes claims_consistent, the false one
fails it naming the summary's file:line. Labels and tables that are not claims never fail, whatever they say."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import REAL_RUNS

from auditor.cli import cli

FIRST_ROW = 5  # summary line of the first table row: title, blank, header, separator, rows
EVIDENCE = {"runtime": 203.4, "samples": 8.114, "steps_s": 2.036, "tokens": 1038.6, "max_step": 414,
            "last_loss": 0.6624, "mean_loss": 0.8573, "epoch": 3.0}


def make_run(root: Path, summary: str, *, name: str = "m44_v1", summary_name: str = "m44_summary.md",
             final_extra: dict[str, Any] | None = None, eval_records: tuple[dict[str, Any], ...] = (),
             params: int | None = None, **overrides: float) -> Path:
    """A seed-style run folder: a log, metrics.jsonl (loss every 10 steps, optional eval records, the trainer's
    final record), an optional shard index declaring the parameter count, and the summary."""
    facts = {**EVIDENCE, **overrides}
    folder = root / name
    out = folder / "training_output"
    out.mkdir(parents=True)
    max_step = int(facts["max_step"])
    steps = [*range(10, max_step, 10), max_step]
    records: list[dict[str, Any]] = []
    for i, step in enumerate(steps):
        loss = facts["last_loss"] if step == max_step else round(2.21 - 1.4 * i / len(steps), 4)
        records.append({"step": step, "loss": loss, "epoch": round(facts["epoch"] * step / max_step, 4),
                        "learning_rate": 2e-5})
    records += list(eval_records)
    records.append({"step": max_step, "epoch": facts["epoch"], "train_runtime": facts["runtime"],
                    "train_samples_per_second": facts["samples"], "train_steps_per_second": facts["steps_s"],
                    "train_tokens_per_second": facts["tokens"], "train_loss": facts["mean_loss"],
                    "total_flos": 8.371e14, **(final_extra or {})})
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    (folder / "training_log.txt").write_text("loading model\ntraining\nsaved\n", encoding="utf-8")
    if params is not None:
        model = out / "final_model"
        model.mkdir()
        (model / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_embd": 64}), encoding="utf-8")
        index = {"metadata": {"total_parameters": params, "total_size": params * 2},
                 "weight_map": {"wte.weight": "model-00001-of-00001.safetensors"}}
        (model / "model.safetensors.index.json").write_text(json.dumps(index), encoding="utf-8")
    (folder / summary_name).write_text(summary, encoding="utf-8")
    return folder


def table(*rows: str, header: str = "| Metric | Value |") -> str:
    """A summary whose table header is on line 3 and first row on line FIRST_ROW."""
    columns = header.count("|") - 1
    return "\n".join(["# M44 Summary", "", header, "|" + "---|" * columns, *rows, ""])


def verify(folder: Path) -> dict[str, Any]:
    """`audit verify FOLDER --format json` through the click command; the report's gates by id."""
    result = CliRunner().invoke(cli, ["verify", str(folder), "--format", "json"])
    assert result.exit_code in (0, 1), result.output
    report = json.loads(result.output)
    return {g["id"]: g for g in report["runs"][0]["gates"]}


def claims_gate(folder: Path) -> dict[str, Any]:
    gate: dict[str, Any] = verify(folder)["claims_consistent"]
    return gate


def assert_fails_at(gate: dict[str, Any], path: str, line: int) -> None:
    assert gate["status"] == "fail", gate
    assert f"{path}:{line}:" in gate["message"], gate
    assert {"path": path, "line": line, "note": None} in gate["evidence"], gate


# -- forms of figures ------------------------------------------------------------------------------------------
FORMS = [  # label, true text, false text, evidence
    ("Throughput", "≈1.2k tok/s", "≈1.5k tok/s", {"tokens": 1238.0}),
    ("Tokens/s", "~1.2k", "~1.4k", {"tokens": 1238.0}),
    ("Tokens/s", "1.2k", "1.3k", {"tokens": 1238.0}),
    ("Total Steps", "412/414 (99.5%)", "400/414 (96.6%)", {"max_step": 412}),
    ("Runtime", "3 min 23 s", "3 min 40 s", {}),
    ("Runtime", "1h 02m", "1h 05m", {"runtime": 3725.0}),
    ("Runtime", "0:03:23", "0:04:10", {}),
    ("Runtime", "~3.4 min", "~4.5 min", {}),
    ("Runtime", "**203.4 seconds** (~3.4 min)", "**250.0 seconds** (~4.2 min)", {}),
    ("Runtime", "1,234.5 s", "1,244.5 s", {"runtime": 1234.46}),
    ("Tokens/s", "2.5 M", "2.6 M", {"tokens": 2_512_000.0}),
    ("Tokens/s", "2.5M tok/s", "2.6M tok/s", {"tokens": 2_512_000.0}),
    ("Throughput", "8.1 samples/s (≈1.04k tok/s)", "8.1 samples/s (≈1.5k tok/s)", {}),
    ("Throughput", "8.1 samples/s (≈1.04k tok/s)", "9.1 samples/s (≈1.04k tok/s)", {}),
    ("Throughput", "8.11 samples/sec, 2.04 steps/sec", "8.11 samples/sec, 2.50 steps/sec", {}),
    ("Final Loss", "0.66 (epoch 3)", "0.70 (epoch 3)", {}),
    ("Final Loss", "**0.66**", "**0.70**", {}),
    ("Final Loss", "*0.66*", "*0.70*", {}),
    ("Final Loss", "`0.66`", "`0.70`", {}),
    ("Final Loss", "_0.66_", "_0.70_", {}),
    ("Final Loss", "~0.66", "~0.80", {}),
    ("Epochs", "**3**", "**2**", {}),
]


@pytest.mark.parametrize(("label", "true", "false", "evidence"), FORMS,
                         ids=[f"{f[0]}:{f[1]}" for f in FORMS])
def test_written_forms_pass_when_true_and_fail_when_false(tmp_path: Path, label: str, true: str, false: str,
                                                         evidence: dict[str, float]) -> None:
    good = claims_gate(make_run(tmp_path / "good", table(f"| {label} | {true} |"), **evidence))
    assert good["status"] in ("pass", "warn") and "placeholder" not in good["message"], good
    bad = claims_gate(make_run(tmp_path / "bad", table(f"| {label} | {false} |"), **evidence))
    assert_fails_at(bad, "m44_summary.md", FIRST_ROW)


def test_parameter_count_in_millions(tmp_path: Path) -> None:
    good = claims_gate(make_run(tmp_path / "good", table("| Parameters | 2.5M params |"), params=2_512_345))
    assert good["status"] == "pass", good
    bad = claims_gate(make_run(tmp_path / "bad", table("| Parameters | 2.6M params |"), params=2_512_345))
    assert_fails_at(bad, "m44_summary.md", FIRST_ROW)
    assert "metadata.total_parameters" in bad["message"]


# -- label variants --------------------------------------------------------------------------------------------
LABELS = [  # label, true text, false text
    ("Loss", "0.66", "0.70"),
    ("Train loss (final)", "0.662", "0.700"),
    ("Final training loss", "0.662", "0.700"),
    ("Samples/s", "8.11", "8.50"),
    ("Samples per second", "8.11", "8.50"),
    ("train_samples_per_second", "8.114", "8.500"),
    ("Tokens/s", "1,038.6", "1,100.0"),
    ("Tokens per second", "1039", "1100"),
    ("Steps/s", "2.04", "2.50"),
    ("Runtime (s)", "203.4", "250.0"),
    ("Runtime (min)", "3.4", "4.0"),
    ("Train runtime", "203.4 s", "250.0 s"),
    ("Training time", "203.4 seconds", "250.0 seconds"),
    ("Wall time", "203.4 s", "250.0 s"),
    ("Steps", "414", "400"),
    ("Global step", "414", "400"),
    ("Epochs completed", "3", "2"),
    ("Loss (start)", "2.21", "2.50"),
    ("First logged loss", "2.21", "2.50"),
    ("Mean train loss", "0.857", "0.900"),
]


@pytest.mark.parametrize(("label", "true", "false"), LABELS, ids=[f[0] for f in LABELS])
def test_label_variants_are_claims(tmp_path: Path, label: str, true: str, false: str) -> None:
    good = claims_gate(make_run(tmp_path / "good", table(f"| {label} | {true} |")))
    assert good["status"] == "pass", good
    bad = claims_gate(make_run(tmp_path / "bad", table(f"| {label} | {false} |")))
    assert_fails_at(bad, "m44_summary.md", FIRST_ROW)


NOT_CLAIMS = ["| Loss scale | 65536 |", "| Tokens/sec (computed) | 99,999 |", "| Max steps (plan) | 1000 |",
              "| Wrapper wall time | 999 s |", "| Time | 2026 |", "| Eval runtime | 12 s |", "| Test loss | 9.9 |",
              "| Steps per epoch | 138 |", "| Effective batch | 16 |", "| Warmup steps | 50 |",
              "| Learning rate | 2e-5 |", "| Best loss | 0.1 |", "| Throughput (per GPU) | 1.0 samples/s |",
              "| Epochs | 5 (planned) |", "| Loss decrease | 70% |", "| Eval samples/s | 99 |",
              "| Trainable parameters | 12 |", "| Model TFLOP/s achieved | 999 |"]


def test_labels_that_name_no_recorded_figure_are_not_claims(tmp_path: Path) -> None:
    gate = claims_gate(make_run(tmp_path, table("| Total Steps | 414 |", *NOT_CLAIMS)))
    assert gate["status"] == "pass" and gate["message"].startswith("1 claimed figure(s)"), gate


# -- eval loss -------------------------------------------------------------------------------------------------
def test_eval_loss_is_compared_with_the_evaluation_not_the_training(tmp_path: Path) -> None:
    extra = {"eval_loss": 0.9132}
    good = claims_gate(make_run(tmp_path / "good", table("| Final eval loss | 0.913 |"), final_extra=extra))
    assert good["status"] == "pass", good
    trained = claims_gate(make_run(tmp_path / "train", table("| Final eval loss | 0.662 |"), final_extra=extra))
    assert_fails_at(trained, "m44_summary.md", FIRST_ROW)  # the training loss is not the evaluation's
    assert "eval_loss" in trained["message"]
    validation = claims_gate(make_run(tmp_path / "val", table("| Validation loss (final) | 0.95 |"),
                                      final_extra=extra))
    assert_fails_at(validation, "m44_summary.md", FIRST_ROW)


def test_eval_loss_from_a_csv_log(tmp_path: Path) -> None:
    for name, shown, status in (("good", "0.91", "pass"), ("bad", "0.66", "fail")):
        folder = make_run(tmp_path / name, table(f"| Eval loss | {shown} |"))
        logs = folder / "lightning_logs" / "version_0"
        logs.mkdir(parents=True)  # Lightning's sparse rows: the train loss at one step, val_loss at another
        (logs / "metrics.csv").write_text("epoch,step,train_loss,val_loss\n0,4,2.31,\n1,205,,1.05\n2,413,,0.9132\n",
                                          encoding="utf-8")
        gate = claims_gate(folder)
        assert gate["status"] == status, gate
        if status == "fail":
            assert_fails_at(gate, "m44_summary.md", FIRST_ROW)


def test_eval_loss_without_evaluation_evidence_is_never_the_train_loss(tmp_path: Path) -> None:
    """No evaluation loss recorded: the claim cannot be checked, and a true one is no false alarm."""
    gate = claims_gate(make_run(tmp_path, table("| Total Steps | 414 |", "| Final eval loss | 0.913 |")))
    assert gate["status"] == "pass" and gate["message"].startswith("1 claimed figure(s)"), gate


def test_eval_loss_from_metrics_jsonl_eval_records(tmp_path: Path) -> None:
    evals = ({"step": 207, "eval_loss": 1.05, "epoch": 1.5}, {"step": 414, "eval_loss": 0.9132, "epoch": 3.0})
    bad = claims_gate(make_run(tmp_path, table("| Final eval loss | 0.66 |"), eval_records=evals))
    assert_fails_at(bad, "m44_summary.md", FIRST_ROW)


# -- wide tables -----------------------------------------------------------------------------------------------
WIDE = [  # header, true row, false row
    ("| Metric | Value | Notes |", "| Total Steps | 414 | 3 epochs |", "| Total Steps | 400 | 3 epochs |"),
    ("| Metric | Target | Achieved |", "| Final loss | 0.50 | 0.66 |", "| Final loss | 0.66 | 0.50 |"),
    ("| Metric | Unit | Value | Notes |", "| Runtime | s | 203.4 | wall |", "| Runtime | s | 250.0 | wall |"),
    ("| Metric | Result | Source |", "| Samples/s | 8.11 | trainer |", "| Samples/s | 9.11 | trainer |"),
    ("| Metric | Figure | Notes |", "| Tokens/s | 1.04k | HF |", "| Tokens/s | 1.5k | HF |"),
    ("| Metric | Actual | Expected |", "| Epochs | 3 | 3 |", "| Epochs | 2 | 3 |"),
    ("| Metric | M43 | M44 |", "| Steps | 138 | 414 |", "| Steps | 414 | 138 |"),
    ("| Metric | M43 (1 epoch) | M44 (3 epochs) |", "| Runtime | 73.2s | **203.4s** |",
     "| Runtime | 203.4s | **73.2s** |"),
]


@pytest.mark.parametrize(("header", "true", "false"), WIDE, ids=[w[0] for w in WIDE])
def test_wide_tables_claim_their_value_column(tmp_path: Path, header: str, true: str, false: str) -> None:
    good = claims_gate(make_run(tmp_path / "good", table(true, header=header)))
    assert good["status"] == "pass", good
    bad = claims_gate(make_run(tmp_path / "bad", table(false, header=header)))
    assert_fails_at(bad, "m44_summary.md", FIRST_ROW)


@pytest.mark.parametrize("header", ["| Metric | M43 | M44 |", "| Metric | Target | Notes |",
                                    "| Metric | Before | After |", "| Metric | Baseline | Run 2 |"])
def test_other_runs_and_targets_are_not_this_runs_claims(tmp_path: Path, header: str) -> None:
    """In README.md (no run name to pick a column by) a comparison claims nothing; nor do targets."""
    summary = table("| Steps | 138 | 999 |", "| Final loss | 9.9 | 0.01 |", header=header)
    folder = make_run(tmp_path, summary, summary_name="README.md")
    assert claims_gate(folder)["status"] == "skip"


# -- templates and placeholders --------------------------------------------------------------------------------
def owned(name: str, *lines: str) -> list[str]:
    return [f"<!-- auditor:begin {name} -->", *lines, f"<!-- auditor:end {name} -->"]


@pytest.mark.parametrize("block", ["quality-gates", "performance"])
def test_a_template_inside_auditor_blocks_is_a_template(tmp_path: Path, block: str) -> None:
    lines = ["# M44 Summary", "", *owned(block, "## Results", "", "Lorem ipsum dolor sit amet."), "",
             "| Metric | Value |", "|---|---|", "| Total Steps | 414 |", ""]
    gates = verify(make_run(tmp_path, "\n".join(lines)))
    assert gates["evidence_complete"]["status"] == "fail", gates["evidence_complete"]
    assert "m44_summary.md:6 is a template: placeholder text 'Lorem ipsum'" in gates["evidence_complete"]["message"]
    assert_fails_at(gates["claims_consistent"], "m44_summary.md", 6)


def test_a_placeholder_figure_inside_a_block_fails_both(tmp_path: Path) -> None:
    lines = ["# M44 Summary", "", *owned("performance", "| Metric | Value |", "|---|---|", "| Total Steps | 414 |",
                                         "| Final Loss | TBD |"), ""]
    gates = verify(make_run(tmp_path, "\n".join(lines)))
    assert gates["evidence_complete"]["status"] == "fail"
    assert_fails_at(gates["claims_consistent"], "m44_summary.md", 7)


def test_verify_quoting_a_template_elsewhere_is_not_one(tmp_path: Path) -> None:
    row = ("| `evidence_complete` | ❌ FAIL | notes.txt:1 is a template: placeholder text 'TBD' | `notes.txt:1` |")
    lines = ["# M44 Summary", "", *owned("quality-gates", "| Gate | Status | Message | Where |", "|---|---|---|---|",
                                         row), "", "| Metric | Value |", "|---|---|", "| Total Steps | 414 |", ""]
    folder = make_run(tmp_path, "\n".join(lines))
    (folder / "notes.txt").write_text("Results: TBD\n", encoding="utf-8")
    gates = verify(folder)
    assert [e["path"] for e in gates["evidence_complete"]["evidence"]] == ["notes.txt"], gates["evidence_complete"]
    assert gates["claims_consistent"]["status"] == "pass", gates["claims_consistent"]


@pytest.mark.parametrize("cell", ["TODO", "X.XX seconds", "<fill in>", "???", "{{ runtime }}"])
def test_a_placeholder_where_a_figure_belongs_fails(tmp_path: Path, cell: str) -> None:
    gate = claims_gate(make_run(tmp_path, table("| Total Steps | 414 |", f"| Runtime | {cell} |")))
    assert_fails_at(gate, "m44_summary.md", FIRST_ROW + 1)
    assert "placeholder text" in gate["message"]


def test_not_applicable_is_no_placeholder(tmp_path: Path) -> None:
    gate = claims_gate(make_run(tmp_path, table("| Total Steps | 414 |", "| Tokens/s | N/A |", "| Loss | — |")))
    assert gate["status"] == "pass", gate


def test_parser_reads_scaled_figures_with_their_precision() -> None:
    """The parsed claims themselves: value, tolerance, approximation and unit of each written form."""
    from auditor.evidence.claims import parse_summary

    rows = ["| Throughput | 8.1 samples/s (≈1.04k tok/s) |", "| Runtime | 1h 02m |", "| Runtime | 3 min 23 s |",
            "| Parameters | 2.5M params |", "| Total Steps | 412/414 (99.5%) |", "| Final loss | 0.66 (epoch 3) |"]
    figures = parse_summary(tuple(table(*rows).splitlines()), "m44_summary.md").figures
    got = [(c.key, c.value, c.tolerance, c.approximate) for c in figures]
    assert got == [("samples_per_second", 8.1, None, False), ("tokens_per_second", 1040.0, 5.0, True),
                   ("runtime_seconds", 3720.0, 30.0, False), ("runtime_seconds", 203.0, 0.5, False),
                   ("num_parameters", 2_500_000.0, 50_000.0, False), ("total_steps", 412.0, None, False),
                   ("final_loss", 0.66, None, False)]


def test_a_loss_curve_under_a_train_loss_header(tmp_path: Path) -> None:
    header = "| Step | Train Loss | Eval Loss |"
    good = claims_gate(make_run(tmp_path / "good", table("| 414 | 0.66 | 0.91 |", header=header)))
    assert good["status"] == "pass", good
    bad = claims_gate(make_run(tmp_path / "bad", table("| 414 | 0.91 | 0.66 |", header=header)))
    assert_fails_at(bad, "m44_summary.md", FIRST_ROW)


def test_a_loss_range_in_one_cell(tmp_path: Path) -> None:
    good = claims_gate(make_run(tmp_path / "good", table("| Loss | 2.21 → 0.66 |")))
    assert good["status"] == "pass" and good["message"].startswith("2 claimed figure(s)"), good
    bad = claims_gate(make_run(tmp_path / "bad", table("| Loss | 2.21 → 0.50 |")))
    assert_fails_at(bad, "m44_summary.md", FIRST_ROW)


def test_rates_of_other_things_are_not_throughput_claims(tmp_path: Path) -> None:
    rows = ("| Total Steps | 414 |", "| Throughput | 45 TFLOPS |", "| Throughput | 120 ms/step |",
            "| Throughput | 8.11 samples/s (1.2 GB/s) |")
    gate = claims_gate(make_run(tmp_path, table(*rows)))
    assert gate["status"] == "pass" and gate["message"].startswith("2 claimed figure(s)"), gate


@pytest.mark.skipif(not (REAL_RUNS / "m44_v1").is_dir(), reason="../shared/real_runs is not beside the checkout")
def test_m44_comparison_table_claims_the_m44_column(tmp_path: Path) -> None:
    """The team's own m44_summary.md: `| Metric | M43 | M44 |`; only the M44 column is this run's claim."""
    folder = Path(shutil.copytree(REAL_RUNS / "m44_v1", tmp_path / "m44_v1"))
    summary = folder / "m44_summary.md"
    original = summary.read_text(encoding="utf-8")
    line = original.splitlines().index("| Steps | 138 | **414** |") + 1
    summary.write_text(original.replace("| Steps | 138 | **414** |", "| Steps | 414 | **138** |"), encoding="utf-8")
    gate = claims_gate(folder)
    assert gate["status"] == "fail" and [e["line"] for e in gate["evidence"]] == [54, line], gate
    summary.write_text(original.replace("| Steps | 138 | **414** |", "| Steps | 999 | **414** |"), encoding="utf-8")
    gate = claims_gate(folder)  # the M43 column is another run's: only the known line-54 finding remains
    assert [e["line"] for e in gate["evidence"]] == [54], gate
