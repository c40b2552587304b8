"""The MLPerf `:::MLLOG` source: real MLPerf Training v4.0 results (tests/data/mlperf_v4.0, Apache-2.0, laid out as
published: `<submitter>/results/<system>/<benchmark>/result_N.txt` and `<submitter>/systems/<system>.json`) read
through a Folder, logs written with the real mlperf_logging.mllog API, their defects, and agreement with the real
compliance checker."""

from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from auditor.evidence.metrics import MetricsSeries
from auditor.evidence.mlperf_system import system_description
from auditor.evidence.opener import Folder
from auditor.evidence.sources import METRICS, mlperf
from auditor.evidence.sources.mlperf import BUILTIN_SOURCE, MlperfLog, parse_rule, quality_target

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "mlperf_v4.0"
LLAMA = "ASUSTeK/results/ESC_N8A-E12/llama2_70b_lora"
RESNET = "Dell/results/XE9680x8H100-SXM-80GB/resnet"
GPT3 = "Google/results/cloud-tpu-v5p-1024-maxtext/gpt3"
HAS_MLPERF_LOGGING = importlib.util.find_spec("mlperf_logging") is not None

# file: (run_stop status, its line, an eval met the target, last eval_accuracy, evals, train_runtime s, samples)
EXPECTED: dict[str, tuple[str, int, bool, float, int, float, float, str]] = {
    f"{LLAMA}/result_0.txt": ("success", 52, True, 0.9232596755027771, 5, 1773.263, 3072.0, "1"),
    f"{LLAMA}/result_1.txt": ("success", 52, True, 0.9245682954788208, 5, 1757.738, 3072.0, "4538"),
    f"{LLAMA}/result_2.txt": ("success", 52, True, 0.9232569336891174, 5, 1764.256, 3072.0, "4539"),
    f"{LLAMA}/result_3.txt": ("success", 58, True, 0.9244294166564941, 6, 1996.12, 3456.0, "4540"),
    f"{LLAMA}/result_4.txt": ("success", 52, True, 0.9238185882568359, 5, 1764.042, 3072.0, "4541"),
    f"{LLAMA}/result_5.txt": ("success", 52, True, 0.9246538877487183, 5, 1766.423, 3072.0, "4542"),
    f"{LLAMA}/result_6.txt": ("success", 52, True, 0.9238566160202026, 5, 1767.908, 3072.0, "4543"),
    f"{LLAMA}/result_7.txt": ("success", 52, True, 0.922822117805481, 5, 1756.325, 3072.0, "4544"),
    f"{LLAMA}/result_8.txt": ("success", 52, True, 0.9241874814033508, 5, 1764.454, 3072.0, "4545"),
    f"{LLAMA}/result_9.txt": ("success", 52, True, 0.92393958568573, 5, 1767.759, 3072.0, "4546"),
    f"{RESNET}/result_0.txt": ("success", 404, True, 0.7609, 9, 789.524, 35 * 1281167.0, "1304"),
    f"{RESNET}/result_1.txt": ("success", 404, True, 0.76144, 9, 789.689, 35 * 1281167.0, "19251"),
    f"{RESNET}/result_2.txt": ("success", 404, True, 0.7596, 9, 788.882, 35 * 1281167.0, "4927"),
    f"{RESNET}/result_3.txt": ("success", 404, True, 0.76018, 9, 790.087, 35 * 1281167.0, "27344"),
    f"{RESNET}/result_4.txt": ("aborted", 411, False, 0.75894, 9, 836.642, 37 * 1281167.0, "8443"),
    f"{GPT3}/result_0.txt": ("success", 98, True, 2.6894531661184047, 24, 6887.633, 1207959552 / 2048, "8941"),
    f"{GPT3}/result_1.txt": ("success", 98, True, 2.689104216443754, 24, 6886.073, 1207959552 / 2048, "7356"),
    f"{GPT3}/result_2.txt": ("success", 98, True, 2.689374865886584, 24, 6923.118, 1207959552 / 2048, "8745"),
}


