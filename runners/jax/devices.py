"""Standalone JAX device probe: `python devices.py [PLATFORM]` prints one JSON object with the backend JAX
picks, every device it sees, and for PLATFORM (cpu, gpu, tpu) whether it is there. Run in its own process so the
wrapper never holds a TPU the training then cannot open. Imports nothing from auditor."""

import json
import sys


def main() -> None:
    wanted = sys.argv[1] if len(sys.argv) > 1 else None
    out: dict = {"wanted": wanted}
    try:
        import jax
    except Exception as exc:
        out["error"] = f"jax cannot be imported: {type(exc).__name__}: {exc}"[:300]
        print(json.dumps(out))
        return
    out["jax"] = jax.__version__
    try:
        out["backend"] = jax.default_backend()
        out["devices"] = [{"id": d.id, "platform": d.platform, "kind": getattr(d, "device_kind", None)}
                          for d in jax.devices()]
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"[:300]
    if wanted:
        try:
            out["wanted_devices"] = len(jax.devices(wanted))
        except Exception as exc:
            out["wanted_devices"] = 0
            out["wanted_error"] = f"{type(exc).__name__}: {exc}"[:300]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
