"""A PyTorch script tracked with Weights & Biases (run offline: WANDB_MODE=offline), saving with torch.save."""

import argparse

import torch
import wandb

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=80)
args = parser.parse_args()
torch.manual_seed(0)
x = torch.randn(256, 8)
y = x @ torch.randn(8, 1)
model = torch.nn.Linear(8, 1)
optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
run = wandb.init(project="tiny", config={"lr": 0.05, "max_steps": args.steps, "batch_size": 32})
for step in range(1, args.steps + 1):
    batch = torch.randint(0, 256, (32,))
    loss = torch.nn.functional.mse_loss(model(x[batch]), y[batch])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    wandb.log({"train/loss": loss.item(), "lr": 0.05}, step=step)
wandb.log({"eval/loss": torch.nn.functional.mse_loss(model(x), y).item()}, step=args.steps)
torch.save(model.state_dict(), "model.pt")
run.finish()
