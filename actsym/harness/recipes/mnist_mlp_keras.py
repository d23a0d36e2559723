"""mnist-mlp-keras — sigmoid vs ReLU in a tiny Keras-style MLP (reference 001).

Setup       784-16-10 (variants: 2 and 3 hidden layers of 16), softmax cross-entropy,
            Glorot-uniform weights and zero biases (the Keras ``Dense`` defaults).
Training    Adam (Keras defaults: lr 1e-3, eps 1e-7); inputs scaled to [0, 1].
Reference   final test accuracy, 1 hidden layer: sigmoid 0.8976, ReLU 0.9282;
            2 layers: sigmoid 0.8572, ReLU 0.9356; 3 layers: sigmoid 0.7539, ReLU 0.9383.
Not stated  epochs and batch size (the article reports ~2.4 s of Keras training); 5 epochs of
            batch 128 are assumed here, so compare rankings rather than the exact numbers.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..models import ActFactory, mlp
from .mnist_mlp import prepare  # noqa: F401 - same data: flattened pixels scaled to [0, 1]

NAME = "mnist-mlp-keras"
DESCRIPTION = "Keras-style 784-16-10 MLP with Adam (sigmoid vs ReLU), 1-3 hidden layers"

SETTINGS: dict[str, Any] = {
    "dataset": "mnist",
    "hidden": [16],                 # units per hidden layer
    "optimizer": "adam",
    "lr": 1e-3,
    "adam_eps": 1e-7,               # Keras default epsilon
    "batch_size": 128,              # assumption (not stated)
    "epochs": 5,                    # assumption (not stated)
    "eval_batch_size": 10000,
    "firing_samples": 1000,
}

VARIANTS: dict[str, dict[str, Any]] = {
    "h1": {},
    "h2": {"hidden": [16, 16]},
    "h3": {"hidden": [16, 16, 16]},
}

BASELINES = ["sigmoid", "relu"]

REFERENCE: dict[str, Any] = {
    "metric": "final-epoch test accuracy (%)",
    "source": "reference 001 (Keras, one run)",
    "h1": {"sigmoid": 89.76, "relu": 92.82},
    "h2": {"sigmoid": 85.72, "relu": 93.56},
    "h3": {"sigmoid": 75.39, "relu": 93.83},
}


def build_model(act: ActFactory, settings: dict[str, Any], num_classes: int) -> nn.Module:
    return mlp([784, *settings["hidden"], num_classes], act, init="keras")
