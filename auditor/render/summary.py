"""The milestone summary's blocks, as markdown, from a run's evidence and its verify report: the seeds' structure
(header, Configuration, Performance, Loss Curve, Hardware, GPU utilisation, Quality Gates, Evidence Artifacts,
Reproduce), every figure read from the evidence.

The summary lands in the run folder as `<run>_summary.md`, where verify reads its tables as claims. So figures
are written at precisions that round-trip (claims_consistent checks them), labels verify knows are used only for
figures verify can recompute, and nothing is worded as a claim the evidence did not make: gate rows are named by
id (not as claims of a gate), hardware rows avoid the "| GPU |" form that asserts accelerator use, and the
evidence-only declaration appears only when the manifest makes it."""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditor.evidence.metrics import records_at
from auditor.evidence.nvsmi import SampleStats
from auditor.evidence.run import RunEvidence
from auditor.evidence.throughput import model_flops, parameter_count
from auditor.models import RunReport
from auditor.render.common import SYMBOL, counts
from auditor.render.markdown import GATE_HEADER, cell, gate_row
from auditor.render.owned import block

LOSS_ROWS = 15
TREE_LINES = 60
ORDER = ("header", "configuration", "performance", "loss-curve", "hardware", "gpu-utilisation", "quality-gates",
         "artifacts", "reproduce")
_LR_KEYS = ("learning_rate", "lr")


@dataclass
class SummaryInput:
    """What the blocks are rendered from."""

    ev: RunEvidence
    report: RunReport
    facts: dict[str, Any]
    run_dir: str
    milestone: str
    loss_plot: str | None = None
    gpu_plot: str | None = None
    plot_note: str | None = None
    samples: SampleStats | None = None
    hidden: set[str] = field(default_factory=set)  # the summary and its plots: not listed among the artifacts


def figure(value: float, significant: int = 6) -> str:
    """A number at `significant` digits (never more decimals than it has), with thousands separators, so it
    round-trips through claims_consistent's 'matches within its displayed precision'."""
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(0, significant - 1 - magnitude)
    text = repr(value)
    if "e" not in text and "." in text:
        decimals = min(decimals, len(text.split(".")[1]))
    return f"{value:,.{decimals}f}"


def loss_text(value: float) -> str:
    """A loss at 4 significant digits."""
    return figure(value, 4)


