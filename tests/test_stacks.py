"""Real runs of the stacks people train with, through the real CLI: good runs pass `audit run --runner command` with
no change to the script, and each planted defect fails the right gate at the right file and position."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest
from conftest import ROOT, audit, verify_json

STACKS = ROOT / "tests" / "stacks"
MLPERF = ROOT / "tests" / "data" / "mlperf_v4.0"
BENCHMARKS = {  # folder: (runs, runs the compliance checker accepts)
    "ASUSTeK/results/ESC_N8A-E12/llama2_70b_lora": (10, 10),
    "Dell/results/XE9680x8H100-SXM-80GB/resnet": (5, 4),
    "Google/results/cloud-tpu-v5p-1024-maxtext/gpt3": (3, 3),
}


def run_stack(tmp_path: Path, script: str, *args: str, env: dict[str, str] | None = None) -> tuple[Path, object]:
    """`audit run --runner command -- python <script>` from a fresh working directory, as a user runs it."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    folder = tmp_path / "run"
    done = audit("run", "--runner", "command", "--out", folder, "--", sys.executable, STACKS / script, *args,
                 env=env, cwd=work)
    return folder, done


# -- MLPerf ------------------------------------------------------------------------------------------------------
def _mlperf_copy(tmp_path: Path, benchmark: str) -> Path:
    submitter = benchmark.split("/")[0]
    shutil.copytree(MLPERF / submitter, tmp_path / submitter)
    return tmp_path / benchmark


@pytest.mark.parametrize("benchmark", sorted(BENCHMARKS))
def test_real_mlperf_results_verify(benchmark: str) -> None:
    runs, accepted = BENCHMARKS[benchmark]
    done = verify_json(MLPERF / benchmark)
    assert done.code == 0, done.stdout
    completed = done.gate("training_completed")
    assert completed["status"] == "pass"
    assert completed["message"].startswith(f"{accepted} of {runs} runs ended successfully and reached the quality")
    assert done.status("environment_captured") == "pass"
    assert done.status("checkpoint_saved") == "skip"


def test_mlperf_run_cut_before_run_stop_fails_at_its_last_record(tmp_path: Path) -> None:
    """Dell's resnet already drops result_4 (aborted); cutting result_0 before run_stop is one failure too many."""
    folder = _mlperf_copy(tmp_path, "Dell/results/XE9680x8H100-SXM-80GB/resnet")
    log = folder / "result_0.txt"
    lines = log.read_text(encoding="utf-8").splitlines(keepends=True)
    stop = next(i for i, line in enumerate(lines) if '"key": "run_stop"' in line)
    log.write_text("".join(lines[:stop]), encoding="utf-8")
    last = max(i for i, line in enumerate(lines[:stop], start=1) if ":::MLLOG" in line)
    done = verify_json(folder)
    assert done.code == 1
    gate = done.gate("training_completed")
    assert gate["status"] == "fail" and "3 of 5 runs" in gate["message"] and "more than the 1" in gate["message"]
    assert (gate["evidence"][0]["path"], gate["evidence"][0]["line"]) == ("result_0.txt", last), gate