def read(root: Path, name: str) -> MetricsSeries:
    """Read one file of a run folder through a Folder and the registered source, as discovery would."""
    folder = Folder(root, sorted(p.name for p in root.iterdir() if p.is_file()))
    source = METRICS["mlperf"]
    assert source.claims(name, folder.head(name))
    [series] = source.read(folder, name)
    return series


def real(rel: str) -> MetricsSeries:
    folder, name = rel.rsplit("/", 1)
    return read(DATA / folder, name)


def test_format_info() -> None:
    info = MlperfLog.info
    assert (info.id, info.kind, info.looks_for) == ("mlperf", "metrics", ("result_*.txt", "*.log", "*.txt"))
    assert isinstance(METRICS["mlperf"], MlperfLog)
    source = METRICS["mlperf"]
    assert source.claims("result_0.txt", b"noise\n:::MLLOG {}")
    assert not source.claims("result_0.txt", b"no records here")
    assert not source.claims("metrics.jsonl", b':::MLLOG {"key": "run_start"}')


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_real_result_files(rel: str) -> None:
    status, line, reached, last_eval, evals, runtime, samples, seed = EXPECTED[rel]
    series = real(rel)
    assert series.outcome is not None and series.final is not None
    assert (series.outcome.status, series.outcome.succeeded, series.outcome.line) == (status, status == "success", line)
    assert series.facts["reached_target"] == ("true" if reached else "false")
    assert series.evals == {"eval_accuracy": last_eval}
    assert series.eval_count == evals
    assert series.facts["seed"] == seed
    assert (series.final.path, series.final.line) == (rel.rsplit("/", 1)[1], line)
    assert series.final.values["train_runtime"] == runtime
    assert series.final.values["train_samples"] == samples
    assert series.final.values["train_samples_per_second"] == samples / runtime
    assert (series.bad_lines, series.bad_count, series.position, series.kind) == ([], 0, "line", "mlperf")
    assert series.count == 0  # these logs print no training loss


def test_llama_facts_plan_and_hardware() -> None:
    series = real(f"{LLAMA}/result_0.txt")
    target_source = ("mlperf-logging training_6.1.0/closed_llama2_70b_lora.yaml" if HAS_MLPERF_LOGGING
                     else BUILTIN_SOURCE)
    assert series.facts == {
        "submission_benchmark": "llama2_70b_lora", "submission_org": "ASUSTeK", "submission_division": "closed",
        "submission_status": "onprem", "submission_platform": "1xESC_N8A-E12", "seed": "1",
        "global_batch_size": "8", "target": "0.925", "direction": "lower", "target_source": target_source,
        "reached_target": "true", "reached_target_line": "50", "best_eval_accuracy": "0.9232596755027771",
        "tracked_throughput": "1.954853089236669", "samples_basis": "samples_count 3072",
        "accelerator_model_name": "NVIDIA H100-SXM5-80GB", "accelerators_per_node": "8", "number_of_nodes": "1",
        "system_name": "ESC_N8A-E12", "host_processor_model_name": "AMD EPYC 9684X 96-Core Processor",
        "accelerator_memory_capacity": "80 GB", "accelerators": "8",
        "framework": "NVIDIA Release 24.04 MxNet, pytorch, dgl and 23.09 pytorch",
        "operating_system": "Ubuntu 22.04.2 LTS", "cuda_version": "12.2",
        "system_description": "../../../systems/ESC_N8A-E12.json",
    }
    assert series.plan == {"eval_examples": 173, "gradient_accumulation_steps": 4}
    assert series.hparams == {
        "opt_learning_rate_warmup_factor": 0.0, "opt_adamw_weight_decay": 0.0001,
        "opt_gradient_clip_norm": 0.3, "opt_learning_rate_training_steps": 1024, "opt_base_learning_rate": 0.0004,
        "lora_rank": 16, "lora_alpha": 32,
    }
    assert series.outcome is not None and series.outcome.detail == "run_stop status 'success' at line 52"


