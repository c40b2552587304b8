"""The JAX reference trainer: the pytorch reference's decoder (same config, same parameter names and shapes, so
either framework's checkpoint loads in the other) written in jax.numpy and trained with optax AdamW on the same
shipped corpus. Runs on whatever platform JAX_PLATFORMS names (the runner sets it from --device, so a missing
TPU or GPU is an error, never a silent fall-back to CPU). Seeded: CPU runs repeat bit for bit.

    python -m runners.jax.reference [--config config.yaml] [--seed N]
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from runners.pytorch.reference import CORPUS, ReferenceConfig, evaluate, reference_args

RUN_FILE = "training_output/jax_run.json"


def init_params(config: ReferenceConfig, key: Any) -> dict[str, Any]:
    """Parameters named and shaped as the pytorch reference's state_dict (Linear weights are (out, in))."""
    import jax
    import jax.numpy as jnp

    d, ff = config.hidden_size, config.intermediate_size
    shapes: dict[str, tuple[int, ...]] = {"embed_tokens.weight": (config.vocab_size, d),
                                          "embed_positions.weight": (config.max_seq_length, d)}
    for i in range(config.num_hidden_layers):
        p = f"layers.{i}."
        shapes.update({p + "attn_norm.weight": (d,), p + "attn_norm.bias": (d,), p + "qkv.weight": (3 * d, d),
                       p + "qkv.bias": (3 * d,), p + "out.weight": (d, d), p + "out.bias": (d,),
                       p + "mlp_norm.weight": (d,), p + "mlp_norm.bias": (d,), p + "up.weight": (ff, d),
                       p + "up.bias": (ff,), p + "down.weight": (d, ff), p + "down.bias": (d,)})
    shapes.update({"norm.weight": (d,), "norm.bias": (d,)})
    keys = jax.random.split(key, len(shapes))
    params = {}
    for k, (name, shape) in zip(keys, sorted(shapes.items()), strict=True):
        if name.endswith("norm.weight"):
            params[name] = jnp.ones(shape, jnp.float32)
        elif name.endswith(".bias"):
            params[name] = jnp.zeros(shape, jnp.float32)
        else:
            params[name] = 0.02 * jax.random.normal(k, shape, jnp.float32)
    return params


