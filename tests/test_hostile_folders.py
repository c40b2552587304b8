"""Hostile run folders (tests/hostile.py) through verify. In process, under hypothesis: execute and every renderer
never raise anything but AuditInputError, no gate hits its own bug (INTERNAL_ERROR), the folder is untouched.
Through the real CLI, one test per named hostile class: exit 0/1 (or 2 with exactly one `Error:` line) within a
bound, never a traceback or "internal error", nothing written in the folder. bench/fuzz_verify.py runs the same
generator for 100,000 cases."""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest
from hostile import (
    DEEP_JSON_LEVELS,
    CliRun,
    HostileSpec,
    audit_and_render,
    can_deny_reads,
    deep_json,
    hostile_specs,
    internal_errors,
    make_char_device,
    make_deep_tree,
    make_fifo,
    make_socket,
    make_sparse,
    materialize,
    remove_tree,
    run_cli,
    scratch_dir,
    snapshot_changes,
    tree_snapshot,
    write_base,
)
from hypothesis import HealthCheck, Phase, given, note, settings

CLI_TIMEOUT = 60
EXAMPLE_LIMIT = 15  # seconds one hypothesis example may take before it counts as a hang
# no shrinking: a spec already names its mutations, and shrinking a hang costs EXAMPLE_LIMIT per attempt
PROPERTY = settings(max_examples=40, deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate),
                    suppress_health_check=[HealthCheck.too_slow])


class ExampleHang(BaseException):
    """Raised by SIGALRM: a BaseException, so a gate's `except Exception` cannot turn it into a result."""


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise ExampleHang()


def check_in_process(spec: HostileSpec) -> None:
    """Build `spec`, verify it in process and render every format; the in-process contract."""
    note(spec.describe())
    with scratch_dir() as parent:
        folder = materialize(spec, parent)
        note("\n".join(folder.notes))
        before = tree_snapshot(folder.path)
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, EXAMPLE_LIMIT)
        try:
            outcome, report = audit_and_render(folder.path)
        except ExampleHang:
            pytest.fail(f"no verdict within {EXAMPLE_LIMIT}s: {spec.describe()}\n" + "\n".join(folder.notes))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        assert outcome in ("pass", "warn", "fail", "exit2")
        assert report is None or internal_errors(report) == []
        assert snapshot_changes(before, tree_snapshot(folder.path)) == []


@PROPERTY
@given(spec=hostile_specs())
def test_verify_survives_hostile_folders(spec: HostileSpec) -> None:
    check_in_process(spec)


@settings(PROPERTY, max_examples=3)
@given(spec=hostile_specs(heavy=True, max_mutations=2))
def test_verify_survives_heavy_hostile_folders(spec: HostileSpec) -> None:
    """The same with 2 GiB sparse files and 1,500-deep trees in the draw."""
    check_in_process(spec)