def test_resnet_aborted_run_and_mid_line_record() -> None:
    series = real(f"{RESNET}/result_4.txt")  # line 168 holds '[:::MLLOG {...}': a record after other output
    assert series.outcome is not None
    assert (series.outcome.status, series.outcome.succeeded, series.outcome.line) == ("aborted", False, 411)
    assert series.outcome.detail == "run_stop status 'aborted' at line 411"
    assert {k: series.facts[k] for k in ("target", "direction", "reached_target", "best_eval_accuracy",
                                         "samples_basis", "global_batch_size")} == {
        "target": "0.759", "direction": "higher", "reached_target": "false", "best_eval_accuracy": "0.75894",
        "samples_basis": "37 epochs × train_samples 1281167", "global_batch_size": "3200"}
    assert "reached_target_line" not in series.facts
    assert series.plan == {"batch_size": 400, "gradient_accumulation_steps": 1, "optimizer": "lars",
                           "eval_examples": 50000}
    good = real(f"{RESNET}/result_0.txt")
    assert (good.facts["reached_target"], good.facts["reached_target_line"]) == ("true", "402")


def test_gpt3_tokens_and_tpu_hardware() -> None:
    series = real(f"{GPT3}/result_0.txt")
    assert series.final is not None
    assert series.final.values == {
        "train_runtime": 6887.633, "train_tokens": 1207959552.0, "train_tokens_per_second": 1207959552 / 6887.633,
        "train_samples": 589824.0, "train_samples_per_second": 589824 / 6887.633}
    assert {k: series.facts[k] for k in ("submission_platform", "target", "direction", "samples_basis",
                                         "accelerator_model_name", "accelerators_per_node", "number_of_nodes",
                                         "accelerators", "system_description")} == {
        "submission_platform": "tpu-v5p", "target": "2.69", "direction": "lower",
        "samples_basis": "1207959552 tokens / max_sequence_length 2048", "accelerator_model_name": "TPU-v5p",
        "accelerators_per_node": "4", "number_of_nodes": "128", "accelerators": "512",
        "system_description": "../../../systems/cloud-tpu-v5p-1024-maxtext.json"}
    assert series.plan == {"optimizer": "adam", "max_seq_length": 2048, "gradient_accumulation_steps": 1,
                           "eval_examples": 24567}
    assert "tracked_throughput" not in series.facts


def test_system_description_by_layout_only(tmp_path: Path) -> None:
    dell = system_description(DATA / RESNET)
    assert dell is not None and dell.problem is None
    assert dell.path == "../../../systems/XE9680x8H100-SXM-80GB.json"
    assert dell.facts == {
        "accelerator_model_name": "NVIDIA H100-SXM5-80GB", "accelerators_per_node": "8", "number_of_nodes": "1",
        "system_name": "XE9680x8H100-SXM-80GB", "host_processor_model_name": "Intel(R) Xeon(R) Platinum 8480+",
        "accelerator_memory_capacity": "80 GB", "accelerators": "8",
        "framework": "NGC MXNet 23.09, NGC PyTorch 23.09, NGC HugeCTR 23.09",
        "operating_system": "Red Hat Enterprise Linux 9.1", "cuda_version": "12.4"}
    assert system_description(DATA / "Dell") is None  # not <submitter>/results/<system>/<benchmark>
    assert system_description(tmp_path) is None
    run = tmp_path / "Acme" / "results" / "box" / "resnet"
    run.mkdir(parents=True)
    missing = system_description(run)
    assert missing is not None and missing.facts == {}
    assert missing.problem is not None and missing.problem.startswith("../../../systems/box.json: cannot be opened")
    systems = tmp_path / "Acme" / "systems"
    systems.mkdir()
    (tmp_path / "elsewhere.json").write_text('{"accelerator_model_name": "forged"}')
    (systems / "box.json").symlink_to(tmp_path / "elsewhere.json")
    linked = system_description(run)
    assert linked is not None and linked.facts == {} and linked.problem is not None
    (systems / "box.json").unlink()
    (systems / "box.json").write_text('{"accelerator_model_name": "A", "number_of_nodes": "2"}')
    partial = system_description(run)
    assert partial is not None
    assert partial.facts == {"accelerator_model_name": "A", "number_of_nodes": "2"}
    assert partial.problem == "../../../systems/box.json: no accelerators_per_node"