def human_size(size: int) -> str:
    """1536 → '1.5 KiB'."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _table(rows: list[tuple[str, str]], header: tuple[str, str] = ("Metric", "Value")) -> list[str]:
    out = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    out += [f"| {label} | {cell(value)} |" for label, value in rows]
    return out


def header(data: SummaryInput) -> str:
    """Milestone, status from the verdict, date, commit, run."""
    run, ev = data.report, data.ev
    manifest = ev.run_manifest
    lines = [f"**Milestone:** {data.milestone}  ",
             f"**Status:** {SYMBOL[run.verdict]} {run.verdict.upper()} (`audit verify`: {counts(run.gates)})  "]
    if manifest is not None and manifest.outcome.ended_at:
        ended = manifest.outcome.ended_at
        lines.append(f"**Date:** {ended[:10]} {ended[11:19]} UTC (run ended; run_manifest.json)  ")
    elif (date := ev.env_fact("date")) is not None:
        lines.append(f"**Date:** {date[0]} (when {date[1]} was recorded)  ")
    else:
        lines.append("**Date:** not recorded (no run_manifest.json)  ")
    git = manifest.git if manifest is not None else None
    if git is not None and git.commit:
        tree = {True: "uncommitted changes", False: "clean tree", None: "tree state unknown"}[git.dirty]
        branch = f" on {git.branch}" if git.branch else ""
        lines.append(f"**Commit:** `{git.commit[:12]}`{branch}, {tree}  ")
    elif data.facts.get("commit"):
        fact = ev.env_fact("commit")
        lines.append(f"**Commit:** `{str(data.facts['commit'])[:12]}` ({fact[1] if fact else 'recorded'}; "
                     "tree state not recorded)  ")
    else:
        lines.append("**Commit:** not recorded  ")
    outcome = ""
    if manifest is not None:
        code = manifest.outcome.exit_code
        outcome = f", outcome {manifest.outcome.status}" + (f" (exit {code})" if code is not None else "")
        outcome = f", runner `{manifest.runner}`{outcome}" if manifest.runner else outcome
    lines.append(f"**Run:** `{data.run_dir}`{outcome}")
    if manifest is not None and manifest.evidence_only:
        lines[-1] += "  \n**Evidence-only run:** declared with `audit run --evidence-only`"
    return "\n".join(lines)


def _learning_rate(facts: dict[str, Any]) -> str | None:
    for key, value in sorted(facts.get("config", {}).items()):
        if key.rsplit(".", 1)[-1] in _LR_KEYS and value is not None:
            return f"{value} ({key} in the config)"
    return None


def configuration(data: SummaryInput) -> str:
    """The plan and the run's settings."""
    ev, plan, manifest = data.ev, data.ev.plan, data.ev.run_manifest
    rows: list[tuple[str, str]] = []
    if plan.model_name:
        rows.append(("Model", plan.model_name))
    params = parameter_count(ev)
    if params:
        rows.append(("Parameters", f"{params[0]:,} ({params[1]})"))
    elif plan.num_parameters:
        rows.append(("Parameters", f"{plan.num_parameters:,} (declared in the plan)"))
    if manifest is not None and manifest.runner:
        rows.append(("Runner", manifest.runner))
    if ev.config_files:
        rows.append(("Config", ", ".join(f"`{name}`" for name in ev.config_files)))
    if plan.device:
        rows.append(("Device (plan)", plan.device))
    world = manifest.environment.get("world_size") if manifest is not None else None
    if isinstance(world, int) and world > 1:
        rows.append(("Processes", f"{world} (torchrun)"))
    if plan.max_steps:
        rows.append(("Max steps (plan)", f"{plan.max_steps:,}"))
    if plan.num_epochs:
        rows.append(("Epochs (plan)", figure(plan.num_epochs)))
    if plan.batch_size:
        rows.append(("Batch Size", f"{plan.batch_size} per device"))
    if plan.gradient_accumulation_steps:
        rows.append(("Gradient Accumulation", str(plan.gradient_accumulation_steps)))
    if plan.batch_size:
        accum = plan.gradient_accumulation_steps or 1
        ranks = world if isinstance(world, int) and world > 0 else 1
        rows.append(("Effective batch", f"{plan.batch_size * accum * ranks} ({plan.batch_size} × {accum} "
                     f"accumulation × {ranks} process{'es' if ranks > 1 else ''})"))
    for label, value in (("Sequence length", plan.max_seq_length), ("Dtype", plan.dtype),
                         ("Optimizer", plan.optimizer), ("Learning rate", _learning_rate(data.facts))):
        if value:
            rows.append((label, str(value)))
    if manifest is not None and manifest.seed is not None:
        rows.append(("Seed", str(manifest.seed)))
    if plan.eval_examples:
        rows.append(("Eval examples (plan)", str(plan.eval_examples)))
    body = (rows and _table(rows, ("Parameter", "Value"))) or ["Nothing recorded: no run_manifest.json and no config."]
    return "\n".join(["## Configuration", "", *body])


