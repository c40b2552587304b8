"""`audit summary` through the real CLI: on the committed example run (recorded by `audit run`), on a real tiny
HF Trainer run, on the team's real M43/M44 folders and on NVML samples from the replayed sampler. Every figure is
checked against the file it came from, the plots are checked as PNG files, a re-render keeps people's text, and
the written summary does not change what verify decides (its own figures pass claims_consistent)."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest
from conftest import REAL_RUNS, ROOT, audit, verify_json
from test_gpu_capture import READINGS, gpu_folder

from auditor.evidence.nvsmi import read_gpu_samples

EXAMPLE = ROOT / "submission_runs" / "example_cpu_v1"
SECTIONS = ["## Executive Summary", "## Configuration", "## Performance", "## Loss Curve", "## Hardware",
            "## GPU Utilisation", "## Quality Gates", "## Evidence Artifacts", "## Reproduce"]
_BLOCK = re.compile(r"<!-- auditor:begin ([a-z-]+) -->\n.*?<!-- auditor:end \1 -->", re.S)


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG after checking it whole: signature, every chunk's CRC, IHDR first, IEND last,
    and IDAT inflating to exactly one filter byte plus a row of pixels per line."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, chunks, idat = 8, [], b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        chunks.append(kind)
        idat += body if kind == b"IDAT" else b""
        pos += 12 + length
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND" and b"IDAT" in chunks
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    assert len(zlib.decompress(idat)) == height * (1 + width * channels * depth // 8)
    return width, height


def section(text: str, heading: str) -> list[str]:
    """The lines under `## heading` up to the next heading or block marker."""
    lines = text.splitlines()
    start = lines.index(f"## {heading}") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith(("## ", "<!-- auditor:"))), len(lines))
    return lines[start:end]


def table(lines: list[str]) -> list[list[str]]:
    """Rows of the first markdown table in `lines` (header first, separator dropped)."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines if line.startswith("|")]
    return [r for r in rows if not all(set(c) <= set(":-") for c in r)]


def pairs(text: str, heading: str) -> dict[str, str]:
    """A two-column table as label → value."""
    return {row[0]: row[1] for row in table(section(text, heading))[1:]}


def shown(cell: str, value: float) -> bool:
    """Does the number a cell starts with equal `value` at the precision it is displayed?"""
    number = re.match(r"-?[\d,]+(?:\.(\d+))?", cell)
    assert number is not None, cell
    decimals = len(number.group(1) or "")
    return abs(float(number.group(0).replace(",", "")) - value) <= 0.5 * 10 ** -decimals + 1e-12


def outside(text: str) -> str:
    """What people own: the text with every owned block's body removed."""
    return _BLOCK.sub(lambda m: f"<{m.group(1)}>", text)


def records(folder: Path) -> list[dict[str, Any]]:
    lines = (folder / "training_output" / "metrics.jsonl").read_text().splitlines()
    return [{**r.get("metrics", {}), **r} for r in map(json.loads, filter(str.strip, lines))]


def statuses(result: Any) -> dict[str, str]:
    return {g["id"]: g["status"] for g in result.report["runs"][0]["gates"]}


@pytest.fixture
def example(tmp_path: Path) -> Path:
    return Path(shutil.copytree(EXAMPLE, tmp_path / "example_cpu_v1"))


@pytest.fixture
def hf_run(trained_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained_run, tmp_path / "tiny_v1"))


