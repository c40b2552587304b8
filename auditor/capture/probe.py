"""Standalone environment probe, run by the training's own interpreter after the run (so it sees what the
training saw and never competes with it for a device). Prints one JSON object. Imports nothing from auditor."""

import importlib.metadata
import json
import platform
import sys


def _torch(out: dict) -> None:
    try:
        import torch
    except Exception as exc:  # not installed, or broken: say which
        out["torch_error"] = f"{type(exc).__name__}: {exc}"[:200]
        return
    out["torch"] = torch.__version__
    out["cuda"] = torch.version.cuda
    out["cuda_available"] = bool(torch.cuda.is_available())
    try:
        out["cudnn"] = torch.backends.cudnn.version()
    except Exception:
        out["cudnn"] = None
    if out["cuda_available"]:
        count = torch.cuda.device_count()
        out["cuda_device_count"] = count
        out["gpus"] = [torch.cuda.get_device_name(i) for i in range(count)]
        out["gpu"] = out["gpus"][0] if count else None
        out["bf16_supported"] = bool(torch.cuda.is_bf16_supported())
    out["torch_threads"] = torch.get_num_threads()


def _jax(out: dict) -> None:
    if "jax" not in out["packages"]:
        return
    try:
        import jax
    except Exception as exc:
        out["jax_error"] = f"{type(exc).__name__}: {exc}"[:200]
        return
    out["jax"] = jax.__version__
    try:
        out["jax_backend"] = jax.default_backend()
        out["jax_devices"] = [str(d) for d in jax.devices()]
    except Exception as exc:
        out["jax_error"] = f"{type(exc).__name__}: {exc}"[:200]


def main() -> None:
    out: dict = {
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
    }
    packages = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            packages[name.lower()] = dist.version
    out["packages"] = dict(sorted(packages.items()))
    for name in ("transformers", "accelerate", "safetensors", "numpy", "optax", "flax", "nvidia-ml-py"):
        if name in packages:
            out[name] = packages[name]
    if "torch" in packages:
        _torch(out)
    _jax(out)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
