"""environment_captured: interpreter, framework and accelerator facts were recorded."""

from __future__ import annotations

from auditor.evidence.run import RunEvidence
from auditor.gates.base import GateContext, Results, gate, ref
from auditor.models import GateResult

R = Results("environment_captured")
FRAMEWORKS = ("torch", "jax", "transformers", "tensorflow", "keras")


@gate("environment_captured", "interpreter, framework and accelerator facts were recorded")
def check(ev: RunEvidence, ctx: GateContext) -> GateResult:
    """An environment snapshot must name the Python and framework versions, and the accelerator when one is used."""
    if not ev.env:
        described = next((s for s in ev.metrics_sources
                          if s.facts.get("framework") and s.facts.get("accelerator_model_name")), None)
        if described is not None:
            told = described.facts
            where_from = told.get("system_description", described.path)
            count = f"{told['accelerators']} × " if told.get("accelerators") else ""
            cuda = f", CUDA {told['cuda_version']}" if told.get("cuda_version") else ""
            return R("pass", f"recorded by the system description {where_from} (of the submission "
                     f"{described.path} is from): "
                     f"framework {told['framework']}{cuda}; accelerator {count}{told['accelerator_model_name']}",
                     ref(described.path))
        return R("fail", "no environment snapshot (env_snapshot.json/.txt, collect_env output, pip freeze, conda "
                 "list, env*.json): Python, framework and CUDA versions are unknown; capture one with `audit run` or "
                 "`python -m torch.utils.collect_env > env_snapshot.txt`")
    missing = []
    if ev.env_fact("python") is None:
        missing.append("Python version")
    if not any(ev.env_fact(f) for f in FRAMEWORKS):
        missing.append("framework version (torch/jax/transformers/tensorflow)")
    accelerated = ev.plan.device in ("cuda", "gpu", "tpu") or ev.gpu_snapshot is not None
    backend = ev.env_fact("jax_backend")  # JAX on a TPU or GPU names its backend, not a device model
    on_device = backend is not None and backend[0].lower() in ("tpu", "gpu", "cuda", "rocm")
    if accelerated and not (ev.env_fact("gpu") or ev.env_fact("cuda") or ev.gpu_snapshot or on_device):
        missing.append("accelerator (GPU name, CUDA version or JAX backend)")
    paths = [ref(f.path) for f in ev.env]
    if missing:
        return R("fail", f"environment snapshot lacks: {', '.join(missing)}", *paths)
    facts = sorted({k for f in ev.env for k in f.facts})
    return R("pass", f"recorded: {', '.join(facts)}", *paths)
