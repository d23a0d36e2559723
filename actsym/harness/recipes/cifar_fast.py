"""cifar-fast — an airbench-style quick CIFAR-10 ranking recipe with a swappable activation.

Setup       conv stem 3→32, then three blocks (conv → max-pool → BN → act → conv → BN → act) of
            widths 64 / 256 / 256, global max-pool, linear classifier (scaled by 1/9 as in airbench).
Training    SGD with Nesterov momentum 0.9, batch 1024, 10 epochs, label smoothing 0.2, lr
            warm-up over the first 20 % of steps then linear decay to 0; flip + 2-pixel translation.
            Whole dataset on the device, ``channels_last``, bfloat16 autocast on CUDA.
Purpose     quick relative ranking of many activations on a GPU — not a reproduction of a paper
            number (airbench94 reaches 94 % with extra tricks — whitening, TTA, lookahead — left out
            here to keep the file readable).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..models import ActFactory
from ..train import TensorData, images_to_float, random_crop_flip

NAME = "cifar-fast"
DESCRIPTION = "airbench-style CIFAR-10 net, batch 1024, 10 epochs, channels_last, bf16 autocast on CUDA"

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)

SETTINGS: dict[str, Any] = {
    "dataset": "cifar10",
    "widths": [64, 256, 256],       # channels of the three blocks
    "optimizer": "sgd",
    "lr": 0.2,                      # peak learning rate
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": 5e-4,
    "label_smoothing": 0.2,
    "batch_size": 1024,
    "drop_last": True,
    "epochs": 10,
    "warmup": 0.2,                  # fraction of steps with a linear lr ramp
    "crop_pad": 2,                  # pixels of random translation
    "flip": True,
    "channels_last": True,
    "amp": True,                    # bfloat16 autocast (CUDA only)
    "eval_batch_size": 2000,
    "firing_samples": 500,
}

VARIANTS: dict[str, dict[str, Any]] = {"default": {}}

BASELINES = ["relu", "gelu"]

REFERENCE: dict[str, Any] = {"metric": "final test accuracy (%)", "source": "none (ranking recipe)"}


def prepare(dataset, settings: dict[str, Any], device: torch.device) -> TensorData:
    fmt = torch.channels_last if settings["channels_last"] else torch.contiguous_format
    return TensorData(
        x_train=images_to_float(dataset.x_train, CIFAR_MEAN, CIFAR_STD, device, memory_format=fmt),
        y_train=dataset.y_train.to(device),
        x_test=images_to_float(dataset.x_test, CIFAR_MEAN, CIFAR_STD, device, memory_format=fmt),
        y_test=dataset.y_test.to(device),
        num_classes=int(dataset.num_classes),
    )


def augment(x: torch.Tensor, gen: torch.Generator, settings: dict[str, Any]) -> torch.Tensor:
    return random_crop_flip(x, gen, settings["crop_pad"], settings["flip"])


def lr_multiplier(step: int, total_steps: int, settings: dict[str, Any]) -> float:
    """Linear warm-up to 1 over ``warmup`` of the steps, then linear decay to 0."""
    warm = max(int(settings["warmup"] * total_steps), 1)
    if step < warm:
        return (step + 1) / warm
    return max(total_steps - step, 0) / max(total_steps - warm, 1)


class _Scale(nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def build_model(act: ActFactory, settings: dict[str, Any], num_classes: int) -> nn.Module:
    w1, w2, w3 = settings["widths"]

    def block(c_in: int, c_out: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.MaxPool2d(2), nn.BatchNorm2d(c_out), act(),
                nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), act()]

    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), act(),
        *block(32, w1), *block(w1, w2), *block(w2, w3),
        nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(w3, num_classes, bias=False), _Scale(1 / 9),
    )