# ---------------------------------------------------------------- named classes through the real CLI


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A tmp dir removed with remove_tree (pytest's own cleanup recurses and fails on deep trees)."""
    with scratch_dir("hostile-cli-") as path:
        yield path


@pytest.fixture
def run(scratch: Path) -> Path:
    """A fresh plausible seed-style run folder to break."""
    return write_base(scratch / "run_v1")


def verify(folder: Path, *args: str, env: dict[str, str] | None = None, unprivileged: bool = False,
           codes: tuple[int, ...] = (0, 1)) -> CliRun:
    """`audit verify FOLDER ARGS` through the real CLI: the contract, and the folder unchanged."""
    before = tree_snapshot(folder)
    result = run_cli(["verify", folder, *args], timeout=CLI_TIMEOUT, env=env, unprivileged=unprivileged)
    assert result.problems() == [], result.tail()
    assert result.code in codes, result.tail()
    assert snapshot_changes(before, tree_snapshot(folder)) == [], result.tail()
    return result


def gates(result: CliRun) -> dict[str, dict[str, str]]:
    """Gate id -> result, from a `--format json` run."""
    return {g["id"]: g for g in json.loads(result.stdout)["runs"][0]["gates"]}


def test_fifo_as_training_log(run: Path) -> None:
    make_fifo(run / "training_log.txt")
    result = verify(run, "--format", "json")
    assert gates(result)["evidence_complete"]["status"] == "fail", result.tail()


@pytest.mark.parametrize("rel", ["training_log.txt", "training_output/metrics.jsonl"])
def test_sparse_2gib_file_without_newline(run: Path, rel: str) -> None:
    make_sparse(run / rel)
    verify(run)


def test_directory_tree_1200_deep(run: Path) -> None:
    make_deep_tree(run, 1200, ("metrics.jsonl", b'{"step": 1, "loss": 0.5}\n'))
    make_deep_tree(run / "training_output", 1200, ("training_log.txt", b"Training completed!\n"), name="x")
    verify(run)


def test_symlink_loops(run: Path) -> None:
    log = run / "training_log.txt"
    log.unlink()
    os.symlink("training_log.txt", log)  # a link to itself
    os.symlink("b.jsonl", run / "training_output" / "a.jsonl")
    os.symlink("a.jsonl", run / "training_output" / "b.jsonl")  # a two-link cycle
    os.symlink("..", run / "training_output" / "final_model" / "up")  # a folder link back up the tree
    verify(run)


@pytest.mark.parametrize("rel", ["run_manifest.json", "results.json", "training_output/trainer_state.json"])
def test_json_nested_100000_deep(run: Path, rel: str) -> None:
    (run / rel).write_bytes(deep_json(DEEP_JSON_LEVELS, "list" if rel == "results.json" else "dict"))
    result = verify(run, "--format", "json")
    if rel == "run_manifest.json":
        assert gates(result)["manifest_valid"]["status"] == "fail", result.tail()


@pytest.mark.parametrize("line", [
    '{"step": %s, "loss": 0.5}' % ("9" * 5000),
    '{"step": 41, "loss": %s}' % ("9" * 5000),
    '{"step": 99999999999999999999, "loss": 0.5}',
    '{"step": -99999999999999999999, "loss": 1e400}',
], ids=["step-5000-digits", "loss-5000-digits", "step-beyond-int64", "negative-step-beyond-int64"])
def test_huge_numbers_in_metrics(run: Path, line: str) -> None:
    with open(run / "training_output" / "metrics.jsonl", "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
    verify(run)


def _text_rows(text: str) -> list[str]:
    """The rows of the text report's table, each as its cells joined with wrapped lines rejoined."""
    rows: list[list[str]] = []
    for line in text.splitlines():
        if not line.startswith("│"):
            continue
        cells = [c.strip() for c in line.strip("│").split("│")]
        if cells[0] or not rows:
            rows.append(cells)
        else:
            rows[-1] = [a + b for a, b in zip(rows[-1], cells, strict=False)]
    return ["│".join(r) for r in rows]


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.mark.parametrize("where", ["log-traceback", "folder-name"])
def test_rich_markup_is_shown_literally(scratch: Path, where: str) -> None:
    """Text from evidence that looks like rich markup ([/tmp/x], [rank0]:, [bold]) reaches the text report as
    written: neither swallowed as a style nor an error."""
    run = write_base(scratch / ("run [bold]x[/tmp/x]" if where == "folder-name" else "run_v1"))
    with open(run / "training_log.txt", "a", encoding="utf-8") as handle:
        handle.write("[rank0]: Traceback (most recent call last): [/tmp/x]\n[rank0]:   File \"train.py\", line 3\n"
                     "RuntimeError: [rank0]: bad [/tmp/x]\n")
    report = verify(run, "--format", "json")
    text = verify(run, "--format", "text")
    if where == "folder-name":
        assert _squash(str(run)) in _squash(text.stdout), text.tail(4000)
        return
    quoted = [g["message"] for g in gates(report).values() if "[rank0]" in g["message"] or "[/tmp/x]" in g["message"]]
    assert quoted, f"no gate quotes the log's crash lines, nothing to check:\n{report.stdout}"
    rows = _squash("\n".join(_text_rows(text.stdout)))
    for message in quoted:
        assert _squash(message) in rows, f"not shown literally: {message!r}\n{text.tail(4000)}"


@pytest.mark.parametrize("target", ["missing-folder", "a-directory"])
def test_unwritable_github_step_summary(run: Path, scratch: Path, target: str) -> None:
    path = scratch / "no-such-dir" / "summary.md" if target == "missing-folder" else scratch
    verify(run, "--format", "github", env={"GITHUB_STEP_SUMMARY": str(path)}, codes=(0, 1, 2))


@pytest.mark.skipif(not can_deny_reads(), reason="cannot drop root's DAC override or become uid 65534 here")
@pytest.mark.parametrize("rel", ["training_log.txt", "training_output/metrics.jsonl", "training_output",
                                 "training_output/final_model/model.safetensors", "SHA256SUMS"])
def test_unreadable_evidence(run: Path, rel: str) -> None:
    """chmod 000, audited by a reader it bites (uid 65534, or root without DAC override)."""
    os.chmod(run / rel, 0)
    verify(run, unprivileged=True)


@pytest.mark.parametrize("oddity", ["socket-as-metrics", "devzero-link-as-log", "char-device-as-model",
                                    "folder-as-log", "file-as-training_output", "link-out-as-summary"])
def test_file_system_oddities(run: Path, oddity: str) -> None:
    if oddity == "socket-as-metrics":
        make_socket(run / "training_output" / "metrics.jsonl")
    elif oddity == "devzero-link-as-log":
        (run / "training_log.txt").unlink()
        os.symlink("/dev/zero", run / "training_log.txt")
    elif oddity == "char-device-as-model":
        make_char_device(run / "training_output" / "final_model" / "model.safetensors")
    elif oddity == "folder-as-log":
        (run / "training_log.txt").unlink()
        (run / "training_log.txt").mkdir()
    elif oddity == "file-as-training_output":
        remove_tree(run / "training_output")
        (run / "training_output").write_text("not a folder\n", encoding="utf-8")
    else:
        (run / "tiny_summary.md").unlink()
        os.symlink("/etc/passwd", run / "tiny_summary.md")
    verify(run)
