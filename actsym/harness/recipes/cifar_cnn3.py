"""cifar-cnn3 — learnable Rational / Exponential activations in a 3-conv CNN (reference 002).

Setup       three conv layers (32 channels for CIFAR-10, 64 for CIFAR-100), each followed by the
            activation; a linear classifier.  The activation's parameter is shared per layer
            (setting ``act_params="channel"`` gives one per channel).
Training    Adam, batch 100, 200 epochs, augmentation: random crop (pad 4), horizontal flip,
            brightness and contrast (done on tensors, per batch, on the device).
Inits       PReLU a=0.25, Rational a=1.0, Exponential a=0.0, ELU α=1 (fixed).
Reported    final test accuracy and the **learned parameter per layer**.
Reference   CIFAR-10 accuracy: ReLU 77.7, ELU 80.4, PReLU 79.8, Rational 80.2, Exponential 80.8;
            CIFAR-100: 55.0 / 56.1 / 56.6 / 56.9 / 56.5.  Learned a on CIFAR-10 (conv1, conv2, conv3):
            PReLU 0.056 0.027 0.030; Rational 0.118 0.103 0.206; Exponential −2.11 −2.03 −1.66.
Not stated  kernel sizes, pooling and classifier (the figure is not in the text): 5×5 convs with
            padding 2, 2×2 max-pooling after each activation and one linear layer are assumed;
            Adam lr 1e-3; brightness ±63/255 and contrast ×[0.2, 1.8] (TensorFlow tutorial values).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..models import ActFactory
from ..train import TensorData, brightness_contrast, images_to_float, random_crop_flip

NAME = "cifar-cnn3"
DESCRIPTION = "3 conv layers + activation each, Adam, batch 100, 200 epochs, crop/flip/brightness/contrast"

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)

SETTINGS: dict[str, Any] = {
    "dataset": "cifar10",
    "channels": 32,                 # conv width (64 for CIFAR-100)
    "kernel_size": 5,
    "act_params": "layer",          # "layer": one parameter per layer; "channel": one per channel
    "optimizer": "adam",
    "lr": 1e-3,
    "batch_size": 100,
    "epochs": 200,
    "crop_pad": 4,                  # pixels of random translation
    "flip": True,
    "brightness": 63 / 255,         # max additive change (in [0, 1] pixel units, before normalising)
    "contrast": [0.2, 1.8],         # contrast factor range
    "eval_batch_size": 1000,
    "firing_samples": 500,
}

VARIANTS: dict[str, dict[str, Any]] = {
    "cifar10": {},
    "cifar100": {"dataset": "cifar100", "channels": 64},
    "cifar10-channel": {"act_params": "channel"},
}

BASELINES = ["relu", "elu", "prelu", "rational", "exponential"]

REFERENCE: dict[str, Any] = {
    "metric": "final test accuracy (%)",
    "source": "reference 002 (TensorFlow, one run each)",
    "cifar10": {"relu": 77.7, "elu": 80.4, "prelu": 79.8, "rational": 80.2, "exponential": 80.8},
    "cifar100": {"relu": 55.0, "elu": 56.1, "prelu": 56.6, "rational": 56.9, "exponential": 56.5},
    "learned": {"prelu": [0.056, 0.027, 0.030], "rational": [0.118, 0.103, 0.206],
                "exponential": [-2.11, -2.03, -1.66]},
}

_STD = torch.tensor(CIFAR_STD).reshape(1, 3, 1, 1)


def prepare(dataset, settings: dict[str, Any], device: torch.device) -> TensorData:
    return TensorData(
        x_train=images_to_float(dataset.x_train, CIFAR_MEAN, CIFAR_STD, device),
        y_train=dataset.y_train.to(device),
        x_test=images_to_float(dataset.x_test, CIFAR_MEAN, CIFAR_STD, device),
        y_test=dataset.y_test.to(device),
        num_classes=int(dataset.num_classes),
    )


def augment(x: torch.Tensor, gen: torch.Generator, settings: dict[str, Any]) -> torch.Tensor:
    """Crop + flip, then brightness / contrast (brightness converted to normalised units per channel)."""
    x = random_crop_flip(x, gen, settings["crop_pad"], settings["flip"])
    if settings["brightness"] > 0:
        std = _STD.to(x.device, x.dtype)
        n = x.shape[0]
        b = (torch.rand(n, 1, 1, 1, device=x.device, generator=gen) * 2 - 1) * settings["brightness"] / std
        x = x + b
    return brightness_contrast(x, gen, 0.0, tuple(settings["contrast"]))


def build_model(act: ActFactory, settings: dict[str, Any], num_classes: int) -> nn.Module:
    c, k = settings["channels"], settings["kernel_size"]
    per_channel = settings["act_params"] == "channel"

    def block(c_in: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c, kernel_size=k, padding=k // 2), act(c if per_channel else None),
                nn.MaxPool2d(2)]

    return nn.Sequential(*block(3), *block(c), *block(c), nn.Flatten(), nn.Linear(c * 4 * 4, num_classes))
