"""Benchmarks for `audit run`, each against a baseline measured in the same script (machines are noisy).

    python bench/bench_run.py [--steps 1800] [--repeat 3] [--work /tmp/auditor-bench-run]

1. `audit run --runner pytorch` around a ~30 s CPU training vs the same training run bare (the reference
   trainer with the same config, seed and device, writing into a folder through auditor.runtime); runs
   alternate, the median of each side is compared; wall-time ratio must be <= 1.03
2. the NVML sampler's CPU cost per sample round in the wrapper: the real process-tree walk over /proc and the
   record writing; NVML itself cannot run without a GPU, so a replay of recorded readings stands in for it
   (docs/gpu-validation.md has the figure from a GPU machine when one was lent)
3. auditor.runtime.log_metrics cost per record (step, loss, learning rate: one call) beside mlflow.log_metric
   to a local file store (two calls, when mlflow is installed), in the same process
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def run_overhead(work: Path, steps: int, repeat: int) -> dict[str, float]:
    config = work / "bench_config.yaml"
    config.write_text(f"training:\n  max_steps: {steps}\n  save_steps: {max(1, steps // 3)}\n")
    bare_cmd = [sys.executable, "-m", "runners.pytorch.reference", "--config", str(config), "--device", "cpu",
                "--seed", "0"]
    bare, audited = [], []
    for i in range(repeat):
        for side in ("bare", "audited") if i % 2 == 0 else ("audited", "bare"):
            folder = work / f"{side}_{i}"
            shutil.rmtree(folder, ignore_errors=True)
            if side == "bare":
                folder.mkdir()
                bare.append(timed(bare_cmd, {**os.environ, "AUDITOR_RUN_DIR": str(folder)}))
            else:
                audited.append(timed([sys.executable, "-m", "auditor", "run", "--runner", "pytorch", "--config",
                                      str(config), "--device", "cpu", "--seed", "0", "--out", str(folder)],
                                     dict(os.environ)))
            print(f"  {side:8} run {i + 1}: {(bare if side == 'bare' else audited)[-1]:.2f} s", flush=True)
    b, a = statistics.median(bare), statistics.median(audited)
    return {"bare_s": round(b, 3), "audited_s": round(a, 3), "ratio": round(a / b, 4)}


def sampler_cost(work: Path, rounds: int = 200) -> dict[str, float]:
    sys.path.insert(0, str(ROOT / "tests"))
    from test_gpu_capture import READINGS, Replay

    from auditor.capture.gpu import Sampler

    replay = Replay([READINGS["rounds"][i % len(READINGS["rounds"])] for i in range(rounds)])
    sampler = Sampler(replay, work, interval=1.0)
    with (work / "gpu_samples.jsonl").open("w") as out:
        for _ in range(rounds):
            sampler.sample_once(os.getpid(), out)
    return {"cpu_ms_per_round": round(1000 * sampler.cpu_seconds / rounds, 3), "devices": replay.count(),
            "processes_on_host": len(os.listdir("/proc"))}


def logging_cost(work: Path, calls: int = 20000) -> dict[str, float | None]:
    from auditor.runtime import Recorder

    recorder = Recorder(work / "runtime_bench")
    start = time.perf_counter()
    for step in range(calls):
        recorder.log_metrics(step, loss=2.5 - step * 1e-5, learning_rate=3e-4)
    ours = (time.perf_counter() - start) / calls
    recorder.close()
    result: dict[str, float | None] = {"runtime_us_per_record": round(ours * 1e6, 2), "mlflow_us_per_record": None}
    try:
        import mlflow
    except ImportError:
        return result
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # mlflow 3 keeps the local file store behind a flag
    mlflow.set_tracking_uri((work / "mlruns").as_uri())
    n = max(200, calls // 20)  # mlflow's file store writes a file per metric call: fewer calls, same per-call figure
    with mlflow.start_run():
        start = time.perf_counter()
        for step in range(n):
            mlflow.log_metric("loss", 2.5 - step * 1e-5, step=step)
            mlflow.log_metric("learning_rate", 3e-4, step=step)
        theirs = (time.perf_counter() - start) / n
    result["mlflow_us_per_record"] = round(theirs * 1e6, 2)  # two log_metric calls: loss and learning_rate
    result["ratio_mlflow_to_runtime"] = round(theirs / ours, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1800)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--skip-run", action="store_true", help="only the sampler and logging figures")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="auditor-bench-run-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, object] = {}
    if not args.skip_run:
        print(f"1. audit run vs bare training ({args.steps} steps, {args.repeat} runs each)", flush=True)
        results["run_overhead"] = run_overhead(work, args.steps, args.repeat)
    results["sampler"] = sampler_cost(work)
    results["logging"] = logging_cost(work)
    print(json.dumps(results, indent=2))
    overhead = results.get("run_overhead")
    if isinstance(overhead, dict) and overhead["ratio"] > 1.03:
        print(f"OVER BUDGET: audit run / bare = {overhead['ratio']} (> 1.03)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
