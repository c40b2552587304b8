"""The built-in reference trainer: a small decoder-only transformer in plain PyTorch, trained byte-level on the
corpus shipped beside this file (no downloads). The default config finishes on 2 CPU cores in seconds with a
clearly falling loss; on CUDA it uses bf16 autocast where supported. Everything is seeded, so two CPU runs
give the same loss at every step. Evidence goes through auditor.runtime into the run folder.

    python -m runners.pytorch.reference [--config config.yaml] [--device auto|cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).with_name("corpus.txt")
MODEL_TYPE = "auditor_reference_decoder"


@dataclass
class ReferenceConfig:
    """Every knob of the reference run (a YAML `training:`/`model:`/`eval:` file may override any of them)."""

    seed: int = 0
    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 256
    max_seq_length: int = 64
    batch_size: int = 16
    max_steps: int = 300
    learning_rate: float = 3e-3
    warmup_steps: int = 20
    weight_decay: float = 0.01
    logging_steps: int = 10
    save_steps: int = 100
    eval_examples: int = 16
    generate_tokens: int = 32
    device: str = "auto"

    @property
    def vocab_size(self) -> int:
        """Bytes."""
        return 256

    def model_config(self) -> dict[str, Any]:
        """config.json for the checkpoint (HuggingFace key names)."""
        return {"model_type": MODEL_TYPE, "architectures": ["ReferenceDecoder"], "vocab_size": self.vocab_size,
                "hidden_size": self.hidden_size, "num_hidden_layers": self.num_hidden_layers,
                "num_attention_heads": self.num_attention_heads, "intermediate_size": self.intermediate_size,
                "max_position_embeddings": self.max_seq_length, "tie_word_embeddings": True}


def load_config(path: Path | None, device: str | None) -> ReferenceConfig:
    """Defaults, overridden by a YAML file's keys (flat or under training/model/eval) and --device."""
    return override(ReferenceConfig(), path, device)


def override(config: Any, path: Path | None, device: str | None) -> Any:
    """A reference config dataclass with a YAML file's keys (flat or under training/model/eval) and --device
    applied; each value takes the type of the default it replaces."""
    if path is not None:
        import yaml

        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        flat: dict[str, Any] = {}
        for section in ("model", "training", "eval"):
            if isinstance(data.get(section), dict):
                flat.update(data[section])
        flat.update({k: v for k, v in data.items() if not isinstance(v, dict)})
        flat.setdefault("eval_examples", flat.get("num_examples"))
        known = {f.name for f in fields(config)}
        for key, value in flat.items():
            if key in known and value is not None:
                setattr(config, key, type(getattr(config, key))(value))
    if device:
        config.device = device
    return config


