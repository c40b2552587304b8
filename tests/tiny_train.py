"""A real, tiny HuggingFace Trainer run (GPT-2 built from a config, byte-level data, CPU, no downloads)
that writes a seed-style evidence folder like the users' submission_runs/m44_v1. Run as a script:

    python tests/tiny_train.py OUT_DIR [--shard-size 40KB] [--steps 40]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

CORPUS = (
    "the quick brown fox jumps over the lazy dog. " * 3
    + "a model learns the patterns of its training text by predicting the next byte. " * 3
)
PROMPTS = ["the quick", "a model", "the lazy", "brown fox", "predicting", "training", "the next", "jumps"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--shard-size", default=None)
    args = parser.parse_args()

    import torch
    import transformers
    from torch.utils.data import Dataset
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainerCallback, TrainingArguments

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    metrics_dir = out / "training_output"
    metrics_dir.mkdir(exist_ok=True)
    seq = 32
    config = GPT2Config(vocab_size=256, n_positions=seq, n_embd=32, n_layer=2, n_head=2, bos_token_id=0,
                        eos_token_id=0, pad_token_id=0)
    (out / "tiny_config.yaml").write_text(
        "model:\n  name: tiny-gpt2-bytes\n  n_embd: 32\n  n_layer: 2\n  n_head: 2\n  vocab_size: 256\n"
        f"training:\n  max_steps: {args.steps}\n  device: cpu\n  per_device_train_batch_size: 8\n"
        f"  gradient_accumulation_steps: 1\n  max_seq_length: {seq}\n  optimizer: adamw\n"
        f"eval:\n  num_examples: {len(PROMPTS)}\n",
        encoding="utf-8",
    )
    data = torch.tensor(list(CORPUS.encode()), dtype=torch.long)

    class Windows(Dataset):
        def __len__(self) -> int:
            return len(data) - seq

        def __getitem__(self, i: int) -> dict:
            window = data[i : i + seq]
            return {"input_ids": window, "labels": window}

    class MetricsFile(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
            with (metrics_dir / "metrics.jsonl").open("a", encoding="utf-8") as f:
                f.write(json.dumps({"step": state.global_step, **(logs or {})}) + "\n")

    torch.manual_seed(0)
    model = GPT2LMHeadModel(config)
    training = TrainingArguments(
        output_dir=str(metrics_dir / "checkpoints"), max_steps=args.steps, per_device_train_batch_size=8,
        learning_rate=3e-3, logging_steps=2, save_steps=args.steps // 2, save_strategy="steps", report_to=[],
        use_cpu=True, seed=0, disable_tqdm=False, logging_nan_inf_filter=False, dataloader_num_workers=0,
    )
    trainer = Trainer(model=model, args=training, train_dataset=Windows(), callbacks=[MetricsFile()])
    print("Device: cpu", flush=True)
    result = trainer.train()
    print(f"Training completed: {result.global_step} steps", flush=True)
    final = metrics_dir / "final_model"
    if args.shard_size:
        model.save_pretrained(final, max_shard_size=args.shard_size)
    else:
        trainer.save_model(str(final))
    print(f"Saved model to: {final}", flush=True)

    model.eval()
    with (out / "predictions.jsonl").open("w", encoding="utf-8") as f:
        for i, prompt in enumerate(PROMPTS):
            ids = torch.tensor([list(prompt.encode())])
            torch.manual_seed(i)
            with torch.no_grad():
                gen = model.generate(ids, max_new_tokens=12, do_sample=True, top_k=50, pad_token_id=0)
            text = bytes(gen[0, ids.shape[1]:].tolist()).decode("latin-1")
            f.write(json.dumps({"id": i, "prompt": prompt, "prediction": text}) + "\n")
    (out / "env_snapshot.json").write_text(json.dumps({
        "python": platform.python_version(), "platform": platform.platform(), "torch": torch.__version__,
        "transformers": transformers.__version__, "cuda_available": torch.cuda.is_available(),
    }, indent=2, sort_keys=True), encoding="utf-8")
    write_summary(out, metrics_dir / "metrics.jsonl")


def write_summary(out: Path, metrics: Path) -> None:
    """A milestone summary in the seeds' shape, with figures copied from the real metrics."""
    records = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    losses = [r for r in records if "loss" in r]
    final = next(r for r in records if "train_runtime" in r)
    rows = "\n".join(f"| {r['step']} | {r['loss']:.2f} |" for r in losses[:: max(1, len(losses) // 5)])
    (out / "tiny_summary.md").write_text(
        "# Tiny Milestone Summary\n\n**Status:** ✅ Complete\n\n## Performance\n\n| Metric | Value |\n"
        f"|--------|-------|\n| Total Steps | {final['step']} |\n| Runtime | {final['train_runtime']:.1f} seconds |\n"
        f"| Throughput | {final['train_samples_per_second']:.2f} samples/sec |\n"
        f"| Final Loss | {losses[-1]['loss']:.2f} |\n\n## Loss Curve\n\n| Step | Loss |\n|------|------|\n{rows}\n\n"
        "## Quality Gates\n\n| Gate | Status | Evidence |\n|------|--------|----------|\n"
        f"| Training Completes | ✅ PASS | {final['step']}/{final['step']} steps |\n"
        f"| Loss Decreases | ✅ PASS | {losses[0]['loss']:.2f} → {losses[-1]['loss']:.2f} |\n"
        "| Checkpoint Saved | ✅ PASS | final_model/ exists |\n"
        f"| Evaluation Runs | ✅ PASS | {len(PROMPTS)} predictions generated |\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    sys.exit(main())
