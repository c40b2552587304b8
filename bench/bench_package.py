"""Benchmark for `audit package`, against a baseline measured in the same script (machines are noisy).

    python bench/bench_package.py [--gib 2] [--repeat 3] [--work /tmp/auditor-bench-package]

`audit package` of a folder with >= 2 GiB of safetensors shards (full verify, which hashes every byte, then the
archive: weights stored, each file read once more while its SHA256SUMS digest is taken) against `zip -0 -r` of
the same folder (reads each file once and writes it stored: the floor for writing such an archive). Best of N
wall times, page cache warmed first, outputs deleted between runs. The folder fails verify (it has no training
evidence), so --force is passed: verify still runs in full.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_verify import best, build_weights_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="auditor-bench-package-"))
    folder = work / "run"
    shutil.rmtree(folder, ignore_errors=True)
    build_weights_folder(folder, args.gib)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    best(["cat", *map(str, folder.rglob("*.safetensors"))], 1)  # warm the page cache
    out = work / "out.zip"
    zip_s = best(["sh", "-c", f"rm -f {out} && zip -0 -r -q {out} run"], args.repeat, cwd=work)
    ours = best(["sh", "-c", f"rm -f {out} && {sys.executable} -m auditor package run -o {out} --force"],
                args.repeat, cwd=work)
    print(json.dumps({"bytes": size, "zip_0_s": round(zip_s, 3), "audit_package_s": round(ours, 3),
                      "ratio": round(ours / zip_s, 3)}, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
