"""A Keras 3 script (JAX backend) with CSVLogger and ModelCheckpoint, as people write it."""

import argparse

import keras
import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=8)
args = parser.parse_args()
keras.utils.set_random_seed(0)
x = np.random.default_rng(0).normal(size=(512, 8)).astype("float32")
y = x @ np.arange(1, 9, dtype="float32")[:, None] / 8
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
model.fit(x, y, epochs=args.epochs, batch_size=32, validation_split=0.2, verbose=2,
          callbacks=[keras.callbacks.CSVLogger("training.csv"), keras.callbacks.ModelCheckpoint("model.keras")])
