"""checkpoint_saved: the final checkpoint exists and is structurally valid (headers only), is not behind a link,
and is not an earlier checkpoint's weights under the final name."""

from __future__ import annotations

import re

from auditor.evidence.checkpoint import Checkpoint, model_link, same_weights
from auditor.evidence.jsonload import load_json
from auditor.evidence.opener import EvidenceUnreadable
from auditor.evidence.run import RunEvidence
from auditor.gates.base import GateContext, Results, gate, ref
from auditor.models import EvidenceRef, GateResult

R = Results("checkpoint_saved")
_STEP_DIR = re.compile(r"checkpoint-(\d+)/?$")
MAX_STATE_BYTES = 64 * 1024 * 1024


@gate("checkpoint_saved", "the final checkpoint exists and is structurally valid: safetensors headers cover "
      "their files exactly, shards in the index all present, config.json parses")
def check(ev: RunEvidence, ctx: GateContext) -> GateResult:
    """Find the final model directory and validate it from safetensors headers and its index."""
    ckpt = ev.checkpoint
    linked = _linked_model(ev, ckpt)
    if linked is not None:
        return linked
    sources = [s for s in ev.metrics_sources if s.records or s.outcome]
    if ckpt is None and sources and not any(s.needs_checkpoint for s in sources):
        return R("skip", f"no checkpoint, and none is expected: {sources[0].path} is evidence of a kind that never "
                 "includes model weights (benchmark results logs)", ref(sources[0].path))
    if ckpt is None:
        pointers: list[EvidenceRef] = []
        hint = ""
        for signals in ev.log_signals:
            for line, target in signals.saved_to[-1:]:
                pointers.append(ref(signals.path, line))
                hint = f"; {signals.path}:{line} says it was saved to {target}, outside this folder"
        out = next((link for link in ev.symlinks if link.escapes), None)
        if out is not None:
            pointers.append(ref(out.path))
            hint += f"; {out.path} is a link out of the folder (→ {out.target}), which is never followed"
        return R("fail", "no checkpoint in the folder (looked for every checkpoint format `audit formats` lists: "
                 f"safetensors model folders, torch.save archives, DCP, DeepSpeed, Orbax){hint}; save the final "
                 "model inside the run folder", *pointers)
    if ckpt.missing_shards:
        index = ckpt.index.path if ckpt.index else ckpt.directory
        total = len(ckpt.index.shards) if ckpt.index else len(ckpt.missing_shards)
        return R("fail", f"{index} lists {total} shard(s); {len(ckpt.missing_shards)} missing: "
                 f"{', '.join(ckpt.missing_shards[:3])} — the weights were not kept next to their index; add them "
                 "(or use Git LFS) so the checkpoint can be verified", ref(index))
    if ckpt.problems:
        return R("fail", f"checkpoint {ckpt.directory}/ is not valid: " + "; ".join(ckpt.problems[:3]),
                 ref(ckpt.problems[0].split(":", 1)[0]))
    if ckpt.config_problem and ckpt.format == "safetensors":
        return R("fail", f"{ckpt.directory}/{ckpt.config_problem}; save the model with its config "
                 "(save_pretrained writes both)", ref(f"{ckpt.directory}/config.json"))
    stale = None if ctx.options.quick else _earlier_twin(ev, ckpt)
    if stale is not None:
        return stale
    unchecked = " (not compared with earlier checkpoints: --quick reads no tensor data)" if ctx.options.quick and \
        len(ev.checkpoint_candidates) > 1 else ""
    if ckpt.format == "safetensors":
        return R("pass", f"{ckpt.directory}/: {ckpt.summary}{unchecked}", ref(f"{ckpt.directory}/config.json"))
    summary = ckpt.summary if ckpt.summary.startswith(ckpt.directory) else f"{ckpt.directory}: {ckpt.summary}"
    return R("pass", summary + unchecked, ref(ckpt.directory))


def _linked_model(ev: RunEvidence, ckpt: Checkpoint | None) -> GateResult | None:
    """A failure when a model stands behind a symbolic link: one leading out of the folder where a checkpoint
    would be (final_model/, checkpoint-N/, a weights file or shard), or any link inside the final checkpoint.
    Links are never followed, so what they point at is not evidence of this run."""
    directory = ckpt.directory if ckpt is not None else None
    for link in ev.symlinks:
        if not model_link(link.path, directory):
            continue
        inside_final = directory not in (None, ".") and link.path.startswith(f"{directory}/")
        if link.escapes:
            return R("fail", f"{link.path} is a symbolic link out of the run folder (→ {link.target}): a model "
                     "outside the folder is not evidence of this run and is never followed; copy the files in",
                     ref(link.path))
        if inside_final:
            return R("fail", f"{link.path} in the final checkpoint {directory}/ is a symbolic link (→ "
                     f"{link.target}): a checkpoint is verified from its regular files only; replace the link with "
                     "the file", ref(link.path))
    return None


def _earlier_twin(ev: RunEvidence, ckpt: Checkpoint) -> GateResult | None:
    """A failure when the final checkpoint holds exactly the tensor data of a checkpoint saved before the last
    training step: the 'final' model is then that earlier model, not the result of the training."""
    candidates = ev.checkpoint_candidates
    steps = [c.step for c in candidates if c.step is not None]
    if ev.evidence_max_step is not None:
        steps.append(ev.evidence_max_step)
    if not steps or len(candidates) < 2:
        return None
    last = max(steps)
    final_step = ckpt.step if ckpt.step is not None else last
    for candidate in candidates[1:]:
        if candidate.step is None or candidate.step >= final_step:
            continue
        earlier = ev.inspect(candidate)
        if earlier.directory == ckpt.directory or earlier.problems or earlier.missing_shards:
            continue
        pair = same_weights(ev.folder, ckpt, earlier)
        if pair is None:
            continue
        best = _best_checkpoint(ev)
        if best is not None and best[0] == candidate.step:
            return R("pass", f"{ckpt.directory}/: {ckpt.summary}; it holds the step-{candidate.step} weights of "
                     f"{earlier.directory}/, the best checkpoint {best[1]} records (load_best_model_at_end)",
                     ref(pair[0]), ref(best[1]))
        return R("fail", f"{pair[0]} holds the same tensor data as {pair[1]}, byte for byte: the final checkpoint "
                 f"{ckpt.directory}/ is the step-{candidate.step} model, but training ran to step {last}; save the "
                 "model after the last step", ref(pair[0]), ref(pair[1]))
    return None


def _best_checkpoint(ev: RunEvidence) -> tuple[int, str] | None:
    """(step, trainer_state.json) of the best checkpoint the HF Trainer recorded in its newest trainer_state.json:
    with load_best_model_at_end the final model is that earlier checkpoint by design."""
    states = [(int(m.group(1)), rel) for rel in ev.files
              if rel.endswith("/trainer_state.json") and (m := _STEP_DIR.search(rel.rpartition("/")[0]))]
    if not states:
        return None
    _, rel = max(states)
    try:
        data, cut = ev.folder.read(rel, MAX_STATE_BYTES)
        state = None if cut else load_json(data)
    except (EvidenceUnreadable, ValueError):
        return None
    if not isinstance(state, dict):
        return None
    step = state.get("best_global_step")
    if type(step) is not int:
        match = _STEP_DIR.search(str(state.get("best_model_checkpoint") or ""))
        step = int(match.group(1)) if match else None
    return (step, rel) if step is not None else None
