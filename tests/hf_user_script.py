"""A user's own HuggingFace Trainer script, written without auditor in mind: it saves checkpoints and the final
model to --output_dir and keeps Trainer's defaults (logging_nan_inf_filter=True among them). Tests run it under
`audit run --runner transformers -- python tests/hf_user_script.py ...` to prove the evidence callback is
injected without code changes.

    python tests/hf_user_script.py --output_dir DIR [--steps 30] [--nan-from STEP]
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.data import Dataset
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

TEXT = ("the quick brown fox jumps over the lazy dog. " * 4 + "a model learns the next byte of its text. " * 4).encode()


class Windows(Dataset):
    def __len__(self) -> int:
        return len(TEXT) - 32

    def __getitem__(self, i: int) -> dict:
        ids = torch.tensor(list(TEXT[i: i + 32]))
        return {"input_ids": ids, "labels": ids}


class DivergingTrainer(Trainer):
    """Makes the loss NaN from a given step on (a stand-in for a run that diverges)."""

    nan_from = 0

    def compute_loss(self, model, inputs, *args, **kwargs):  # type: ignore[no-untyped-def]
        loss = super().compute_loss(model, inputs, *args, **kwargs)
        if self.nan_from and self.state.global_step >= self.nan_from:
            loss = loss * float("nan")
        return loss


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--nan-from", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=256, n_positions=32, n_embd=32, n_layer=2, n_head=2))
    training = TrainingArguments(output_dir=args.output_dir, max_steps=args.steps, per_device_train_batch_size=8,
                                 learning_rate=3e-3, logging_steps=5, save_steps=args.steps // 2, report_to="none",
                                 use_cpu=True, seed=0, disable_tqdm=True)
    trainer = DivergingTrainer(model=model, args=training, train_dataset=Windows())
    trainer.nan_from = args.nan_from
    trainer.train()
    trainer.save_model()
    print(f"saved to {args.output_dir}")


if __name__ == "__main__":
    main()
