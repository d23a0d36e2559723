"""mnist-cnn21 — ExP2 vs GELU / ELU in a 21-layer MNIST network (reference 000).

Setup       conv 1→32 k5 p2, max-pool 2, conv 32→64 k5 p2, max-pool 2, fc 3136→1024→512,
            sixteen 512→512 layers, 512→10; the activation follows every hidden layer (20 of them).
            The reference states 7.73M parameters; its code gives 7,996,810 (≈ 8.0M) — we follow
            the code.
Training    SGD (variant ``sgd``) or Adam (``adam``), batch 100, ≥ 80 epochs.
Reported    best test accuracy and its epoch; per-epoch firing statistics (fraction of
            activation outputs > 0 / < 0 / = 0 per layer).
Reference   best test accuracy: ExP2+SGD 99.43 % (ep 48), ExP2+Adam 99.07 % (ep 77),
            GELU+SGD 11.35 % (fails to train), GELU+Adam 98.44 % (ep 75), ELU+SGD 99.41 % (ep 76).
Not stated  learning rates and input normalisation: SGD lr 0.01 without momentum, Adam lr 1e-3
            and MNIST mean/std normalisation are assumed.
Cost        ≈ 1 min per epoch on 2 CPU cores: full runs belong on a GPU.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..models import ActFactory
from ..train import TensorData, images_to_float

NAME = "mnist-cnn21"
DESCRIPTION = "2 conv + 19 fc layers (21 layers), activation after every hidden layer; SGD or Adam"

SETTINGS: dict[str, Any] = {
    "dataset": "mnist",
    "optimizer": "sgd",
    "lr": 0.01,                     # assumption (not stated)
    "momentum": 0.0,
    "weight_decay": 0.0,
    "batch_size": 100,
    "epochs": 80,
    "square_layers": 16,            # number of 512→512 layers
    "eval_batch_size": 1000,
    "firing_samples": 1000,
}

VARIANTS: dict[str, dict[str, Any]] = {
    "sgd": {},
    "adam": {"optimizer": "adam", "lr": 1e-3},
}

BASELINES = ["gelu", "elu"]

REFERENCE: dict[str, Any] = {
    "metric": "best-epoch test accuracy (%)",
    "source": "reference 000 (PyTorch, one run each)",
    "sgd": {"exp2": 99.43, "gelu": 11.35, "elu": 99.41},
    "adam": {"exp2": 99.07, "gelu": 98.44},
}


def prepare(dataset, settings: dict[str, Any], device: torch.device) -> TensorData:
    return TensorData(
        x_train=images_to_float(dataset.x_train, 0.1307, 0.3081, device),
        y_train=dataset.y_train.to(device),
        x_test=images_to_float(dataset.x_test, 0.1307, 0.3081, device),
        y_test=dataset.y_test.to(device),
        num_classes=int(dataset.num_classes),
    )


def build_model(act: ActFactory, settings: dict[str, Any], num_classes: int) -> nn.Module:
    layers: list[nn.Module] = [
        nn.Conv2d(1, 32, kernel_size=5, padding=2), act(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, kernel_size=5, padding=2), act(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 1024), act(),
        nn.Linear(1024, 512), act(),
    ]
    for _ in range(settings["square_layers"]):
        layers += [nn.Linear(512, 512), act()]
    layers.append(nn.Linear(512, num_classes))
    return nn.Sequential(*layers)
