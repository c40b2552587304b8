"""The reference HuggingFace Trainer run: a GPT-2 model with the pytorch reference's sizes and schedule, built
from a config (no downloads) and trained byte-level on the corpus the pytorch runner ships, with the auditor
callback recording its logs. The default config finishes on 2 CPU cores in seconds; on CUDA it trains in bf16
where supported.

    python -m runners.transformers.reference [--config config.yaml] [--device auto|cpu|cuda]
"""

from __future__ import annotations

from typing import Any

from runners.pytorch.reference import CORPUS, ReferenceConfig, evaluate, reference_args


def gpt2_config(config: ReferenceConfig) -> dict[str, Any]:
    """GPT2Config keywords for the reference config's sizes (byte vocabulary; token 0 is bos/eos/pad)."""
    return {"vocab_size": config.vocab_size, "n_positions": config.max_seq_length, "n_embd": config.hidden_size,
            "n_layer": config.num_hidden_layers, "n_head": config.num_attention_heads,
            "n_inner": config.intermediate_size, "bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 0}


def main(argv: list[str] | None = None) -> int:
    config = reference_args(argv, __doc__ or "")

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

    model: Any = GPT2LMHeadModel(GPT2Config(**gpt2_config(config)))
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

    def score(prompt: list[int], reference: list[int]) -> tuple[float, list[int]]:
        with torch.no_grad():
            window = torch.tensor([prompt + reference], device=model.device)
            loss = model(input_ids=window, labels=window).loss.item()
            ids = torch.tensor([prompt], device=model.device)
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=config.generate_tokens,
                                 do_sample=False, pad_token_id=0)
        return loss, out[0, len(prompt):].tolist()

    evaluate(config, held_out, score)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