def performance(data: SummaryInput) -> str:
    """Steps, runtime, rates, model FLOPs and losses, each from where verify reads it."""
    ev, facts = data.ev, data.facts
    final = ev.final_record.values if ev.final_record else {}
    series = ev.metrics
    rows: list[tuple[str, str]] = []
    if facts["steps"] is not None:
        rows.append(("Total Steps", f"{facts['steps']:,}"))
    if "epoch" in final:
        rows.append(("Epochs", figure(final["epoch"])))
    if facts["runtime_s"] is not None:
        runtime = facts["runtime_s"]
        rows.append(("Runtime", f"{figure(runtime)} s ({runtime / 60:.1f} min; the trainer's train_runtime)"))
    manifest = ev.run_manifest
    if manifest is not None and manifest.outcome.wall_seconds is not None:
        rows.append(("Wrapper wall time", f"{figure(manifest.outcome.wall_seconds)} s (launch to exit, "
                     "run_manifest.json)"))
    if facts["samples_per_s"] is not None:
        rows.append(("Throughput", f"{figure(facts['samples_per_s'])} samples/sec"))
    if final.get("train_tokens_per_second") is not None:
        rows.append(("Tokens/sec", figure(final["train_tokens_per_second"])))
    elif facts["samples_per_s"] is not None and ev.plan.max_seq_length:
        tokens = facts["samples_per_s"] * ev.plan.max_seq_length
        rows.append(("Tokens/sec (computed)", f"{figure(tokens)} (samples/s × sequence length "
                     f"{ev.plan.max_seq_length}; an upper bound with padding)"))
    if facts["steps_per_s"] is not None:
        rows.append(("Steps/sec", figure(facts["steps_per_s"])))
    flops = model_flops(ev)
    if flops is not None:
        rows.append(("Model TFLOP/s achieved", f"{flops.achieved / 1e12:.3g} ({flops.how})"))
        hw, mfu = flops.hardware, flops.mfu
        if hw is not None and mfu is not None and hw.is_accelerator:
            rows.append(("MFU", f"{mfu:.1%} of {hw.devices} × {hw.name} (peak {hw.peak_tflops:g} dense "
                         "16-bit TFLOP/s each)"))
    if series is not None and series.count:
        first_step, last_step = series.step_of(0), series.step_of(series.count - 1)
        at_first = f" (step {first_step:,})" if first_step is not None else ""
        at_last = f" (step {last_step:,})" if last_step is not None else ""
        rows.append(("First logged loss", f"{loss_text(series.losses[0])}{at_first}"))
        rows.append(("Last logged loss", f"{loss_text(series.losses[-1])}{at_last}"))
    if facts["mean_train_loss"] is not None:
        rows.append(("Mean train loss (run average)", f"{loss_text(facts['mean_train_loss'])} (the trainer's "
                     "train_loss: the mean over all steps, not the final loss)"))
    if facts["eval_examples"] is not None:
        rows.append(("Eval examples", f"{facts['eval_examples']:,} (lines in predictions.jsonl)"))
    body = (rows and _table(rows)) or ["No figures recorded: no metrics, no final trainer record."]
    return "\n".join(["## Performance", "", *body])


def _loss_indices(count: int, rows: int = LOSS_ROWS) -> list[int]:
    """At most `rows` indices evenly spread over `count` points, first and last included."""
    if count <= rows:
        return list(range(count))
    return sorted({round(i * (count - 1) / (rows - 1)) for i in range(rows)})


def loss_curve(data: SummaryInput) -> str:
    """The plot and a table of at most 15 logged points, first and last included."""
    ev = data.ev
    series = ev.metrics
    out = ["## Loss Curve", ""]
    if series is None or not series.count:
        return "\n".join([*out, "No loss was logged."])
    if data.loss_plot:
        out += [f"![Loss curve]({data.loss_plot})", ""]
    elif data.plot_note:
        out += [f"_{data.plot_note}_", ""]
    indices = _loss_indices(series.count)
    lines = [series.line_of(i) for i in indices]
    records = records_at(ev.root / series.path, series.kind, [line for line in lines if line])
    has_steps = all(series.step_of(i) is not None for i in indices)
    has_epochs = any(not math.isnan(series.epochs[i]) for i in indices)
    lrs = {i: next((r[k] for k in _LR_KEYS if k in r), None) for i, line in zip(indices, lines, strict=True)
           if line and (r := records.get(line)) is not None}
    has_lr = any(isinstance(v, (int, float)) for v in lrs.values())
    columns = ["Step" if has_steps else "Record", "Loss"] + (["Learning Rate"] if has_lr else []) + \
        (["Epoch"] if has_epochs else [])
    out += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for i in indices:
        step = series.step_of(i)
        cells = [f"{step}" if has_steps and step is not None else f"#{i + 1}", loss_text(series.losses[i])]
        if has_lr:
            lr = lrs.get(i)
            cells.append(f"{lr:.3g}" if isinstance(lr, (int, float)) else "—")
        if has_epochs:
            epoch = series.epochs[i]
            cells.append("—" if math.isnan(epoch) else f"{epoch:.2f}")
        out.append("| " + " | ".join(cells) + " |")
    where = f"{series.path}" + (f", lines {lines[0]}–{lines[-1]}" if lines[0] and lines[-1] else "")
    out += ["", f"{len(indices)} of {series.count:,} logged losses, evenly spaced ({where})."]
    return "\n".join(out)