@pytest.mark.parametrize("which", ["example", "hf_run"])
def test_every_figure_comes_from_the_evidence(which: str, request: pytest.FixtureRequest) -> None:
    folder: Path = request.getfixturevalue(which)
    before = verify_json(folder)
    result = audit("summary", folder)
    assert result.code == 0, result.stderr
    manifest = folder / "run_manifest.json"
    run_id = json.loads(manifest.read_text())["run_id"] if manifest.exists() else folder.name
    out = folder / f"{run_id}_summary.md"
    text = out.read_text(encoding="utf-8")
    assert [line for line in text.splitlines() if line.startswith("## ")] == SECTIONS
    verdict = before.report["runs"][0]["verdict"]
    assert f"**Status:** {'✅' if verdict == 'pass' else '⚠️'} {verdict.upper()} (`audit verify`:" in text

    logged = [r for r in records(folder) if "loss" in r and "train_runtime" not in r]
    final = next(r for r in records(folder) if "train_runtime" in r)
    perf = pairs(text, "Performance")
    assert perf["Total Steps"] == f"{max(r['step'] for r in records(folder)):,}"
    assert shown(perf["Runtime"], final["train_runtime"])
    assert perf["Throughput"].endswith(" samples/sec") and shown(perf["Throughput"], final["train_samples_per_second"])
    assert shown(perf["Steps/sec"], final["train_steps_per_second"])
    assert shown(perf["First logged loss"], logged[0]["loss"]) and f"(step {logged[0]['step']})" in perf[
        "First logged loss"]
    assert shown(perf["Last logged loss"], logged[-1]["loss"])
    assert shown(perf["Mean train loss (run average)"], final["train_loss"])
    predictions = (folder / "predictions.jsonl").read_text().splitlines()
    assert perf["Eval examples"].startswith(f"{len([p for p in predictions if p.strip()])} ")

    curve = table(section(text, "Loss Curve"))
    assert curve[0][:3] == ["Step", "Loss", "Learning Rate"]
    rows = curve[1:]
    assert 2 <= len(rows) <= 15 and len(rows) == min(15, len(logged))
    assert int(rows[0][0]) == logged[0]["step"] and int(rows[-1][0]) == logged[-1]["step"]
    by_step = {r["step"]: r for r in logged}
    for step, loss, lr, *_ in rows:
        assert shown(loss, by_step[int(step)]["loss"]), (step, loss)
        assert float(lr) == pytest.approx(by_step[int(step)]["learning_rate"], rel=5e-3)

    loss_png = out.with_name(f"{run_id}_loss.png")
    assert f"![Loss curve]({loss_png.name})" in text and png_size(loss_png) == (800, 320)

    after = verify_json(folder)  # the summary is now evidence: its figures are claims verify checks
    assert after.report["runs"][0]["verdict"] == verdict
    claims = after.gate("claims_consistent")
    assert claims["status"] == "pass" and int(claims["message"].split()[0]) >= 15, claims
    changed = {g: s for g, s in statuses(after).items() if s != statuses(before)[g]}
    assert set(changed) <= {"claims_consistent"}, changed
    assert after.status("code_unchanged") == before.status("code_unchanged"), "no evidence-only claim was added"
    gates = table(section(text, "Quality Gates"))[1:]  # what verify says of the folder with the summary in it
    assert {row[0].strip("`"): row[1].split()[-1].lower() for row in gates} == statuses(after)
    messages = {g["id"]: g["message"].replace("|", "\\|") for g in after.report["runs"][0]["gates"]}
    assert all(row[2] == messages[row[0].strip("`")] for row in gates)


