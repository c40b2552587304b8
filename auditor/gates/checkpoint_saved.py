"""checkpoint_saved: the final checkpoint exists and is structurally valid (headers only)."""

from __future__ import annotations

from auditor.evidence.run import RunEvidence
from auditor.gates.base import GateContext, Results, gate, ref
from auditor.models import EvidenceRef, GateResult

R = Results("checkpoint_saved")


@gate("checkpoint_saved", "the final checkpoint exists and is structurally valid: safetensors headers cover "
      "their files exactly, shards in the index all present, config.json parses")
def check(ev: RunEvidence, ctx: GateContext) -> GateResult:
    """Find the final model directory and validate it from safetensors headers and its index."""
    ckpt = ev.checkpoint
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
    if ckpt.format == "safetensors":
        return R("pass", f"{ckpt.directory}/: {ckpt.summary}", ref(f"{ckpt.directory}/config.json"))
    summary = ckpt.summary if ckpt.summary.startswith(ckpt.directory) else f"{ckpt.directory}: {ckpt.summary}"
    return R("pass", summary, ref(ckpt.directory))
