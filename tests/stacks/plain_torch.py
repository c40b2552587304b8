"""A plain PyTorch training script as people write it: printed progress, TensorBoard, torch.save.

Run from the folder it should write into; it knows nothing of auditor."""

import argparse

import torch
from torch.utils.tensorboard import SummaryWriter

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=200)
parser.add_argument("--lr", type=float, default=0.05)
parser.add_argument("--ascend", action="store_true", help="a planted defect: climb the loss instead")
args = parser.parse_args()

torch.manual_seed(0)
x = torch.randn(256, 8)
y = x @ torch.randn(8, 1) + 0.1 * torch.randn(256, 1)
model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
writer = SummaryWriter("runs/exp1")
for step in range(1, args.steps + 1):
    batch = torch.randint(0, 256, (32,))
    loss = torch.nn.functional.mse_loss(model(x[batch]), y[batch])
    optimizer.zero_grad()
    (-loss if args.ascend else loss).backward()
    optimizer.step()
    writer.add_scalar("Loss/train", loss.item(), step)
    writer.add_scalar("lr", args.lr, step)
    if step % 10 == 0:
        print(f"epoch 0 step {step} loss {loss.item():.4f}", flush=True)
writer.close()
torch.save(model.state_dict(), "model.pt")
print("saved model.pt")