def forward(params: dict[str, Any], ids: Any, config: ReferenceConfig) -> Any:
    """Logits (batch, seq, vocab): pre-norm causal attention blocks with a tied output head."""
    import jax
    import jax.numpy as jnp

    def norm(x: Any, name: str) -> Any:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / jnp.sqrt(var + 1e-5) * params[name + ".weight"] + params[name + ".bias"]

    def linear(x: Any, name: str) -> Any:
        return x @ params[name + ".weight"].T + params[name + ".bias"]

    b, t = ids.shape
    d, heads = config.hidden_size, config.num_attention_heads
    x = params["embed_tokens.weight"][ids] + params["embed_positions.weight"][:t]
    mask = jnp.tril(jnp.ones((t, t), bool))
    for i in range(config.num_hidden_layers):
        p = f"layers.{i}."
        q, k, v = linear(norm(x, p + "attn_norm"), p + "qkv").reshape(b, t, 3, heads, d // heads).transpose(
            2, 0, 3, 1, 4)
        scores = jnp.where(mask, q @ k.transpose(0, 1, 3, 2) / jnp.sqrt(d // heads), -jnp.inf)
        attn = jax.nn.softmax(scores, axis=-1) @ v
        x = x + linear(attn.transpose(0, 2, 1, 3).reshape(b, t, d), p + "out")
        x = x + linear(jax.nn.gelu(linear(norm(x, p + "mlp_norm"), p + "up"), approximate=False), p + "down")
    return norm(x, "norm") @ params["embed_tokens.weight"].T


def save_checkpoint(params: dict[str, Any], config: ReferenceConfig, directory: Path) -> None:
    """model.safetensors + config.json, as the pytorch reference writes them."""
    import numpy as np
    from safetensors.numpy import save_file

    save_file({k: np.asarray(v) for k, v in params.items()}, str(directory / "model.safetensors"),
              metadata={"format": "np"})
    (directory / "config.json").write_text(json.dumps(config.model_config(), indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    config = reference_args(argv, __doc__ or "", devices=False)

    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from auditor import runtime

    devices = jax.devices()
    backend = jax.default_backend()
    print(f"jax {jax.__version__}: backend {backend}, {len(devices)} device(s): "
          + ", ".join(f"{d.platform}:{d.id} ({getattr(d, 'device_kind', '?')})" for d in devices), flush=True)
    run_file = runtime.run_dir() / RUN_FILE
    run_file.parent.mkdir(parents=True, exist_ok=True)
    run_file.write_text(json.dumps({"jax": jax.__version__, "backend": backend, "device_count": len(devices),
                                    "devices": [{"id": d.id, "platform": d.platform,
                                                 "kind": getattr(d, "device_kind", None)} for d in devices]},
                                   indent=2) + "\n", encoding="utf-8")

    data = np.frombuffer(CORPUS.read_bytes(), dtype=np.uint8).astype(np.int32)
    split = int(len(data) * 0.9)
    train, held_out = data[:split], data[split:]
    seq = config.max_seq_length
    params = init_params(config, jax.random.PRNGKey(config.seed))
    n_params = sum(int(np.prod(v.shape)) for v in params.values())
    print(f"model: {n_params:,} parameters, config {json.dumps(config.model_config())}", flush=True)
    schedule = optax.warmup_cosine_decay_schedule(0.0, config.learning_rate, config.warmup_steps, config.max_steps)
    optimizer = optax.chain(optax.clip_by_global_norm(1.0),
                            optax.adamw(schedule, weight_decay=config.weight_decay))
    state = optimizer.init(params)

    def loss_fn(p: dict[str, Any], batch: Any) -> Any:
        logits = forward(p, batch[:, :-1], config)
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch[:, 1:]).mean()

    @jax.jit
    def train_step(p: dict[str, Any], s: Any, batch: Any) -> tuple[Any, Any, Any, Any]:
        loss, grads = jax.value_and_grad(loss_fn)(p, batch)
        updates, s = optimizer.update(grads, s, p)
        return optax.apply_updates(p, updates), s, loss, optax.global_norm(grads)

    rng = np.random.default_rng(config.seed)
    losses: list[float] = []
    start = time.perf_counter()
    for step in range(1, config.max_steps + 1):
        starts = rng.integers(0, len(train) - seq - 1, config.batch_size)
        batch = jnp.asarray(np.stack([train[s: s + seq + 1] for s in starts]))
        params, state, loss, grad_norm = train_step(params, state, batch)
        if step % config.logging_steps == 0 or step == config.max_steps:
            losses.append(float(loss))
            epoch = step * config.batch_size * seq / len(train)
            runtime.log_metrics(step, loss=round(losses[-1], 6), grad_norm=round(float(grad_norm), 6),
                                learning_rate=float(schedule(step - 1)), epoch=round(epoch, 4))
            print(f"step {step}/{config.max_steps} loss {losses[-1]:.4f} grad_norm {float(grad_norm):.3f}",
                  flush=True)
        if step % config.save_steps == 0 and step < config.max_steps:
            save_checkpoint(params, config, runtime.checkpoint_dir(step))
    jax.block_until_ready(params)
    runtime_s = time.perf_counter() - start
    save_checkpoint(params, config, runtime.final_model_dir())
    tokens = config.max_steps * config.batch_size * seq
    runtime.log_final(step=config.max_steps, epoch=round(tokens / len(train), 4), train_runtime=round(runtime_s, 3),
                      train_samples_per_second=round(config.max_steps * config.batch_size / runtime_s, 3),
                      train_steps_per_second=round(config.max_steps / runtime_s, 3),
                      train_tokens_per_second=round(tokens / runtime_s, 1), total_flos=float(6 * n_params * tokens),
                      train_loss=round(sum(losses) / len(losses), 6))
    print(f"trained {config.max_steps} steps in {runtime_s:.1f}s; final loss {losses[-1]:.4f}", flush=True)

    logits_of = jax.jit(lambda p, ids: forward(p, ids, config))

    def score(prompt: list[int], reference: list[int]) -> tuple[float, list[int]]:
        loss = float(loss_fn(params, jnp.asarray([prompt + reference])))
        ids = list(prompt)
        for _ in range(config.generate_tokens):  # a fixed-width window padded on the right: one compiled shape
            context = ids[-seq:]
            logits = logits_of(params, jnp.asarray(context + [0] * (seq - len(context)))[None])
            ids.append(int(jnp.argmax(logits[0, len(context) - 1])))
        return loss, ids[len(prompt):]

    evaluate(config, held_out.tolist(), score)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
