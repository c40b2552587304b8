"""A Lightning script with CSVLogger, TensorBoardLogger and ModelCheckpoint, as people write it."""

import argparse

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger


class Regressor(L.LightningModule):
    def __init__(self, lr: float = 0.05, hidden: int = 16) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(torch.nn.Linear(8, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=120)
args = parser.parse_args()
L.seed_everything(0)
x = torch.randn(512, 8)
y = x @ torch.randn(8, 1) + 0.1 * torch.randn(512, 1)
data = torch.utils.data.TensorDataset(x, y)
train = torch.utils.data.DataLoader(data, batch_size=32, shuffle=True)
val = torch.utils.data.DataLoader(data, batch_size=128)
trainer = L.Trainer(
    max_steps=args.steps, accelerator="cpu", log_every_n_steps=5, val_check_interval=40, check_val_every_n_epoch=None,
    logger=[CSVLogger("logs"), TensorBoardLogger("tb_logs")],
    callbacks=[ModelCheckpoint(dirpath="checkpoints", save_last=True, every_n_train_steps=40)],
    enable_progress_bar=False,
)
trainer.fit(Regressor(), train, val)