# -- notebooks ---------------------------------------------------------------------------------------------------
def _notebook(path: Path, failing: bool) -> None:
    """Execute a real notebook with a real kernel (nbclient) and save it as a Kaggle/Colab run keeps it."""
    code = (
        "import nbformat, sys\nfrom nbclient import NotebookClient\n"
        "cells = [nbformat.v4.new_code_cell('import math\\nfor step in range(1, 41):\\n"
        "    loss = 2.0 * math.exp(-step / 15)\\n"
        "    if step % 5 == 0:\\n        print(f\"step {step} loss {loss:.4f}\")'),\n"
        f"         nbformat.v4.new_code_cell({'1/0' if failing else 'print(1)'!r}),\n"
        "         nbformat.v4.new_code_cell('print(\"Training completed!\")')]\n"
        "nb = nbformat.v4.new_notebook(cells=cells)\n"
        "NotebookClient(nb, timeout=120, kernel_name='python3', allow_errors=True).execute()\n"
        "nbformat.write(nb, sys.argv[1])\n")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_executed_notebook_good_and_failing(tmp_path: Path) -> None:
    pytest.importorskip("nbclient")
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    _notebook(good / "train.ipynb", failing=False)
    _notebook(bad / "train.ipynb", failing=True)
    ok = verify_json(good)
    assert ok.status("training_completed") == "pass" and "records a successful end" in \
        ok.gate("training_completed")["message"]
    assert ok.status("loss_decreased") == "pass" and ok.status("no_false_success") == "pass"
    failed = verify_json(bad)
    assert failed.code == 1
    completed = failed.gate("training_completed")
    assert completed["status"] == "fail" and "error in cell 2" in completed["message"]
    assert "ZeroDivisionError" in completed["message"]
    nb_lines = (bad / "train.ipynb").read_text(encoding="utf-8").splitlines()
    line = completed["evidence"][0]["line"]
    assert "Traceback" in nb_lines[line - 1] or "ZeroDivisionError" in nb_lines[line - 1]
    false_success = failed.gate("no_false_success")
    assert false_success["status"] == "fail" and "Training completed" in nb_lines[
        int(false_success["message"].split(":")[1].split()[0]) - 1]