def build_model(config: ReferenceConfig) -> Any:
    """The decoder: token + position embeddings, pre-norm causal attention blocks, tied output head."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            d = config.hidden_size
            self.attn_norm = nn.LayerNorm(d)
            self.qkv = nn.Linear(d, 3 * d)
            self.out = nn.Linear(d, d)
            self.mlp_norm = nn.LayerNorm(d)
            self.up = nn.Linear(d, config.intermediate_size)
            self.down = nn.Linear(config.intermediate_size, d)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b, t, d = x.shape
            heads = config.num_attention_heads
            q, k, v = self.qkv(self.attn_norm(x)).view(b, t, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
            attn = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.out(attn.transpose(1, 2).reshape(b, t, d))
            return x + self.down(F.gelu(self.up(self.mlp_norm(x))))

    class ReferenceDecoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
            self.embed_positions = nn.Embedding(config.max_seq_length, config.hidden_size)
            self.layers = nn.ModuleList(Block() for _ in range(config.num_hidden_layers))
            self.norm = nn.LayerNorm(config.hidden_size)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            positions = torch.arange(ids.shape[1], device=ids.device)
            x = self.embed_tokens(ids) + self.embed_positions(positions)
            for layer in self.layers:
                x = layer(x)
            return self.norm(x) @ self.embed_tokens.weight.T

    return ReferenceDecoder()


def save_checkpoint(model: Any, config: ReferenceConfig, directory: Path) -> None:
    """model.safetensors + config.json (the tied head is stored once, as embed_tokens.weight)."""
    from safetensors.torch import save_file

    tensors = {name: t.detach().to("cpu").contiguous() for name, t in model.state_dict().items()}
    save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
    (directory / "config.json").write_text(json.dumps(config.model_config(), indent=2) + "\n", encoding="utf-8")


def evaluate(config: ReferenceConfig, held_out: list[int], score: Callable[[list[int], list[int]],
                                                                     tuple[float, list[int]]]) -> None:
    """The evaluation every reference trainer shares: `eval_examples` windows of held-out text, each a prompt
    and its reference continuation; `score(prompt, reference)` returns the model's loss on the whole window and
    the ids it generates greedily after the prompt. Writes predictions.jsonl and eval_log.txt (run folder)."""
    from auditor import runtime

    half = config.generate_tokens
    span = max(1, len(held_out) - 2 * half)
    losses = []
    for i in range(config.eval_examples):
        offset = i * span // max(1, config.eval_examples)
        prompt, reference = held_out[offset: offset + half], held_out[offset + half: offset + 2 * half]
        loss, generated = score(prompt, reference)
        losses.append(loss)
        runtime.log_prediction(id=i, prompt=bytes(prompt).decode("utf-8", errors="replace"),
                               reference=bytes(reference).decode("utf-8", errors="replace"),
                               prediction=bytes(generated).decode("utf-8", errors="replace"), loss=round(loss, 6))
    mean = sum(losses) / len(losses)
    print(f"eval: {config.eval_examples} examples, mean loss {mean:.4f}", flush=True)
    (runtime.run_dir() / "eval_log.txt").write_text(
        f"examples: {config.eval_examples}\neval_loss: {mean:.6f}\nconfig: {json.dumps(asdict(config))}\n",
        encoding="utf-8")


def reference_args(argv: list[str] | None, doc: str, devices: bool = True) -> ReferenceConfig:
    """The command line every reference trainer takes: --config F, --seed N and (torch ones) --device."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--config", type=Path)
    if devices:
        parser.add_argument("--device", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--seed", type=int)
    args = parser.parse_args(argv)
    config = load_config(args.config, getattr(args, "device", None))
    if args.seed is not None:
        config.seed = args.seed
    return config


def main(argv: list[str] | None = None) -> int:
    config = reference_args(argv, __doc__ or "")

    import os

    import torch
    from torch.nn import functional as F

    from auditor import runtime

    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    cuda = torch.cuda.is_available()
    if config.device == "cuda" and not cuda:
        print("Error: --device cuda but torch.cuda.is_available() is False (a CPU build of torch, or no GPU)")
        return 2
    device = torch.device("cuda" if config.device == "cuda" or (config.device == "auto" and cuda) else "cpu")
    if world > 1:  # torchrun: data parallel, one process per device (gloo on CPU, NCCL on GPUs)
        import torch.distributed as dist

        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        print(f"rank {rank} of {world}: process group {dist.get_backend()} on {device}", flush=True)
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    print(f"device: {device.type}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
          + f", dtype: {'bfloat16 autocast' if bf16 else 'float32'}, torch {torch.__version__}", flush=True)

    data = torch.tensor(list(CORPUS.read_bytes()), dtype=torch.long)
    split = int(len(data) * 0.9)
    train, held_out = data[:split], data[split:]
    core = build_model(config).to(device)
    model = core
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(core, device_ids=[device.index] if device.type == "cuda"
                                                          else None)
    params = sum(p.numel() for p in core.parameters())
    print(f"model: {params:,} parameters, config {json.dumps(config.model_config())}", flush=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)

    def lr_at(step: int) -> float:
        if step < config.warmup_steps:
            return config.learning_rate * (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps)
        return config.learning_rate * 0.5 * (1 + math.cos(math.pi * progress))

    generator = torch.Generator().manual_seed(config.seed + 1000 * rank)  # each rank its own batches
    seq = config.max_seq_length
    losses: list[float] = []
    start = time.perf_counter()
    for step in range(1, config.max_steps + 1):
        starts = torch.randint(0, len(train) - seq - 1, (config.batch_size,), generator=generator)
        batch = torch.stack([train[s: s + seq + 1] for s in starts.tolist()]).to(device)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step - 1)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, config.vocab_size), batch[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        if step % config.logging_steps == 0 or step == config.max_steps:
            if world > 1:  # the logged loss is the mean over ranks; every rank logs at the same steps
                mean = loss.detach().clone()
                dist.all_reduce(mean)
                losses[-1] = mean.item() / world
            epoch = step * config.batch_size * world * seq / len(train)
            runtime.log_metrics(step, loss=round(losses[-1], 6), grad_norm=round(float(grad_norm), 6),
                                learning_rate=lr_at(step - 1), epoch=round(epoch, 4))
            print(f"step {step}/{config.max_steps} loss {losses[-1]:.4f} grad_norm {float(grad_norm):.3f} "
                  f"lr {lr_at(step - 1):.2e}", flush=True)
        if step % config.save_steps == 0 and step < config.max_steps and rank == 0:
            save_checkpoint(core, config, runtime.checkpoint_dir(step))
    runtime_s = time.perf_counter() - start
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    tokens = config.max_steps * config.batch_size * world * seq
    runtime.log_final(step=config.max_steps, epoch=round(tokens / len(train), 4), train_runtime=round(runtime_s, 3),
                      train_samples_per_second=round(config.max_steps * config.batch_size * world / runtime_s, 3),
                      train_steps_per_second=round(config.max_steps / runtime_s, 3),
                      train_tokens_per_second=round(tokens / runtime_s, 1), total_flos=float(6 * params * tokens),
                      train_loss=round(sum(losses) / len(losses), 6))
    print(f"trained {config.max_steps} steps in {runtime_s:.1f}s; final loss {losses[-1]:.4f}", flush=True)
    if rank > 0:
        return 0  # rank 0 saves the model and evaluates
    save_checkpoint(core, config, runtime.final_model_dir())
    core.eval()

    def score(prompt: list[int], reference: list[int]) -> tuple[float, list[int]]:
        with torch.no_grad():
            window = torch.tensor([prompt + reference], device=device)
            loss = F.cross_entropy(core(window[:, :-1]).float()[0], window[0, 1:]).item()
            ids = torch.tensor([prompt], device=device)
            for _ in range(config.generate_tokens):
                ids = torch.cat([ids, core(ids[:, -seq:])[:, -1].argmax(-1, keepdim=True)], dim=1)
        return loss, ids[0, len(prompt):].tolist()

    evaluate(config, held_out.tolist(), score)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
