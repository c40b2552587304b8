"""checkpoint_safe: no pickle-based checkpoint would run code when loaded."""

from __future__ import annotations

from auditor.evidence.checkpoint import PickleGlobal
from auditor.evidence.pickles import unsafe_globals
from auditor.evidence.run import RunEvidence
from auditor.gates.base import GateContext, Results, gate, ref
from auditor.models import GateResult

R = Results("checkpoint_safe")


@gate("checkpoint_safe", "no pickle-based checkpoint would run code when loaded: only tensor-rebuilding globals "
      "are imported")
def check(ev: RunEvidence, ctx: GateContext) -> GateResult:
    """Every pickle of every checkpoint in the folder (walked, never executed) against the allowlist of globals
    that only rebuild tensors and plain data (auditor.evidence.pickles.SAFE_GLOBALS)."""
    pickled = [ckpt for ckpt in (ev.inspect(c) for c in ev.checkpoint_candidates) if ckpt.pickle_globals]
    if not pickled:
        return R("skip", "no pickle-based checkpoint in the folder (safetensors and other formats hold no code)")
    unsafe: list[PickleGlobal] = []
    for ckpt in pickled:
        unsafe.extend(unsafe_globals(ckpt.pickle_globals))
    if unsafe:
        first = unsafe[0]
        names = sorted({g.qualified for g in unsafe})
        more = f" ({len(names)} unsafe global(s): {', '.join(names[:5])})" if len(names) > 1 else ""
        return R("fail", f"{first.path} imports {first.qualified} (pickle byte {first.offset}): loading it with "
                 f"torch.load runs that code{more}; re-save the weights as safetensors, or load only with "
                 "weights_only=True after checking where the file came from",
                 *[ref(g.path, note=f"{g.qualified} at pickle byte {g.offset}") for g in unsafe[:10]])
    imported = sorted({g.qualified for ckpt in pickled for g in ckpt.pickle_globals})
    listed = ", ".join(imported[:4]) + (", ..." if len(imported) > 4 else "")
    return R("pass", f"{len(pickled)} pickle-based checkpoint(s); every global they import only rebuilds tensors "
             f"or plain data ({len(imported)} distinct: {listed})",
             *[ref(ckpt.directory) for ckpt in pickled[:10]])