def hardware(data: SummaryInput) -> str:
    """What the run ran on, and the software versions."""
    ev, manifest = data.ev, data.ev.run_manifest
    env = manifest.environment if manifest is not None else {}
    snap = ev.gpu_snapshot
    rows: list[tuple[str, str]] = []
    if snap is not None and snap.devices:
        names = sorted({d.name for d in snap.devices})
        total = snap.devices[0].memory_total_mib
        memory = f", {total:,} MiB each" if total else ""
        rows.append(("GPU model", f"{' / '.join(names)} × {len(snap.devices)}{memory} ({snap.path})"))
    elif ev.env_fact("gpu"):
        fact = ev.env_fact("gpu")
        assert fact is not None
        rows.append(("GPU model", f"{fact[0]} ({fact[1]})"))
    else:
        cores = env.get("cpu_count")
        reason = env.get("nvml")
        rows.append(("Compute", "CPU" + (f", {cores} cores" if cores else "") +
                     (f"; {reason}" if isinstance(reason, str) else "; no GPU recorded")))
    facts = (("Driver", snap.driver if snap else None), ("CUDA (driver)", snap.cuda if snap else None))
    rows += [(label, value) for label, value in facts if value]
    for label, key in (("CUDA (framework)", "cuda"), ("Python", "python"), ("PyTorch", "torch"),
                       ("Transformers", "transformers"), ("JAX", "jax"), ("JAX backend", "jax_backend"),
                       ("Platform", "platform")):
        fact = ev.env_fact(key)
        if fact is not None and fact[0] not in ("", "None"):
            rows.append((label, fact[0]))
    if isinstance(env.get("host"), str):
        rows.append(("Host", str(env["host"])))
    return "\n".join(["## Hardware", "", *_table(rows, ("Component", "Value"))])


def gpu_utilisation(data: SummaryInput) -> str:
    """Mean and peak utilisation and peak memory from NVML samples (or the one snapshot there is)."""
    out = ["## GPU Utilisation", ""]
    stats, ev = data.samples, data.ev
    if stats is not None and stats.samples:
        if data.gpu_plot:
            out += [f"![GPU utilisation]({data.gpu_plot})", ""]
        rows = [("NVML samples", f"{stats.samples:,} over {len(stats.devices)} device(s) ({stats.path})"),
                ("Mean utilisation", f"{stats.mean_utilization:.1f}%"),
                ("Peak utilisation", f"{stats.max_utilization:.0f}%"),
                ("Peak memory held by the run", f"{stats.max_process_memory_mib:,.0f} MiB (its process tree)"),
                ("Peak device memory used", f"{stats.max_memory_used_mib:,.0f} MiB (all processes)"),
                ("Peak power", f"{stats.max_power_w:.0f} W")]
        return "\n".join([*out, *_table(rows, ("Measure", "Value"))])
    snap = ev.gpu_snapshot
    if snap is not None and snap.devices:
        out += [f"No samples over the run; one snapshot ({snap.path}):", "",
                "| Index | Name | Memory used | Utilisation |", "|---|---|---|---|"]
        for d in snap.devices:
            used = f"{d.memory_used_mib:,} / {d.memory_total_mib:,} MiB" if d.memory_used_mib is not None and \
                d.memory_total_mib else "—"
            util = f"{d.utilization}%" if d.utilization is not None else "—"
            out.append(f"| {d.index} | {cell(d.name)} | {used} | {util} |")
        return "\n".join(out)
    manifest = ev.run_manifest
    reason = manifest.environment.get("nvml") if manifest is not None else None
    why = reason if isinstance(reason, str) else "no gpu_samples.jsonl or GPU snapshot in the folder"
    return "\n".join([*out, f"No GPU samples: {why}."])


def quality_gates(data: SummaryInput) -> str:
    """Every gate's real result."""
    run = data.report
    return "\n".join(["## Quality Gates", "", *GATE_HEADER, *map(gate_row, run.gates), "",
                      f"Verdict: {SYMBOL[run.verdict]} **{run.verdict.upper()}** ({counts(run.gates)}), from "
                      f"`audit verify {data.run_dir}`" + (" on the folder with this summary in it: claims_consistent "
                                                         "checks its figures too." if data.hidden else ".")])