# ---- logs written with the real mlperf_logging.mllog API ----

@pytest.fixture
def mllogger(tmp_path: Path) -> Iterator[Any]:
    """The shared mllogger writing to tmp_path/result_0.txt (after some shell output, as a job log has)."""
    mllog = pytest.importorskip("mlperf_logging.mllog")
    path = tmp_path / "result_0.txt"
    path.write_text("+ echo 'Beginning trial 1 of 1'\nBeginning trial 1 of 1\n", encoding="utf-8")
    logger = mllog.get_mllogger()
    before = list(logger.logger.handlers)
    logger.logger.handlers = [h for h in before if not isinstance(h, logging.StreamHandler)
                              or isinstance(h, logging.FileHandler)]  # keep stdout quiet
    mllog.config(filename=str(path))
    try:
        yield logger
    finally:
        for handler in logger.logger.handlers:
            if handler not in before:
                handler.close()
        logger.logger.handlers = before


def write_run(logger: Any, status: str | None = "success", evals: tuple[float, ...] = (0.5, 0.7, 0.76)) -> None:
    """A small resnet-shaped run: header, one epoch and one eval per value, then run_stop (unless None)."""
    from mlperf_logging.mllog import constants as c

    for key, value in ((c.SUBMISSION_BENCHMARK, "resnet"), (c.SUBMISSION_ORG, "Acme"),
                       (c.SUBMISSION_DIVISION, "closed"), (c.SUBMISSION_PLATFORM, "1xbox"),
                       (c.SUBMISSION_STATUS, "onprem")):
        logger.event(key=key, value=value, time_ms=1)
    logger.start(key=c.INIT_START, time_ms=2)
    logger.event(key=c.SEED, value=42, time_ms=3)
    logger.event(key=c.GLOBAL_BATCH_SIZE, value=64, time_ms=3)
    logger.event(key=c.OPT_BASE_LR, value=0.1, time_ms=3)
    logger.event(key=c.TRAIN_SAMPLES, value=1000, time_ms=3)
    logger.end(key=c.INIT_STOP, time_ms=4)
    logger.start(key=c.RUN_START, time_ms=1000)
    for epoch, accuracy in enumerate(evals, start=1):
        logger.start(key=c.EPOCH_START, metadata={c.EPOCH_NUM: epoch}, time_ms=epoch * 20000 - 19000)
        logger.event(key="train_loss", value=3.0 / epoch, metadata={c.STEP_NUM: epoch * 16},
                     time_ms=epoch * 20000 - 9000)
        logger.end(key=c.EPOCH_STOP, metadata={c.EPOCH_NUM: epoch}, time_ms=1000 + epoch * 20000)
        logger.event(key=c.EVAL_ACCURACY, value=accuracy, metadata={c.EPOCH_NUM: epoch},
                     time_ms=1000 + epoch * 20000)
    if status is not None:
        logger.end(key=c.RUN_STOP, metadata={c.STATUS: status}, time_ms=61000)


