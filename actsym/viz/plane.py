"""What the toy study and its animations share: a fresh activation module per layer, and the grid of the
plane they deform (kept apart so :mod:`~actsym.viz.toy2d` and :mod:`~actsym.viz.animate` do not import each
other)."""

from __future__ import annotations

import torch

from actsym.activation import Activation


def activation_factory(act: Activation | str):
    """``(label, make)``: ``make()`` returns a fresh activation module for one hidden layer."""
    from actsym.analysis.vector import is_vector_spec, vector_activation

    if isinstance(act, str) and is_vector_spec(act):
        return act, lambda: vector_activation(act, dim=-1)
    from actsym.analysis.common import as_activation

    a = as_activation(act)
    return a.name, lambda: a.module()


def plane_grid(extent: float, lines: int, points: int) -> torch.Tensor:
    """Polylines of a square grid on [-extent, extent]²: ``[2*lines, points, 2]`` (vertical, then horizontal)."""
    ticks = torch.linspace(-extent, extent, lines)
    t = torch.linspace(-extent, extent, points)
    vertical = torch.stack([ticks[:, None].expand(lines, points), t[None, :].expand(lines, points)], -1)
    return torch.cat([vertical, vertical.flip(-1)], 0)
