"""The thin click layer: parse options, call one function, map errors to exit codes (0/1/2)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from auditor import __version__
from auditor.render import RENDERERS

EXIT_CANNOT_AUDIT = 2


def _fail_input(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(EXIT_CANNOT_AUDIT)


def _split(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="audit")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """auditor: prove from evidence that an ML training run did what its summary claims."""
    ctx.obj = {"debug": debug}


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(list(RENDERERS)), default="text", show_default=True)
@click.option("--output", type=click.Path(path_type=Path), help="Write the report here instead of stdout.")
@click.option("--quick", is_flag=True, help="No digests, no tensor data: headers and sizes only.")
@click.option("--strict", is_flag=True, help="A warning fails the verdict too.")
@click.option("--exit-zero", is_flag=True, help="Always exit 0 when the folders could be audited.")
@click.option("--select", multiple=True, help="Only these gate ids (comma-separated or repeated).")
@click.option("--ignore", multiple=True, help="Skip these gate ids (comma-separated or repeated).")
@click.option("--loss-window", type=click.FloatRange(0.01, 0.5), default=0.2, show_default=True,
              help="Share of logged losses in each window that loss_decreased compares.")
@click.option("--min-loss-drop", type=click.FloatRange(0.0, 1.0), default=0.01, show_default=True,
              help="Relative drop between the windows that loss_decreased requires.")
@click.pass_context
def verify(ctx: click.Context, run_dirs: tuple[Path, ...], fmt: str, output: Path | None, quick: bool,
           strict: bool, exit_zero: bool, select: tuple[str, ...], ignore: tuple[str, ...], loss_window: float,
           min_loss_drop: float) -> None:
    """Audit run folders (read-only); exit 0 pass, 1 a gate failed, 2 cannot audit."""
    from auditor.capture.files import write_atomic
    from auditor.evidence.paths import output_inside
    from auditor.gates import GateOptions
    from auditor.render import render
    from auditor.verify import VerifyOptions, execute, exit_code

    options = VerifyOptions(run_dirs=list(run_dirs), quick=quick, strict=strict, exit_zero=exit_zero,
                            select=_split(select), ignore=_split(ignore),
                            gate_options=GateOptions(loss_window=loss_window, min_loss_drop=min_loss_drop),
                            debug=bool(ctx.obj and ctx.obj.get("debug")))
    if output is not None:
        inside = next((d for d in run_dirs if output_inside(output, d)), None)
        if inside is not None:
            _fail_input(f"--output {output} lies inside the audited folder {inside}; verify never writes into "
                        "the evidence: write the report elsewhere (e.g. --output reports/verify.json)")
    report = execute(options)
    color = output is None and sys.stdout.isatty() and "NO_COLOR" not in os.environ and fmt == "text"
    text = render(fmt, report, color=color)
    if output is not None:
        try:
            write_atomic(output, text)
        except OSError as exc:
            _fail_input(f"cannot write --output {output}: {exc.strerror or exc}; choose a writable path")
    else:
        click.echo(text, nl=False)
    summary_path = os.environ.get("GITHUB_STEP_SUMMARY")
    if fmt == "github" and summary_path:
        try:
            with open(summary_path, "a", encoding="utf-8") as handle:
                handle.write(render("markdown", report))
        except OSError as exc:  # the verdict and the annotations above stand; only the job summary is missing
            click.echo(f"Warning: cannot append the job summary to $GITHUB_STEP_SUMMARY ({summary_path}): "
                       f"{exc.strerror or exc}; the report above is complete", err=True)
    sys.exit(exit_code(report, exit_zero))


@cli.command(context_settings={"ignore_unknown_options": True})
@click.option("--runner", required=True, help="pytorch, transformers, jax or command (see `runners/`).")
@click.option("--config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The run's config YAML (copied into the folder; its plan keys are recorded).")
@click.option("--out", type=click.Path(path_type=Path), help="Run folder (must be new or empty).")
@click.option("--name", help="Run id: the folder is submission_runs/<name>/.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "gpu", "tpu"]), default="auto",
              show_default=True, help="Device the run must use (gpu = cuda); a missing one stops it before launch.")
@click.option("--nproc-per-node", type=click.IntRange(1), default=1, show_default=True,
              help="Processes per node: >1 launches through torchrun (gloo on CPU, NCCL on GPUs).")
@click.option("--device-memory", help="Memory of one device for the fit check, e.g. 16GiB (default: NVML).")
@click.option("--metrics-regex", help="command runner: a regex with (?P<step>..) and (?P<loss>..) groups that "
              "reads metrics from the log lines.")
@click.option("--sample-interval", type=click.FloatRange(min=0.05), default=1.0, show_default=True,
              help="Seconds between NVML samples of every GPU (taken in this process, not the training's).")
@click.option("--evidence-only", is_flag=True, help="Declare that this run only collects evidence (no code change).")
@click.option("--capture-env", multiple=True, help="Also record environment variables with this prefix.")
@click.option("--seed", type=int, help="Seed for the reference trainers.")
@click.option("--force", is_flag=True, help="Run even when preflight says it will not work.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def run(runner: str, config: Path | None, out: Path | None, name: str | None, device: str, nproc_per_node: int,
        device_memory: str | None, metrics_regex: str | None, sample_interval: float, evidence_only: bool,
        capture_env: tuple[str, ...], seed: int | None, force: bool, command: tuple[str, ...]) -> None:
    """Launch a training under capture (`-- CMD...`, or a runner's reference trainer), then verify the folder.

    Exit 0 when training succeeded and every gate passes, 1 when training failed or a gate failed, 2 when the
    run could not start (used folder, preflight, bad command)."""
    from auditor.capture.session import RunRequest, execute_run
    from auditor.errors import AuditInputError
    from auditor.render import render
    from auditor.verify import VerifyOptions, execute, exit_code
    from runners import RUNNERS, get_runner

    if runner not in RUNNERS:
        raise AuditInputError(f"unknown runner {runner!r}; choose one of: {', '.join(RUNNERS)}")
    device = "cuda" if device == "gpu" else device
    request = RunRequest(runner=runner, command=list(command), config=config, out=out, name=name, device=device,
                         nproc_per_node=nproc_per_node, evidence_only=evidence_only,
                         capture_env=capture_env, force=force, seed=seed, sample_interval=sample_interval,
                         device_memory=device_memory, metrics_regex=metrics_regex)
    folder, result = execute_run(request, get_runner(runner))
    report = execute(VerifyOptions(run_dirs=[folder]))
    color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    click.echo(render("text", report, color=color), nl=False)
    detail = f"exit {result.exit_code}" if result.exit_code is not None else f"signal {result.signal}"
    click.echo(f"training {result.status} ({detail}) in {result.wall_seconds:.1f}s; evidence in {folder}")
    sys.exit(1 if result.status != "succeeded" else exit_code(report, False))


@cli.command()
@click.option("--config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The run's config YAML (model: architecture, training: batch/seq/dtype/optimizer).")
@click.option("--model-config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A HuggingFace config.json with the architecture.")
@click.option("--device", type=click.Choice(["cuda", "gpu", "tpu", "cpu"]), default="cuda", show_default=True)
@click.option("--device-memory", help="Memory of one device, e.g. 16GiB (default: NVML's figure for GPU 0).")
@click.option("--batch-size", type=click.IntRange(1), help="Per-device batch size.")
@click.option("--seq-len", type=click.IntRange(1), help="Sequence length.")
@click.option("--dtype", type=click.Choice(["fp32", "bf16", "fp16"]), help="Storage dtype of weights and gradients.")
@click.option("--mixed-precision", is_flag=True, help="fp32 master weights with 16-bit activations.")
@click.option("--optimizer", type=click.Choice(["adamw", "adafactor", "sgd", "sgd_momentum"]))
@click.option("--gradient-checkpointing", is_flag=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def preflight(config: Path | None, model_config: Path | None, device: str, device_memory: str | None,
              batch_size: int | None, seq_len: int | None, dtype: str | None, mixed_precision: bool,
              optimizer: str | None, gradient_checkpointing: bool, fmt: str) -> None:
    """Will the model fit? Memory estimate for full fine-tuning against one device.

    Exit 0 when it fits (or device memory is unknown), 1 when it does not, 2 for bad input."""
    import json as json_module

    from auditor import preflight as fit
    from auditor.errors import AuditInputError
    from runners import plan_from_config

    device = "cuda" if device == "gpu" else device
    plan = plan_from_config(config, "auto")
    architecture = dict(plan.architecture)
    if model_config is not None:
        try:
            architecture.update(json_module.loads(model_config.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise AuditInputError(f"{model_config}: not a JSON config ({exc})") from None
    try:
        shape = fit.ModelShape.from_config(architecture)
    except (KeyError, TypeError, ValueError) as exc:
        raise AuditInputError(f"no architecture to size: {exc} is missing; give --model-config config.json or a "
                              "`model:` section with HuggingFace key names in --config") from None
    opts = fit.options_from_plan(plan, device)
    for name, value in (("batch_size", batch_size), ("seq_len", seq_len), ("dtype", dtype), ("optimizer", optimizer)):
        if value is not None:
            setattr(opts, name, value)
    opts.mixed_precision = mixed_precision or opts.mixed_precision
    opts.gradient_checkpointing = gradient_checkpointing or opts.gradient_checkpointing
    try:
        est = fit.estimate(shape, opts, fit.device_memory(device, device_memory))
    except ValueError as exc:
        raise AuditInputError(f"--device-memory: {exc}") from None
    if fmt == "json":
        click.echo(json_module.dumps({"parameters": est.parameters, "components": est.components, "total": est.total,
                                      "device_bytes": est.device_bytes, "fits": est.fits, "note": est.note}, indent=2))
    else:
        click.echo(fit.render(est, shape, opts, "exact, from tensor shapes"), nl=False)
    sys.exit(1 if est.fits is False else 0)


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The .zip to write.")
@click.option("--exclude-weights", is_flag=True, help="Leave weight files out (EXCLUDED_WEIGHTS lists their sha256).")
@click.option("--force", is_flag=True, help="Package a folder that fails verify (the failing report goes inside).")
def package(run_dir: Path, output: Path, exclude_weights: bool, force: bool) -> None:
    """Verify a run folder, then write it as a deterministic zip with SHA256SUMS and the verify report.

    Exit 0 when packaged, 1 when the folder fails verify (nothing written unless --force), 2 for bad input."""
    import json as json_module

    from auditor.errors import AuditInputError
    from auditor.evidence.paths import is_within
    from auditor.package import package_folder
    from auditor.render import render
    from auditor.verify import VerifyOptions, check_run_dir, execute

    check_run_dir(run_dir)
    if is_within(output, run_dir):
        raise AuditInputError(f"--output {output} is inside {run_dir}: write the archive outside the run folder")
    report = execute(VerifyOptions(run_dirs=[run_dir]))
    verdict = report.runs[0].verdict
    if verdict == "fail" and not force:
        click.echo(render("text", report), nl=False)
        click.echo(f"not packaged: {run_dir} fails verify (--force packages it with the failing report inside)")
        sys.exit(1)
    data = json_module.loads(render("json", report))
    data["runs"][0]["run_dir"] = run_dir.resolve().name  # the same archive whatever the path it was made from
    done = package_folder(run_dir, output, data, exclude_weights=exclude_weights)
    excluded = f", {done.excluded} weight file(s) left out" if done.excluded else ""
    click.echo(f"{done.path}: {done.files} file(s){excluded}, verify verdict {verdict}")
    click.echo(f"sha256 {done.sha256}")


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the statement here (default: stdout).")
def attest(run_dir: Path, output: Path | None) -> None:
    """An in-toto Statement v1 for a run folder: every file as a subject with its sha256, and a training-run
    audit predicate (plan, outcome, environment digest, verify verdict and gate results).

    Exit 0 when written (a failing verdict is recorded, not refused), 2 for bad input."""
    import contextlib
    import json as json_module

    from auditor.attest import statement
    from auditor.errors import AuditInputError
    from auditor.evidence.paths import is_within
    from auditor.render import render
    from auditor.verify import VerifyOptions, check_run_dir, execute

    check_run_dir(run_dir)
    if output is not None and is_within(output, run_dir):
        raise AuditInputError(f"--output {output} is inside {run_dir}: write the statement outside the run folder")
    report = json_module.loads(render("json", execute(VerifyOptions(run_dirs=[run_dir]))))
    manifest = None
    with contextlib.suppress(OSError, ValueError):  # a seed-style folder has none; a broken one is in the gates
        manifest = json_module.loads((run_dir / "run_manifest.json").read_text(encoding="utf-8"))
    text = json_module.dumps(statement(run_dir, report, manifest if isinstance(manifest, dict) else None),
                             indent=2, sort_keys=True) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"{output}: in-toto Statement v1, verdict {report['runs'][0]['verdict']}")


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Markdown file to write or update ('-' prints it; default: <run_dir>/<run_id>_summary.md).")
@click.option("--milestone", help="Milestone name for the header (default: from the folder name, m44_v1 → M44).")
def summary(run_dir: Path, output: Path | None, milestone: str | None) -> None:
    """Render the milestone summary from the evidence: markdown in the seeds' structure (status from the verify
    verdict, configuration, performance, loss curve, hardware, GPU utilisation, quality gates, artifacts,
    reproduce) with a loss plot (and a GPU plot when NVML samples exist) beside it.

    Re-running rewrites only the blocks between `<!-- auditor:begin NAME -->` and `<!-- auditor:end NAME -->`:
    text written around them is kept. Exit 0 when written (a failing verdict is shown, not refused), 2 for bad
    input or a hand-written file in the way."""
    from auditor.summary import summarize

    to_stdout = output is not None and str(output) == "-"
    result = summarize(run_dir, None if to_stdout else output, milestone, to_stdout=to_stdout)
    if to_stdout:
        click.echo(result.text, nl=False)
        return
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    plots = f" + {', '.join(p.name for p in result.plots)}" if result.plots else ""
    action = "updated (text outside the auditor blocks kept)" if result.updated else "written"
    click.echo(f"{result.output}{plots}: {action}, verify verdict {result.verdict}")


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text", show_default=True)
def compare(run_dirs: tuple[Path, ...], fmt: str) -> None:
    """Compare runs: steps, runtime, throughput, losses, eval count and gates side by side with deltas against
    the first, then what differs (config keys, package versions, hardware, commit). Exit 0, or 2 for bad input."""
    from auditor.compare import compare_dirs, render
    from auditor.errors import AuditInputError
    from auditor.verify import check_run_dir

    if len(run_dirs) < 2:
        raise AuditInputError("compare needs two or more run folders, e.g. `audit compare runs/m43 runs/m44`")
    for path in run_dirs:
        check_run_dir(path)
    click.echo(render(compare_dirs(list(run_dirs)), fmt), nl=False)


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), help="Folder for the re-run (default: <run_dir>_reproduce).")
@click.option("--rtol", type=click.FloatRange(min=0), default=1e-5, show_default=True)
@click.option("--atol", type=click.FloatRange(min=0), default=1e-8, show_default=True)
@click.option("--seed", type=int, help="Re-run with this seed instead of the recorded one (to test sensitivity).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--yes", is_flag=True, help="Run the recorded command without asking (it is shown first).")
def reproduce(run_dir: Path, out: Path | None, rtol: float, atol: float, seed: int | None, fmt: str,
              yes: bool) -> None:
    """Re-run a run recorded by `audit run` (runner, command, config, seed) and compare step by step.

    Exit 0 for bitwise or within-tolerance, 1 for diverged, 2 when the folder cannot be reproduced."""
    import dataclasses
    import json as json_module

    from auditor.capture.session import execute_run
    from auditor.reproduce import compare_runs, needs_consent, render, request_from
    from auditor.verify import check_run_dir
    from runners import RUNNERS, get_runner

    check_run_dir(run_dir)
    target = out or run_dir.parent / f"{run_dir.name}_reproduce"
    request = request_from(run_dir, target, seed)
    if request.runner not in RUNNERS:
        from auditor.errors import AuditInputError

        raise AuditInputError(f"{run_dir}: recorded runner {request.runner!r} is not available here")
    if needs_consent(request):
        import shlex

        from auditor.errors import AuditInputError

        shown = shlex.join(request.command)
        click.echo(f"reproduce will run the command recorded in {run_dir}/run_manifest.json:\n  {shown}", err=True)
        if not yes and not (sys.stdin.isatty() and click.confirm("Run it?", default=False, err=True)):
            raise AuditInputError("the recorded command was not confirmed: read it above, then re-run with --yes "
                                  "to run it")
    folder, result = execute_run(request, get_runner(request.runner), echo=sys.stderr.buffer)
    comparison = compare_runs(run_dir, folder, rtol, atol, rerun_ok=result.status == "succeeded")
    if fmt == "json":
        click.echo(json_module.dumps({"original": str(run_dir), "rerun": str(folder), "rtol": rtol, "atol": atol,
                                      **dataclasses.asdict(comparison)}, indent=2))
    else:
        click.echo(render(comparison, run_dir, folder, rtol, atol), nl=False)
    sys.exit(1 if comparison.verdict == "diverged" else 0)


@cli.command()
def gates() -> None:
    """List the gates with what each proves."""
    from auditor.gates import REGISTRY

    for gate in REGISTRY.values():
        click.echo(f"{gate.id:22} {gate.proves}")


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text", show_default=True)
def formats(fmt: str) -> None:
    """List every evidence format read (metrics, logs, checkpoints), with the files each looks for."""
    from auditor.formats import RENDER

    click.echo(RENDER[fmt](), nl=False)


@cli.command()
@click.argument("name", required=False)
@click.option("--write", "write_dir", type=click.Path(path_type=Path), help="Write every schema into DIR.")
def schema(name: str | None, write_dir: Path | None) -> None:
    """Print a published JSON Schema, or write them all with --write DIR."""
    from auditor.errors import AuditInputError
    from auditor.schemas import MODELS, schema_text, write_schemas

    if write_dir is not None:
        for path in write_schemas(write_dir):
            click.echo(str(path))
        return
    if name is None:
        click.echo("\n".join(MODELS))
        return
    key = name.removesuffix(".schema.json")
    if key not in MODELS:
        raise AuditInputError(f"unknown schema {name!r}; choose one of: {', '.join(MODELS)}")
    click.echo(schema_text(key), nl=False)


def main() -> None:
    """Console-script entry: one-line `Error:` messages and exit 2 for input problems, never a traceback."""
    from auditor.errors import AuditInputError

    debug = "--debug" in sys.argv[1:]
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _fail_input("aborted")
    except click.ClickException as exc:
        if debug:
            raise
        _fail_input(exc.format_message())
    except AuditInputError as exc:
        if debug:
            raise
        _fail_input(str(exc))
    except KeyboardInterrupt:
        _fail_input("interrupted")
    except Exception as exc:  # a bug must still end in one clear line, not a traceback
        if debug:
            raise
        _fail_input(f"internal error: {type(exc).__name__}: {exc} (run with --debug for a traceback and report it)")
