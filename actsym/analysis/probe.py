"""Measure signal propagation in an actual network at initialization: per weight layer the second moment
of its input and output and the relative size of its weight gradient, from one forward/backward pass.

Compares with the mean-field predictions of :mod:`actsym.analysis.signal`: with the variance-preserving
gain the second moments stay near 1 through depth and gradient norms stay level; with too small a gain
both shrink geometrically (by χ per layer for gradients).
"""

from __future__ import annotations

import torch
from torch import nn

WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def layer_statistics(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None) -> list[dict]:
    """For every Linear/Conv layer in forward order: ``in_q`` = E[input²], ``out_q`` = E[output²] and
    ``grad_ratio`` = ‖∂L/∂W‖ / ‖W‖, with L the cross-entropy against ``y`` (random labels if None)."""
    records: list[dict] = []
    hooks = []

    def hook(module, inputs, output):
        records.append({"module": module, "in_q": float(inputs[0].detach().pow(2).mean()),
                        "out_q": float(output.detach().pow(2).mean())})

    for m in model.modules():
        if isinstance(m, WEIGHT_LAYERS):
            hooks.append(m.register_forward_hook(hook))
    try:
        model.zero_grad(set_to_none=True)
        out = model(x)
        if y is None:
            y = torch.randint(0, out.shape[-1], (out.shape[0],), generator=torch.Generator().manual_seed(0))
        nn.functional.cross_entropy(out, y).backward()
    finally:
        for h in hooks:
            h.remove()
    names = {id(m): n for n, m in model.named_modules()}
    for r in records:
        m = r.pop("module")
        r["layer"] = names[id(m)]
        r["grad_ratio"] = float(m.weight.grad.norm() / m.weight.detach().norm())
    return records
