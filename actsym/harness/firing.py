"""Firing statistics and learned activation parameters, per activation layer.

Firing = the fraction of an activation's *outputs* that are positive, negative and exactly zero,
measured on a fixed evaluation batch (the ExP2 study's "positive/negative firing rates").  Hooks are
attached only for that one measuring pass, so the training loop carries no hook overhead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn


@torch.no_grad()
def firing_stats(forward: Callable[[torch.Tensor], torch.Tensor], acts: Sequence[tuple[str, nn.Module]],
                 x: torch.Tensor) -> dict[str, dict[str, float]]:
    """Run ``forward(x)`` once with hooks on ``acts``; return ``{layer: {"pos", "neg", "zero"}}``."""
    counts: dict[str, torch.Tensor] = {}

    def hook_for(name: str):
        def hook(_module: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
            counts[name] = torch.stack([(out > 0).sum(), (out < 0).sum(), (out == 0).sum()]).float() / out.numel()
        return hook

    handles = [module.register_forward_hook(hook_for(name)) for name, module in acts]
    try:
        forward(x)
    finally:
        for h in handles:
            h.remove()
    return {name: dict(zip(("pos", "neg", "zero"), counts[name].tolist(), strict=True))
            for name, _ in acts if name in counts}


def act_param_values(acts: Sequence[tuple[str, nn.Module]]) -> dict[str, dict[str, float | list[float]]]:
    """Current learnable parameters of each activation: a float when scalar, else a list."""
    out: dict[str, dict[str, float | list[float]]] = {}
    for name, module in acts:
        values: dict[str, float | list[float]] = {}
        for pname, p in module.named_parameters():
            flat = p.detach().float().cpu().flatten()
            values[pname] = float(flat[0]) if flat.numel() == 1 else flat.tolist()
        if values:
            out[name] = values
    return out


def scalar(value: float | list[float]) -> float:
    """A per-channel list reduced to its mean (the per-layer summary used in tables)."""
    return float(sum(value) / len(value)) if isinstance(value, list) else float(value)