def test_rerender_rewrites_only_the_owned_blocks(example: Path) -> None:
    out = example / "example_cpu_v1_summary.md"
    assert audit("summary", example).code == 0
    first = out.read_text(encoding="utf-8")
    comment = next(line for line in first.splitlines() if line.startswith("<!-- Your words"))
    edited = first.replace(comment, "We trained the reference decoder for 300 steps.\n\nIt converged.")
    edited = edited.replace("\n<!-- auditor:begin performance -->", "\nA paragraph between blocks.\n\n"
                            "<!-- auditor:begin performance -->")
    edited = re.sub(r"<!-- auditor:begin hardware -->.*?<!-- auditor:end hardware -->\n", "", edited, flags=re.S)
    edited += "\n## Lessons Learned\n\n1. Keep the seed.\n"
    tampered = edited.replace("| Total Steps | 300 |", "| Total Steps | 299 |")
    assert tampered != edited
    out.write_text(tampered, encoding="utf-8")
    line = tampered.splitlines().index("| Total Steps | 299 |") + 1
    caught = verify_json(example).gate("claims_consistent")  # a figure edited inside a block is still a claim
    assert caught["status"] == "fail" and f"example_cpu_v1_summary.md:{line}" in caught["message"], caught

    again = audit("summary", example)
    assert again.code == 0 and "updated (text outside the auditor blocks kept)" in again.stdout
    second = out.read_text(encoding="utf-8")
    assert outside(second) == outside(edited), "people's text must survive byte for byte"
    assert "| Total Steps | 300 |" in second and "## Hardware" not in second, "a deleted block stays deleted"
    assert "**Status:** ✅ PASS" in second, "the status is verify's verdict on the folder with the mended summary"
    assert verify_json(example).report["runs"][0]["verdict"] == "pass"
    assert audit("summary", example).code == 0
    assert out.read_text(encoding="utf-8") == second, "rendering a settled folder again changes nothing"


def test_a_template_elsewhere_is_quoted_not_caught(hf_run: Path) -> None:
    """verify's message quotes the placeholder it found; the summary that shows the message is not a template."""
    (hf_run / "notes.txt").write_text("Results: TBD\n", encoding="utf-8")
    assert audit("summary", hf_run).code == 0
    text = (hf_run / "tiny_v1_summary.md").read_text(encoding="utf-8")
    assert "notes.txt:1 is a template: placeholder text 'TBD'" in text
    gate = verify_json(hf_run).gate("evidence_complete")
    assert gate["status"] == "fail" and [e["path"] for e in gate["evidence"]] == ["notes.txt"], gate


def test_hand_written_summary_and_broken_markers_are_refused(tmp_path: Path) -> None:
    m44 = Path(shutil.copytree(REAL_RUNS / "m44_v1", tmp_path / "m44_v1"))
    hand = m44 / "m44_summary.md"
    original = hand.read_bytes()
    refused = audit("summary", m44, "--output", hand)
    assert refused.code == 2 and refused.stderr.startswith("Error: ") and "written by hand" in refused.stderr
    assert hand.read_bytes() == original and len(refused.stderr.strip().splitlines()) == 1
    broken = tmp_path / "broken_summary.md"
    broken.write_text("# Mine\n\n<!-- auditor:begin performance -->\nold\n", encoding="utf-8")
    result = audit("summary", m44, "--output", broken)
    assert result.code == 2 and f"{broken}:3: block 'performance' is never closed" in result.stderr
    missing = audit("summary", tmp_path / "nope")
    assert missing.code == 2 and missing.stderr.startswith("Error: ")


