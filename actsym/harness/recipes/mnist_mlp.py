"""mnist-mlp — Swish / Mish vs ReLU in a small MLP (reference 003).

Setup       784-100-50-10 MLP, activation after both hidden layers, softmax cross-entropy.
Training    plain SGD, lr 0.1, batch 100, 50 epochs; inputs min-max scaled to [0, 1].
Variants    lr 0.5; hidden 200-100 (each with lr 0.1 and 0.5).
Reported    best test accuracy over the epochs and the first epoch reaching 95 / 97 / 98 %.
Reference   best test accuracy ReLU 97.88, Swish(β=1) 98.05, Mish 97.99 (%); Swish β=0.5 97.98,
            β=2 98.00; lr 0.5: ReLU 98.12, Swish 98.13, Mish 98.26.
Not stated  the weight initialisation (PyTorch's default ``nn.Linear`` init is used).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..models import ActFactory, mlp
from ..train import TensorData, images_to_float

NAME = "mnist-mlp"
DESCRIPTION = "784-100-50-10 MLP, SGD lr 0.1, batch 100, 50 epochs (Swish/Mish vs ReLU)"

SETTINGS: dict[str, Any] = {
    "dataset": "mnist",
    "hidden": [100, 50],            # units per hidden layer
    "optimizer": "sgd",
    "lr": 0.1,                      # learning rate
    "momentum": 0.0,
    "weight_decay": 0.0,
    "batch_size": 100,              # examples per step
    "epochs": 50,
    "eval_batch_size": 10000,       # test examples per forward pass
    "firing_samples": 1000,         # test examples for firing statistics
    "acc_thresholds": [0.95, 0.97, 0.98],  # report the first epoch reaching each
}

VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "lr0.5": {"lr": 0.5},
    "wide": {"hidden": [200, 100]},
    "wide-lr0.5": {"hidden": [200, 100], "lr": 0.5},
}

BASELINES = ["relu", "silu", "mish"]  # silu = Swish with fixed beta=1 (the reference's Swish)

REFERENCE: dict[str, Any] = {
    "metric": "best-epoch test accuracy (%)",
    "source": "reference 003 (NumPy MLP, one run, np.random.seed(10))",
    "default": {"relu": 97.88, "silu": 98.05, "mish": 97.99},
    "lr0.5": {"relu": 98.12, "silu": 98.13, "mish": 98.26},
    "wide": {"relu": 98.08, "silu": 98.15, "mish": 98.21},
    "wide-lr0.5": {"relu": 98.31, "silu": 98.37, "mish": 98.35},
    "note": "Swish with fixed beta 0.5 / 2 reached 97.98 / 98.00 (default variant)",
}


def prepare(dataset, settings: dict[str, Any], device: torch.device) -> TensorData:
    """Flattened float inputs in [0, 1] (the reference's min-max scaling), labels as int64."""
    return TensorData(
        x_train=images_to_float(dataset.x_train, None, None, device, flatten=True),
        y_train=dataset.y_train.to(device),
        x_test=images_to_float(dataset.x_test, None, None, device, flatten=True),
        y_test=dataset.y_test.to(device),
        num_classes=int(dataset.num_classes),
    )


def build_model(act: ActFactory, settings: dict[str, Any], num_classes: int) -> nn.Module:
    return mlp([784, *settings["hidden"], num_classes], act)
