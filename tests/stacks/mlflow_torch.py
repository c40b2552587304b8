"""A PyTorch script tracked with MLflow, local tracking store in the working folder."""

import argparse

import mlflow
import torch

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=100)
parser.add_argument("--store", choices=["file", "sqlite"], default="file")
args = parser.parse_args()
mlflow.set_tracking_uri("file:./mlruns" if args.store == "file" else "sqlite:///mlflow.db")
mlflow.set_experiment("tiny")
torch.manual_seed(0)
x = torch.randn(256, 8)
y = x @ torch.randn(8, 1)
model = torch.nn.Linear(8, 1)
optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
with mlflow.start_run():
    mlflow.log_params({"lr": 0.05, "max_steps": args.steps, "batch_size": 32})
    for step in range(args.steps):
        batch = torch.randint(0, 256, (32,))
        loss = torch.nn.functional.mse_loss(model(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        mlflow.log_metric("loss", loss.item(), step=step)
    mlflow.log_metric("eval_loss", torch.nn.functional.mse_loss(model(x), y).item(), step=args.steps)
    torch.save(model.state_dict(), "model.pt")
