"""Good folders written the way users' tools write them must still pass: PowerShell UTF-16 + CRLF logs,
UTF-8 BOMs, cp1252 summaries, emoji mis-decoded through a console code page."""

from __future__ import annotations

from pathlib import Path

from conftest import verify_json


def test_utf16_crlf_log_and_bom_summary(run_dir: Path) -> None:
    log = run_dir / "training_log.txt"
    log.write_bytes(b"\xff\xfe" + log.read_text().replace("\n", "\r\n").encode("utf-16-le"))
    summary = run_dir / "tiny_summary.md"
    summary.write_bytes(b"\xef\xbb\xbf" + summary.read_text().replace("\n", "\r\n").encode("utf-8"))
    result = verify_json(run_dir)
    assert result.code == 0 and result.failing() == set(), result.report
    assert result.status("claims_consistent") == "pass"


def test_cp1252_and_mojibake(run_dir: Path) -> None:
    summary = run_dir / "tiny_summary.md"
    text = summary.read_text().replace("✅", "\u0393\u00a3\u00e0")  # '✅' seen through cp437: 'Γ£à'
    summary.write_bytes(text.replace("→", "->").encode("utf-8") + "Café résumé – naïve\r\n".encode("cp1252"))
    result = verify_json(run_dir)
    assert result.code == 0 and result.failing() == set(), result.report


def test_metrics_fallbacks_trainer_state_then_printed_dicts(run_dir: Path) -> None:
    import shutil

    (run_dir / "training_output" / "metrics.jsonl").unlink()
    result = verify_json(run_dir)
    assert result.status("loss_decreased") == "pass"
    assert result.gate("loss_decreased")["evidence"][0]["path"].endswith("checkpoint-40/trainer_state.json")
    shutil.rmtree(run_dir / "training_output" / "checkpoints")
    result = verify_json(run_dir)
    assert result.status("loss_decreased") == "pass"
    assert result.gate("loss_decreased")["evidence"][0]["path"] == "training_log.txt"
    assert result.status("training_completed") == "pass"
    assert result.status("claims_consistent") == "pass"  # loss-curve rows matched at inferred steps