def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def test_good_mllog_run(mllogger: Any, tmp_path: Path) -> None:
    write_run(mllogger)
    series = read(tmp_path, "result_0.txt")
    lines = lines_of(tmp_path / "result_0.txt")
    stop = len(lines)
    assert '"run_stop"' in lines[stop - 1]
    assert series.outcome is not None and series.final is not None
    assert (series.outcome.status, series.outcome.succeeded, series.outcome.line) == ("success", True, stop)
    assert series.final.values == {"train_runtime": 60.0, "train_samples": 3000.0, "train_samples_per_second": 50.0}
    assert series.evals == {"eval_accuracy": 0.76} and series.eval_count == 3
    assert {k: series.facts[k] for k in ("submission_org", "seed", "global_batch_size", "reached_target",
                                         "reached_target_line", "samples_basis")} == {
        "submission_org": "Acme", "seed": "42", "global_batch_size": "64", "reached_target": "true",
        "reached_target_line": str(stop - 1), "samples_basis": "3 epochs × train_samples 1000"}
    assert "system_description" not in series.facts  # tmp_path is not laid out as a submission
    assert list(series.losses) == [3.0, 1.5, 1.0] and list(series.steps) == [16, 32, 48]
    assert [lines[n - 1].count('"train_loss"') for n in series.lines] == [1, 1, 1]
    assert series.hparams == {"opt_base_learning_rate": 0.1}
    assert series.bad_lines == []


def test_log_cut_before_run_stop(mllogger: Any, tmp_path: Path) -> None:
    write_run(mllogger, status=None)
    last = len(lines_of(tmp_path / "result_0.txt"))
    with (tmp_path / "result_0.txt").open("a", encoding="utf-8") as handle:
        handle.write('Traceback (most recent call last):\n:::MLLOG {"namespace": "", "time_ms": 5')  # cut mid-record
    series = read(tmp_path, "result_0.txt")
    assert series.outcome is not None
    assert (series.outcome.status, series.outcome.succeeded, series.outcome.line) == ("no run_stop", False, last)
    assert series.outcome.detail == f"the log ends before run_stop (line {last})"
    assert series.final is None
    assert series.bad_lines == [(last + 2, "MLLOG record is not valid JSON")]
    assert series.facts["reached_target"] == "true"  # an eval met the target before the log was cut


def test_aborted_mllog_run(mllogger: Any, tmp_path: Path) -> None:
    write_run(mllogger, status="aborted", evals=(0.5, 0.7, 0.75))
    series = read(tmp_path, "result_0.txt")
    stop = len(lines_of(tmp_path / "result_0.txt"))
    assert series.outcome is not None
    assert (series.outcome.status, series.outcome.succeeded, series.outcome.line) == ("aborted", False, stop)
    assert (series.facts["reached_target"], series.facts["best_eval_accuracy"]) == ("false", "0.75")


def test_success_claimed_without_target(mllogger: Any, tmp_path: Path) -> None:
    write_run(mllogger, evals=(0.5, 0.7))
    series = read(tmp_path, "result_0.txt")
    assert series.outcome is not None and series.outcome.succeeded
    assert series.facts["reached_target"] == "false"
    assert series.outcome.detail.endswith("; no eval_accuracy met the target (higher is better, 0.759)")


def test_broken_json_is_a_bad_line(mllogger: Any, tmp_path: Path) -> None:
    write_run(mllogger)
    path = tmp_path / "result_0.txt"
    lines = lines_of(path)
    broken = next(n for n, text in enumerate(lines, start=1) if '"value": 0.7,' in text)
    lines[broken - 1] = lines[broken - 1].replace('"value": 0.7,', '"value": 0.7,,')
    lines.insert(0, "[rank0]: :::MLLOG {not json either}\n")
    path.write_text("".join(lines), encoding="utf-8")
    series = read(tmp_path, "result_0.txt")
    assert series.bad_lines == [(1, "MLLOG record is not valid JSON"), (broken + 1, "MLLOG record is not valid JSON")]
    assert series.bad_count == 2
    assert series.eval_count == 2 and series.outcome is not None and series.outcome.succeeded