# -- MLflow ------------------------------------------------------------------------------------------------------
MLFLOW_ENV = {"MLFLOW_ALLOW_FILE_STORE": "true", "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
              "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


@pytest.mark.parametrize("store", ["file", "sqlite"])
def test_mlflow_run_passes_unchanged(tmp_path: Path, store: str) -> None:
    pytest.importorskip("mlflow")
    folder, done = run_stack(tmp_path, "mlflow_torch.py", "--store", store, env=MLFLOW_ENV)
    assert done.code == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = verify_json(folder)
    assert report.code == 0, report.stdout
    completed = report.gate("training_completed")["message"]
    assert "reached step 99 (steps numbered from 0: 100 taken) of 100 planned" in completed
    assert any("mlflow" in e["path"] or e["path"].startswith("outputs/") for e in report.gate("loss_decreased")[
        "evidence"])


def test_mlflow_run_killed_before_end_run_fails(tmp_path: Path) -> None:
    """A run whose MLflow status never left RUNNING (the process died inside the run) fails, naming meta.yaml."""
    pytest.importorskip("mlflow")
    folder, done = run_stack(tmp_path, "mlflow_torch.py", "--store", "file", env=MLFLOW_ENV)
    assert done.code == 0, done.stderr[-2000:]
    meta = next(folder.glob("outputs/mlruns/*/*/meta.yaml"))
    text = meta.read_text(encoding="utf-8")
    meta.unlink()  # a hard link to the user's file: replace it, never write through it
    meta.write_text(text.replace("status: 3", "status: 1"), encoding="utf-8")
    (folder / "run_manifest.json").unlink()
    (folder / "SHA256SUMS").unlink(missing_ok=True)
    report = verify_json(folder)
    assert report.code == 1
    gate = report.gate("training_completed")
    assert gate["status"] == "fail" and "RUNNING" in gate["message"], gate


def test_pyproject_dev_extra_holds_the_stacks() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    dev = text.split("dev = [", 1)[1].split("]", 1)[0]
    for package in ("lightning", "tensorboard", "mlflow", "mlperf-logging", "nbclient", "ipykernel"):
        assert f'"{package}' in dev, package


# -- plain PyTorch: printed progress, TensorBoard, torch.save ---------------------------------------------------
@pytest.fixture(scope="module")
def plain_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real plain-PyTorch run under `audit run --runner command` (read-only: copy before breaking)."""
    folder, done = run_stack(tmp_path_factory.mktemp("plain"), "plain_torch.py")
    assert done.code == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return folder


def _copy(run: Path, tmp_path: Path) -> Path:
    """A private copy whose files are not hard links to the user's outputs (breaking it must not touch them)."""
    return Path(shutil.copytree(run, tmp_path / "copy", copy_function=shutil.copy2))


def test_plain_pytorch_run_passes_unchanged(plain_run: Path) -> None:
    report = verify_json(plain_run)
    assert report.code == 0, report.stdout
    assert (plain_run / "outputs" / "model.pt").is_file()
    assert any(p.name.startswith("events.out.tfevents.") for p in (plain_run / "outputs" / "runs").rglob("*"))
    checkpoint = report.gate("checkpoint_saved")
    assert checkpoint["status"] == "pass" and checkpoint["message"].startswith("outputs/model.pt")
    assert report.status("checkpoint_safe") == "pass"
    assert "step 200" in report.gate("training_completed")["message"]


def test_flipped_byte_in_model_pt_fails_checkpoint_saved(plain_run: Path, tmp_path: Path) -> None:
    run = _copy(plain_run, tmp_path)
    model = run / "outputs" / "model.pt"
    data = bytearray(model.read_bytes())
    marker = data.find(b"data/0")  # the first tensor's storage member: flip a byte of its data, after its header
    assert marker > 0
    data[marker + 200] ^= 0xFF
    model.write_bytes(bytes(data))
    report = verify_json(run)
    assert report.code == 1
    gate = report.gate("checkpoint_saved")
    assert gate["status"] == "fail" and "outputs/model.pt" in gate["message"] and "CRC" in gate["message"], gate


def test_pickle_that_imports_os_system_fails_checkpoint_safe(plain_run: Path, tmp_path: Path) -> None:
    """A checkpoint that would run `os.system` when loaded: found from its opcodes, never executed."""
    run = _copy(plain_run, tmp_path)
    marker = tmp_path / "PWNED"
    code = ("import os, sys, torch\n"
            "class Payload:\n"
            "    def __reduce__(self):\n"
            f"        return (os.system, ('touch {marker}',))\n"
            "torch.save({'weight': torch.zeros(2), 'extra': Payload()}, sys.argv[1])\n")
    made = subprocess.run([sys.executable, "-c", code, str(run / "outputs" / "finetuned.pt")], capture_output=True,
                          text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    assert not marker.exists()
    report = verify_json(run)
    assert report.code == 1
    gate = report.gate("checkpoint_safe")
    assert gate["status"] == "fail", gate
    assert "outputs/finetuned.pt" in gate["message"] and ("posix.system" in gate["message"]
                                                         or "os.system" in gate["message"])
    assert not marker.exists(), "verify executed the pickle"


def test_loss_rising_fails_loss_decreased(tmp_path: Path) -> None:
    folder, done = run_stack(tmp_path, "plain_torch.py", "--ascend", "--lr", "0.005", "--steps", "60")
    assert done.code == 1
    report = verify_json(folder)
    gate = report.gate("loss_decreased")
    assert gate["status"] == "fail" and gate["message"].startswith("loss rose"), gate


# -- Lightning: CSVLogger, TensorBoardLogger, ModelCheckpoint ---------------------------------------------------
@pytest.fixture(scope="module")
def lightning_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real Lightning run (both loggers, ModelCheckpoint with last.ckpt) under `audit run`."""
    pytest.importorskip("lightning")
    folder, done = run_stack(tmp_path_factory.mktemp("lightning"), "lightning_csv_tb.py")
    assert done.code == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return folder


def test_lightning_run_passes_unchanged(lightning_run: Path) -> None:
    report = verify_json(lightning_run)
    assert report.code == 0, report.stdout
    assert report.gate("checkpoint_saved")["message"].startswith("outputs/checkpoints/last.ckpt")
    assert report.gate("training_completed")["message"].startswith("reached step 120 of 120 planned")
    assert report.status("evaluation_ran") == "pass"


def test_truncated_ckpt_fails_checkpoint_saved(lightning_run: Path, tmp_path: Path) -> None:
    run = _copy(lightning_run, tmp_path)
    last = run / "outputs" / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    report = verify_json(run)
    assert report.code == 1
    gate = report.gate("checkpoint_saved")
    assert gate["status"] == "fail" and "outputs/checkpoints/last.ckpt" in gate["message"], gate


def test_csv_and_tensorboard_disagreeing_fails_claims_consistent(lightning_run: Path, tmp_path: Path) -> None:
    """One edited loss in the CSV log, while TensorBoard keeps the logged value: the sources disagree at that step."""
    run = _copy(lightning_run, tmp_path)
    csv = next(run.glob("outputs/logs/lightning_logs/version_*/metrics.csv"))
    lines = csv.read_text(encoding="utf-8").splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("3,"))
    cells = lines[row].split(",")
    cells[2] = "0.001"
    lines[row] = ",".join(cells)
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (run / "run_manifest.json").unlink()  # the digest mismatch is evidence_complete's finding, not this test's
    report = verify_json(run)
    gate = report.gate("claims_consistent")
    assert gate["status"] == "fail", gate
    assert f"step {cells[1]} is logged with loss" in gate["message"] and "metrics.csv" in gate["message"]
    assert "events.out.tfevents" in gate["message"]


def test_corrupt_tensorboard_record_fails_evidence_complete_at_its_offset(plain_run: Path, tmp_path: Path) -> None:
    run = _copy(plain_run, tmp_path)
    events = next(run.glob("outputs/runs/*/events.out.tfevents.*"))
    data = bytearray(events.read_bytes())
    data[len(data) // 2] ^= 0x55
    events.write_bytes(bytes(data))
    report = verify_json(run)
    assert report.code == 1
    gate = report.gate("evidence_complete")
    assert gate["status"] == "fail" and events.name in gate["message"] and "(byte " in gate["message"], gate
    assert "CRC" in gate["message"]


# -- Weights & Biases, offline ----------------------------------------------------------------------------------
def test_wandb_offline_run_passes_unchanged(tmp_path: Path) -> None:
    pytest.importorskip("wandb")
    env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DISABLE_GIT": "true"}
    folder, done = run_stack(tmp_path, "wandb_torch.py", env=env)
    assert done.code == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = verify_json(folder)
    assert report.code == 0, report.stdout
    assert "reached step 80 of 80 planned" in report.gate("training_completed")["message"]
    loss = report.gate("loss_decreased")
    assert loss["status"] == "pass" and loss["evidence"][0]["path"].endswith(".wandb"), loss


FRAMEWORKS = ("torch", "tensorboard", "tensorflow", "mlflow", "wandb", "mlperf_logging", "lightning", "deepspeed",
              "orbax", "jax", "numpy", "google.protobuf", "safetensors", "transformers")


def test_verify_reads_every_format_without_its_library(plain_run: Path) -> None:
    """`pip install auditor` reads them all: verifying TensorBoard, torch.save, printed logs and MLPerf results
    imports none of the libraries that wrote them."""
    folders = [str(plain_run), str(MLPERF / "Dell/results/XE9680x8H100-SXM-80GB/resnet")]
    code = ("import sys; from pathlib import Path; from auditor.verify import VerifyOptions, execute; "
            f"report = execute(VerifyOptions(run_dirs=[Path(p) for p in {folders!r}])); "
            "assert [r.verdict for r in report.runs] == ['pass', 'warn'], [r.verdict for r in report.runs]; "
            f"print(','.join(m for m in {FRAMEWORKS!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "", f"verify imported {done.stdout.strip()}"


def test_model_size_is_checked_against_a_torch_save_checkpoint(plain_run: Path, tmp_path: Path) -> None:
    """No config.json: the parameter count comes from the archive's tensor shapes (8·16+16+16+1 = 161)."""
    run = _copy(plain_run, tmp_path)
    (run / "plain_config.yaml").write_text("model:\n  name: regressor-7B\n", encoding="utf-8")
    report = verify_json(run)
    gate = report.gate("model_matches_config")
    assert gate["status"] == "fail" and "holds 161 " in gate["message"] and "regressor-7B" in gate["message"]
    (run / "plain_config.yaml").write_text("model:\n  name: regressor\n  num_parameters: 161\n", encoding="utf-8")
    assert verify_json(run).status("model_matches_config") in ("pass", "skip")


# -- Keras 3 (JAX backend): CSVLogger and a .keras ModelCheckpoint ----------------------------------------------
def test_keras_run_passes_unchanged_then_a_cut_keras_file_fails(tmp_path: Path) -> None:
    if find_spec("keras") is None:  # (importing it here would pick the TensorFlow backend)
        pytest.skip("keras is not installed")
    folder, done = run_stack(tmp_path, "keras_csv.py", env={"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"})
    assert done.code == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = verify_json(folder)
    assert report.code == 0, report.stdout
    loss = report.gate("loss_decreased")
    assert loss["status"] == "pass" and loss["evidence"][0]["path"] == "outputs/training.csv", loss
    assert report.gate("checkpoint_saved")["message"].startswith("outputs/model.keras: Keras 3.")
    assert report.status("evaluation_ran") == "pass"  # val_loss per epoch
    model = folder / "outputs" / "model.keras"
    data = model.read_bytes()
    model.unlink()  # a hard link to the user's file: replace it, never write through it
    model.write_bytes(data[: len(data) - 200])
    broken = verify_json(folder)
    assert broken.code == 1
    gate = broken.gate("checkpoint_saved")
    assert gate["status"] == "fail" and "outputs/model.keras" in gate["message"], gate


def test_collection_never_writes_through_a_link_the_training_left(tmp_path: Path) -> None:
    """A command that turns <run>/outputs into a link out of the folder: what it wrote stays where it is, and
    nothing is written through the link."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("import os, pathlib\n"
            "run = pathlib.Path(os.environ['AUDITOR_RUN_DIR'])\n"
            f"(run / 'outputs').symlink_to({str(elsewhere)!r})\n"
            "pathlib.Path('metrics.csv').write_text('epoch,step,train_loss\\n0,1,2.0\\n0,2,1.0\\n')\n")
    work = tmp_path / "work"
    work.mkdir()
    audit("run", "--runner", "command", "--out", tmp_path / "run", "--", sys.executable, "-c", code, cwd=work)
    assert list(elsewhere.iterdir()) == []
    assert (work / "metrics.csv").is_file()


def test_exit_zero_after_a_caught_crash_is_not_proof_of_completion(tmp_path: Path) -> None:
    """No plan, exit 0, but the log holds a traceback the script printed and swallowed: warn, never a pass."""
    code = ("import traceback\n"
            "for step in range(1, 21):\n"
            "    print(f'step {step} loss {2.0 / step:.4f}', flush=True)\n"
            "try:\n    1 / 0\nexcept ZeroDivisionError:\n    traceback.print_exc()\n")
    work = tmp_path / "work"
    work.mkdir()
    audit("run", "--runner", "command", "--out", tmp_path / "run", "--", sys.executable, "-c", code, cwd=work)
    gate = verify_json(tmp_path / "run").gate("training_completed")
    assert gate["status"] == "warn" and "shows a failure" in gate["message"], gate


def test_a_checked_archive_is_not_hashed_a_second_time(plain_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The torch.save check hashes the file in the same read as its CRCs; the digest check reuses that digest."""
    import hashlib

    from auditor.evidence import run as run_module
    from auditor.evidence.run import RunEvidence

    hashed: list[Path] = []
    real = run_module.sha256_files
    monkeypatch.setattr(run_module, "sha256_files", lambda paths: hashed.extend(paths) or real(paths))
    ev = RunEvidence(plain_run)
    assert ev.checkpoint is not None and ev.checkpoint.directory == "outputs/model.pt"
    model = plain_run / "outputs" / "model.pt"
    assert ev.sha256([model]) == {model: hashlib.sha256(model.read_bytes()).hexdigest()}
    assert model not in hashed