@pytest.mark.skipif(not (REAL_RUNS / "m44_v1").is_dir(), reason="../shared/real_runs is not beside the checkout")
@pytest.mark.parametrize("name", ["m43_v1", "m44_v1"])
def test_real_runs(name: str, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(REAL_RUNS / name, tmp_path / name))
    before = verify_json(folder)
    result = audit("summary", folder)
    assert result.code == 0 and "verify verdict fail" in result.stdout, result.stdout + result.stderr
    text = (folder / f"{name}_summary.md").read_text(encoding="utf-8")
    assert text.startswith(f"# {name[:3].upper()} Milestone Summary: {name}\n")
    assert "**Status:** ❌ FAIL" in text and "checkpoint_saved` | ❌ FAIL" in text
    assert "**Date:** 2026-01-08 " in text and "(when env_snapshot.txt was recorded)" in text
    raw = (folder / "training_log.txt").read_bytes()  # m43's was written by PowerShell: UTF-16 with a BOM
    log = raw.decode("utf-16" if raw.startswith(b"\xff\xfe") else "utf-8")
    printed = [float(m) for m in re.findall(r"\{'loss': '?([\d.]+)", log)]
    final = next(r for r in records(folder) if "train_runtime" in r)
    perf = pairs(text, "Performance")
    assert perf["Total Steps"] == {"m43_v1": "138", "m44_v1": "414"}[name]
    assert shown(perf["Last logged loss"], printed[-1]) and shown(perf["First logged loss"], printed[0])
    assert shown(perf["Mean train loss (run average)"], final["train_loss"])
    assert shown(perf["Throughput"], final["train_samples_per_second"])
    index = json.loads((folder / "training_output/final_model/model.safetensors.index.json").read_text())
    if name == "m44_v1":  # 6 × parameters × samples/s × sequence length (128 in m44_config.yaml)
        flops = 6 * index["metadata"]["total_parameters"] * final["train_samples_per_second"] * 128
    else:  # no sequence length declared: the trainer's total_flos over its runtime
        flops = final["total_flos"] / final["train_runtime"]
    assert perf["MFU"].startswith(f"{flops / 209.5e12:.1%} of 1 × NVIDIA RTX 5090")
    rows = table(section(text, "Loss Curve"))[1:]
    assert len(rows) <= 15 and shown(rows[0][1], printed[0]) and shown(rows[-1][1], printed[-1])
    assert all(any(shown(row[1], p) for p in printed) for row in rows)
    hardware = pairs(text, "Hardware")
    assert hardware["Driver"] == "576.88" and hardware["PyTorch"] == "2.11.0.dev20260102+cu128"
    assert "Not re-runnable from the evidence" in "\n".join(section(text, "Reproduce"))
    png_size(folder / f"{name}_loss.png")
    after = verify_json(folder)
    assert after.failing() == before.failing() and after.report["runs"][0]["verdict"] == "fail"


def test_gpu_samples_give_the_utilisation_table_and_plot(tmp_path: Path) -> None:
    folder = gpu_folder(tmp_path, READINGS["rounds"])
    result = audit("summary", folder, "--milestone", "M45")
    assert result.code == 0, result.stderr
    text = (folder / "run_summary.md").read_text(encoding="utf-8")
    assert text.startswith("# M45 Milestone Summary: run\n") and "**Milestone:** M45" in text
    stats = read_gpu_samples(folder / "gpu_samples.jsonl", "gpu_samples.jsonl")
    util = pairs(text, "GPU Utilisation")
    assert util["Mean utilisation"] == f"{stats.mean_utilization:.1f}%"
    assert util["Peak utilisation"] == f"{stats.max_utilization:.0f}%"
    assert util["Peak memory held by the run"].startswith(f"{stats.max_process_memory_mib:,.0f} MiB")
    assert util["NVML samples"].startswith("12 over 2 device(s)")
    assert "![GPU utilisation](run_gpu.png)" in text and png_size(folder / "run_gpu.png") == (800, 640)
    assert pairs(text, "Hardware")["GPU model"].startswith(READINGS["facts"]["devices"][0]["name"])


def test_stdout_and_no_matplotlib(example: Path) -> None:
    listing = sorted(p.name for p in example.iterdir())
    printed = audit("summary", example, "--output", "-")
    assert printed.code == 0 and printed.stdout.startswith("# Run Summary: example_cpu_v1\n")
    assert "## Performance" in printed.stdout and sorted(p.name for p in example.iterdir()) == listing
    blocked = ("import sys; sys.modules['matplotlib'] = None; sys.argv = ['audit', 'summary', sys.argv[1]]; "
               "from auditor.cli import main; main()")
    proc = subprocess.run([sys.executable, "-c", blocked, str(example)], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "note: matplotlib is not installed" in proc.stderr
    text = (example / "example_cpu_v1_summary.md").read_text(encoding="utf-8")
    assert "_matplotlib is not installed: `pip install 'auditor[plot]'` to draw the plots_" in text
    assert not (example / "example_cpu_v1_loss.png").exists()
