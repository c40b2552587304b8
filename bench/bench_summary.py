"""`audit summary` on a run with 1,000,000 metric records (budget: < 3 s), against `audit verify` of the same
folder run in the same script (what the summary adds: the plot, the loss-curve rows, the markdown).

    python bench/bench_summary.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from bench_verify import best, build_metrics_folder, hf_lines, peak_rss_mib


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, default=Path("/tmp/auditor-bench-summary"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    import auditor

    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(auditor.__file__).parent)], check=True)
    audit = [sys.executable, "-m", "auditor"]
    run = build_metrics_folder(args.work / "m1m_v1", hf_lines())
    out = args.work / "out" / "m1m_v1_summary.md"
    verify = best([*audit, "verify", str(run)], args.repeat)
    summary = best([*audit, "summary", str(run), "--output", str(out)], args.repeat)
    text = best([*audit, "summary", str(run), "--output", "-"], args.repeat)
    inside = best([*audit, "summary", str(run)], args.repeat)  # last: it writes into the folder
    verify_with = best([*audit, "verify", str(run)], args.repeat)  # its 15-row loss table is now claims to check
    rss = peak_rss_mib([*audit, "summary", str(run), "--output", str(out)])
    assert out.is_file() and out.with_name("m1m_v1_loss.png").is_file(), "the summary or its plot was not written"
    print("| measure | seconds | ratio to verify |")
    print("|---|---|---|")
    print(f"| `audit verify`, 1,002,001-line metrics.jsonl | {verify:.3f} | 1.00 |")
    print(f"| `audit summary` (markdown + loss plot), same folder | {summary:.3f} | {summary / verify:.2f} |")
    print(f"| `audit summary --output -` (markdown only), same folder | {text:.3f} | {text / verify:.2f} |")
    print(f"| `audit summary` into the run folder (gates re-run with the summary in it) | {inside:.3f} | "
          f"{inside / verify:.2f} |")
    print(f"| `audit verify` of the folder with that summary in it | {verify_with:.3f} | {verify_with / verify:.2f} |")
    print(f"\npeak RSS of `audit summary`: {rss:.0f} MiB")
    shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
