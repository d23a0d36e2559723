"""Small helpers shared by the analysis and picture modules: resolving an activation, evaluating it
(and its derivatives) numerically with its parameters at their initial values."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from actsym.activation import Activation


def as_activation(act: Activation | str) -> Activation:
    """An :class:`Activation`, a catalog name, or an expression in ``x`` (defined as ``custom``)."""
    if isinstance(act, Activation):
        return act
    from actsym.api import define, get, names

    if not isinstance(act, str):
        raise TypeError(f"expected an Activation, a catalog name or an expression, got {type(act).__name__}")
    if act in names():
        return get(act)
    return define("custom", act)


def param_values(act: Activation, overrides: Mapping[str, float] | None = None) -> dict[str, float]:
    """Parameter name -> value: the initial values, replaced by ``overrides``."""
    values = {k: float(p.init) for k, p in act.params.items()}
    unknown = set(overrides or {}) - set(values)
    if unknown:
        raise KeyError(f"{act.name} has no parameter(s) {', '.join(sorted(unknown))}")
    values.update({k: float(v) for k, v in (overrides or {}).items()})
    return values


def pointwise(act: Activation, overrides: Mapping[str, float] | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x -> f(x)`` on tensors, with the parameters bound to numbers (generated, differentiable code)."""
    values = list(param_values(act, overrides).values())
    fn = act.functional
    return lambda x: fn(x, *values)


def derivatives(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, order: int = 1) -> list[torch.Tensor]:
    """``[f(x), f'(x), …, f^(order)(x)]`` elementwise, by autograd through the generated backward
    (which is written with differentiable ops, so higher orders work). Kink conventions are autograd's."""
    x = x.detach().requires_grad_(True)
    out = [fn(x)]
    for k in range(order):
        last = out[-1]
        if not last.requires_grad:  # derivative is identically zero (e.g. a linear branch everywhere)
            out.append(torch.zeros_like(x))
            continue
        (g,) = torch.autograd.grad(last.sum(), x, create_graph=k + 1 < order, allow_unused=True)
        out.append(torch.zeros_like(x) if g is None else g)
    return [t.detach() for t in out]
