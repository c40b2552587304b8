"""The reference HuggingFace Trainer run: a GPT-2-shaped model built from a config (no downloads), trained
byte-level on the corpus the pytorch runner ships, with the auditor callback recording its logs. The default
config finishes on 2 CPU cores in seconds; on CUDA it trains in bf16 where supported.

    python -m runners.transformers.reference [--config config.yaml] [--device auto|cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from runners.pytorch.reference import CORPUS, override


@dataclass
class TrainerConfig:
    """Every knob of the reference Trainer run (a YAML `training:`/`model:`/`eval:` file may override any)."""

    seed: int = 0
    n_embd: int = 64
    n_layer: int = 2
    n_head: int = 4
    max_seq_length: int = 64
    batch_size: int = 16
    max_steps: int = 150
    learning_rate: float = 3e-3
    warmup_steps: int = 15
    weight_decay: float = 0.01
    logging_steps: int = 10
    save_steps: int = 50
    eval_examples: int = 16
    generate_tokens: int = 32
    device: str = "auto"

    def model_config(self) -> dict[str, Any]:
        """The GPT2Config keywords (byte vocabulary; token 0 doubles as bos/eos/pad)."""
        return {"vocab_size": 256, "n_positions": self.max_seq_length, "n_embd": self.n_embd,
                "n_layer": self.n_layer, "n_head": self.n_head, "bos_token_id": 0, "eos_token_id": 0,
                "pad_token_id": 0}


def load_config(path: Path | None, device: str | None) -> TrainerConfig:
    """Defaults, overridden by a YAML file's keys and --device."""
    return override(TrainerConfig(), path, device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--seed", type=int)
    args = parser.parse_args(argv)
    config = load_config(args.config, args.device)
    if args.seed is not None:
        config.seed = args.seed

    import torch
    from torch.utils.data import Dataset
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments, set_seed

    from auditor import runtime
    from runners.transformers.callback import AuditorCallback

    set_seed(config.seed)
    cuda = torch.cuda.is_available()
    if config.device == "cuda" and not cuda:
        print("Error: --device cuda but torch.cuda.is_available() is False (a CPU build of torch, or no GPU)")
        return 2
    use_cpu = config.device == "cpu" or not cuda
    bf16 = not use_cpu and torch.cuda.is_bf16_supported()
    data = list(CORPUS.read_bytes())
    split = int(len(data) * 0.9)
    train, held_out = data[:split], data[split:]
    seq = config.max_seq_length

    class Windows(Dataset):
        """Every 8th window of seq bytes of the training text (labels: the inputs; GPT-2 shifts them)."""

        def __len__(self) -> int:
            return (len(train) - seq) // 8

        def __getitem__(self, i: int) -> dict[str, Any]:
            ids = torch.tensor(train[i * 8: i * 8 + seq], dtype=torch.long)
            return {"input_ids": ids, "labels": ids}

    model: Any = GPT2LMHeadModel(GPT2Config(**config.model_config()))
    print(f"device: {'cpu' if use_cpu else 'cuda (' + torch.cuda.get_device_name(0) + ')'}, dtype: "
          f"{'bfloat16' if bf16 else 'float32'}, model: {model.num_parameters():,} parameters", flush=True)
    run_dir = runtime.run_dir()
    training_args = TrainingArguments(
        output_dir=str(run_dir / "training_output" / "checkpoints"), max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size, learning_rate=config.learning_rate,
        warmup_steps=config.warmup_steps, weight_decay=config.weight_decay, lr_scheduler_type="cosine",
        logging_steps=config.logging_steps, save_steps=config.save_steps, save_total_limit=2,
        logging_nan_inf_filter=False,  # a NaN loss must reach the evidence, not be averaged away
        seed=config.seed, data_seed=config.seed, use_cpu=use_cpu, bf16=bf16, report_to="none",
        disable_tqdm=True, dataloader_num_workers=0,
    )
    trainer = Trainer(model=model, args=training_args, train_dataset=Windows(), callbacks=[AuditorCallback()])
    trainer.train()
    trainer.save_model(str(runtime.final_model_dir()))

    model.eval()
    device = model.device
    half = config.generate_tokens
    span = max(1, len(held_out) - 2 * half)
    eval_losses = []
    with torch.no_grad():
        for i in range(config.eval_examples):
            offset = i * span // max(1, config.eval_examples)
            prompt, reference = held_out[offset: offset + half], held_out[offset + half: offset + 2 * half]
            window = torch.tensor([prompt + reference], device=device)
            eval_losses.append(model(input_ids=window, labels=window).loss.item())
            ids = torch.tensor([prompt], device=device)
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=half, do_sample=False,
                                 pad_token_id=0)
            text = bytes(out[0, half:].tolist()).decode("utf-8", errors="replace")
            runtime.log_prediction(id=i, prompt=bytes(prompt).decode("utf-8", errors="replace"),
                                   reference=bytes(reference).decode("utf-8", errors="replace"),
                                   prediction=text, loss=round(eval_losses[-1], 6))
    eval_loss = sum(eval_losses) / len(eval_losses)
    print(f"eval: {config.eval_examples} examples, mean loss {eval_loss:.4f}", flush=True)
    (run_dir / "eval_log.txt").write_text(f"examples: {config.eval_examples}\neval_loss: {eval_loss:.6f}\n"
                                          f"config: {json.dumps(asdict(config))}\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