def test_rank_duplicates_and_an_overlong_line(mllogger: Any, tmp_path: Path) -> None:
    write_run(mllogger)
    path = tmp_path / "result_0.txt"
    lines = lines_of(path)
    first_eval = next(n for n, text in enumerate(lines, start=1) if '"eval_accuracy"' in text)
    lines.insert(first_eval, lines[first_eval - 1])  # a second rank printed the same record
    lines.insert(0, ":::MLLOG " + "x" * mlperf.MAX_LINE + "\n")
    path.write_text("".join(lines), encoding="utf-8")
    series = read(tmp_path, "result_0.txt")
    assert series.bad_lines == [(1, f"MLLOG line longer than {mlperf.MAX_LINE} bytes")]
    assert series.eval_count == 3 and series.facts["duplicate_mllog_records"] == "1"
    assert series.outcome is not None and series.outcome.line == len(lines)


def test_targets_from_rules_and_builtin(monkeypatch: pytest.MonkeyPatch) -> None:
    rule = parse_rule("x", "(v['value'] <= 2.69) and v['value'] > 2.6", "here")
    assert rule is not None and (rule.value, rule.direction, rule.checks) == (2.69, "lower", (("<=", 2.69), (">", 2.6)))
    assert rule.met(2.69) and not rule.met(2.5) and not rule.met(2.7) and not rule.met(float("nan"))
    assert parse_rule("x", "v['value']['FID'] <= 90.0", "here") is None  # not a plain comparison: no target
    assert parse_rule("x", "v['value'] >= 0.7 or __import__('os')", "here") is None
    assert quality_target("../../etc") is None and quality_target("no_such_benchmark") is None
    quality_target.cache_clear()
    monkeypatch.setattr(mlperf, "_rules_dir", lambda: None)
    try:
        resnet = quality_target("resnet")
        assert resnet is not None and (resnet.value, resnet.direction, resnet.source) == (0.759, "higher",
                                                                                           BUILTIN_SOURCE)
        series = real(f"{LLAMA}/result_3.txt")
        assert (series.facts["target_source"], series.facts["reached_target"]) == (BUILTIN_SOURCE, "true")
    finally:
        quality_target.cache_clear()


def test_reading_never_imports_mlperf_logging() -> None:
    code = ("import sys; from auditor.evidence.sources.mlperf import MlperfLog, quality_target; "
            "from auditor.evidence.opener import Folder; from pathlib import Path; "
            f"root = Path({str(DATA / RESNET)!r}); "
            "s = MlperfLog().read(Folder(root, ['result_4.txt']), 'result_4.txt')[0]; "
            "assert s.facts['reached_target'] == 'false', s.facts; "
            "assert not [m for m in sys.modules if m.startswith('mlperf_logging')]; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr


@pytest.mark.skipif(not HAS_MLPERF_LOGGING, reason="mlperf-logging is not installed")
def test_agrees_with_the_compliance_checker(tmp_path: Path) -> None:
    """The checker's verdict is its last stderr line ('INFO - SUCCESS' / 'ERROR - FAILED') with exit status 0 / 1;
    the reader's is run_stop success and an eval that met the target."""
    verdicts: dict[str, tuple[bool, bool]] = {}
    for rel in sorted(EXPECTED):
        done = subprocess.run(
            [sys.executable, "-m", "mlperf_logging.compliance_checker", "--usage", "training", "--ruleset", "4.0.0",
             "--log_output", str(tmp_path / f"{len(verdicts)}.log"), str(DATA / rel)],
            capture_output=True, text=True, timeout=120, cwd=tmp_path)
        last = done.stderr.strip().splitlines()[-1]
        assert (done.returncode, last) in ((0, "INFO - SUCCESS"), (1, "ERROR - FAILED")), done.stderr[-2000:]
        series = real(rel)
        assert series.outcome is not None
        ours = series.outcome.succeeded and series.facts["reached_target"] == "true"
        verdicts[rel] = (done.returncode == 0, ours)
    assert all(checker == ours for checker, ours in verdicts.values()), verdicts
    assert [rel for rel, (checker, _) in verdicts.items() if not checker] == [f"{RESNET}/result_4.txt"]