def _tree_lines(node: dict[str, Any], prefix: str, depth: int, collapse: int) -> list[str]:
    out: list[str] = []
    names = sorted(node, key=lambda n: (not isinstance(node[n], dict), n))
    for i, name in enumerate(names):
        last = i == len(names) - 1
        branch, child_prefix = ("└── ", "    ") if last else ("├── ", "│   ")
        value = node[name]
        if isinstance(value, dict):
            files, size = _totals(value)
            if depth >= collapse:
                out.append(f"{prefix}{branch}{name}/  ({files} files, {human_size(size)})")
            else:
                out.append(f"{prefix}{branch}{name}/")
                out += _tree_lines(value, prefix + child_prefix, depth + 1, collapse)
        else:
            out.append(f"{prefix}{branch}{name}  {human_size(value)}")
    return out


def _totals(node: dict[str, Any]) -> tuple[int, int]:
    files = size = 0
    for value in node.values():
        if isinstance(value, dict):
            f, s = _totals(value)
            files, size = files + f, size + s
        else:
            files, size = files + 1, size + value
    return files, size


def artifacts(data: SummaryInput) -> str:
    """The folder as a tree with sizes (deep folders folded when the tree would be long)."""
    ev = data.ev
    root: dict[str, Any] = {}
    for rel in ev.files:
        if rel in data.hidden:
            continue
        try:
            size = (ev.root / rel).stat().st_size
        except OSError:
            continue
        node = root
        *parents, name = rel.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[name] = size
    files, size = _totals(root)
    lines: list[str] = []
    for collapse in (99, 2, 1):
        lines = _tree_lines(root, "", 0, collapse)
        if len(lines) <= TREE_LINES:
            break
    if len(lines) > TREE_LINES:
        lines = [*lines[:TREE_LINES], f"… {len(lines) - TREE_LINES} more entries"]
    return "\n".join(["## Evidence Artifacts", "", "```", f"{Path(data.run_dir).name}/", *lines, "```", "",
                      f"{files} files, {human_size(size)}."])


def reproduce(data: SummaryInput) -> str:
    """How to check and re-run it."""
    from auditor.errors import AuditInputError
    from auditor.reproduce import request_from

    folder = shlex.quote(data.run_dir)
    out = ["## Reproduce", "", "```bash", f"audit verify {folder}"]
    try:
        request = request_from(data.ev.root, Path("."), None)
    except AuditInputError as exc:
        out += ["```", "", f"Not re-runnable from the evidence: {exc}."]
        return "\n".join(out)
    argv = ["audit", "run", "--runner", request.runner, "--device", request.device]
    if request.config is not None:
        argv += ["--config", str(Path(data.run_dir) / request.config.relative_to(data.ev.root))]
    if request.seed is not None:
        argv += ["--seed", str(request.seed)]
    if request.nproc_per_node > 1:
        argv += ["--nproc-per-node", str(request.nproc_per_node)]
    if request.evidence_only:
        argv.append("--evidence-only")
    argv += ["--out", "NEW_RUN_FOLDER"]
    if request.command:
        argv += ["--", *request.command]
    out += [f"audit reproduce {folder}   # re-run into {folder}_reproduce and compare step by step",
            shlex.join(argv) + "   # the recorded invocation", "```"]
    return "\n".join(out)


RENDERERS = {"header": header, "configuration": configuration, "performance": performance,
             "loss-curve": loss_curve, "hardware": hardware, "gpu-utilisation": gpu_utilisation,
             "quality-gates": quality_gates, "artifacts": artifacts, "reproduce": reproduce}


def blocks(data: SummaryInput) -> dict[str, str]:
    """Every owned block's body, by name."""
    return {name: RENDERERS[name](data) for name in ORDER}


def document(title: str, bodies: dict[str, str]) -> str:
    """A new summary file: the title and a place for people's words around the owned blocks."""
    out = [f"# {title}", "", block("header", bodies["header"]), "", "---", "", "## Executive Summary", "",
           "<!-- Your words go outside the auditor:begin/end blocks: `audit summary` rewrites only those. -->", ""]
    for name in ORDER[1:]:
        out += [block(name, bodies[name]), ""]
    return "\n".join(out)
