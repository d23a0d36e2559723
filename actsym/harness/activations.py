"""The one place where the harness turns an activation *spec* into modules.

``resolve("exp2")`` asks the symbolic core (``actsym.get``); a spec that is not a plain name
(``"x*tanh(log(1+exp(x)))"``) goes through ``actsym.define``.  While the core is not importable,
a small table of ``torch.nn`` activations stands in, so the harness can be built and tested on its
own.  Everything else in the harness only sees an :class:`ActivationHandle`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


@dataclass(frozen=True)
class ActivationHandle:
    """What the harness needs to know about one activation.

    ``make(num_channels)`` returns a fresh module; with ``num_channels=C`` learnable parameters are
    per channel along dim 1, with ``None`` they are shared (one scalar each).
    """

    name: str
    expr_str: str
    hash: str
    params: dict[str, float]
    learnable: tuple[str, ...]
    factory: Callable[[int | None], nn.Module] = field(repr=False, compare=False)
    latex: str | None = None
    source: str = "actsym"
    activation: object = field(default=None, repr=False, compare=False)  # the actsym Activation, if any

    def make(self, num_channels: int | None = None) -> nn.Module:
        return self.factory(num_channels)


# ----------------------------------------------------------------------------------------------
# torch fallbacks (used only when the symbolic core is unavailable)

class _Swish(nn.Module):
    """x * sigmoid(beta * x) with a fixed beta (fallback for the catalog's ``swish``)."""

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        self.beta = float(beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.beta * x)


def _elu(p: dict[str, float], c: int | None) -> nn.Module:
    return nn.ELU(alpha=p.get("alpha", 1.0))


def _prelu(p: dict[str, float], c: int | None) -> nn.Module:
    return nn.PReLU(num_parameters=c or 1, init=p.get("a", 0.25))


# name -> (expression text, LaTeX, default params, learnable names, builder(params, channels))
_FALLBACKS: dict[str, tuple[str, str, dict[str, float], tuple[str, ...], Callable]] = {
    "relu": ("Max(0, x)", r"\max(0, x)", {}, (), lambda p, c: nn.ReLU()),
    "gelu": ("x*(1 + erf(x/sqrt(2)))/2", r"\frac{x}{2}\left(1+\operatorname{erf}(x/\sqrt{2})\right)", {}, (),
             lambda p, c: nn.GELU()),
    "elu": ("Piecewise((x, x > 0), (alpha*(exp(x) - 1), True))",
            r"\begin{cases} x & x>0 \\ \alpha(e^x-1) & x\le 0\end{cases}", {"alpha": 1.0}, (), _elu),
    "silu": ("x/(1 + exp(-x))", r"\frac{x}{1+e^{-x}}", {}, (), lambda p, c: nn.SiLU()),
    "swish": ("x/(1 + exp(-beta*x))", r"\frac{x}{1+e^{-\beta x}}", {"beta": 1.0}, (),
              lambda p, c: _Swish(p.get("beta", 1.0))),
    "sigmoid": ("1/(1 + exp(-x))", r"\frac{1}{1+e^{-x}}", {}, (), lambda p, c: nn.Sigmoid()),
    "tanh": ("tanh(x)", r"\tanh x", {}, (), lambda p, c: nn.Tanh()),
    "mish": ("x*tanh(log(1 + exp(x)))", r"x\tanh(\ln(1+e^x))", {}, (), lambda p, c: nn.Mish()),
    "softplus": ("log(1 + exp(x))", r"\ln(1+e^x)", {}, (), lambda p, c: nn.Softplus()),
    "prelu": ("Piecewise((x, x > 0), (a*x, True))",
              r"\begin{cases} x & x>0 \\ a x & x\le 0\end{cases}", {"a": 0.25}, ("a",), _prelu),
}


def _short_hash(*parts: object) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fallback_names() -> list[str]:
    """Names the torch fallback table knows."""
    return sorted(_FALLBACKS)


def _unknown_name(core, spec: str) -> str:
    """'unknown activation ...; did you mean ...?' (never a silent substitute such as torch's nn.Mish)."""
    import difflib

    known = list(core.names()) + (list(core.corpus_names()) if hasattr(core, "corpus_names") else [])
    lower = {k.lower(): k for k in known}
    guess = [lower[spec.lower()]] if spec.lower() in lower else difflib.get_close_matches(spec, known, n=3)
    hint = f"; did you mean {', '.join(repr(g) for g in guess)}?" if guess else f"; built-in: {', '.join(core.names())}"
    return f"unknown activation {spec!r}{hint}"


def _resolve_fallback(spec: str, params: dict[str, float] | None) -> ActivationHandle:
    key = spec.lower()
    if key not in _FALLBACKS:
        raise KeyError(
            f"unknown activation {spec!r}: the symbolic core (actsym.get) is unavailable and the torch "
            f"fallback only knows {', '.join(fallback_names())}"
        )
    expr, latex, defaults, learnable, build = _FALLBACKS[key]
    unknown = set(params or {}) - set(defaults)
    if unknown:
        raise KeyError(f"activation {spec!r} has no parameter(s) {sorted(unknown)}")
    merged = {**defaults, **(params or {})}
    name = key if not params else f"{key}({', '.join(f'{k}={v:g}' for k, v in sorted(params.items()))})"
    return ActivationHandle(
        name=name, expr_str=expr, hash=_short_hash("torch-fallback", key, expr, merged), params=merged,
        learnable=learnable, factory=lambda c: build(merged, c), latex=latex, source="torch-fallback",
    )


# ----------------------------------------------------------------------------------------------
# the symbolic core

def _core():
    """Return the module of the symbolic API (``actsym.api``: get, define, names, corpus_names) if it is
    usable, else ``None``. (Not the ``actsym`` package itself: used as a value, it stands for every public
    name, ``actsym.evaluate`` -- this harness -- included.)"""
    try:
        import actsym.api as core
    except ImportError:
        return None
    if not (hasattr(core, "get") and hasattr(core, "define")):
        return None
    return core


def _param_value(p: object) -> float:
    return float(getattr(p, "init", p))  # Param(init=...) or a plain number


def _from_activation(act, spec_params: dict[str, float] | None, display: str | None = None) -> ActivationHandle:
    params = {k: _param_value(v) for k, v in (act.params or {}).items()}
    learnable = tuple(k for k, v in (act.params or {}).items() if getattr(v, "learnable", False))
    overrides = dict(spec_params or {})
    unknown = set(overrides) - set(params)
    if unknown:
        raise KeyError(f"activation {act.name!r} has no parameter(s) {sorted(unknown)}")
    params.update(overrides)
    learn_over = {k: v for k, v in overrides.items() if k in learnable}

    def factory(num_channels: int | None) -> nn.Module:
        module = act.module(num_parameters=num_channels or 1)
        with torch.no_grad():  # a new *init* for a learnable parameter
            for name, value in learn_over.items():  # by dictionary: a parameter may be called e.g. "float"
                stored = module._parameters.get(name)
                (stored if stored is not None else module._buffers[name]).fill_(value)
        return module

    if display is None and overrides:  # e.g. a learnable parameter started elsewhere: swish(beta=2)
        display = f"{act.name}({', '.join(f'{k}={v:g}' for k, v in sorted(overrides.items()))})"
    return ActivationHandle(
        name=display or str(act.name), expr_str=str(act.expr), hash=str(act.source_hash) if not overrides else
        _short_hash(str(act.source_hash), overrides), params=params, learnable=learnable, factory=factory,
        latex=getattr(act, "latex", None), source="actsym", activation=act,
    )


def resolve(spec, params: dict[str, float] | None = None) -> ActivationHandle:
    """Turn a catalog name, an expression in ``x`` or an ``Activation`` into an :class:`ActivationHandle`.

    ``params`` overrides parameter values: a fixed parameter is re-defined with the new value
    (through ``actsym.define``), a learnable one gets the value as its initial value.
    """
    if hasattr(spec, "spec") and hasattr(spec, "module"):  # an Activation object (e.g. from codegen --eval)
        return _from_activation(spec, params)
    if isinstance(spec, str) and (spec == "softmax" or spec.startswith("normalized:")):
        return _vector_handle(spec, params)
    core = _core()
    if core is None:
        return _resolve_fallback(spec, params)
    if _NAME_RE.match(spec):
        try:
            act = core.get(spec)
        except (KeyError, LookupError, ValueError):
            raise KeyError(_unknown_name(core, spec)) from None
        fixed = {k: v for k, v in (params or {}).items()
                 if k in (act.params or {}) and not getattr(act.params[k], "learnable", False)}
        display = None
        if fixed:  # a fixed parameter changes the function: define a new one
            display = f"{act.name}({', '.join(f'{k}={v:g}' for k, v in sorted(fixed.items()))})"
            frozen = tuple(k for k, v in act.params.items() if not getattr(v, "learnable", False))
            act = core.define(f"{act.name}_{_short_hash(fixed)[:8]}", act.expr,
                              params={**{k: _param_value(v) for k, v in act.params.items()}, **fixed},
                              fixed=frozen)
            params = {k: v for k, v in (params or {}).items() if k not in fixed}
        return _from_activation(act, params, display)
    name = "expr_" + _short_hash(spec, params)[:8]
    act = core.define(name, spec, params=params)
    return _from_activation(act, None, display=spec)


def _vector_handle(spec: str, params: dict[str, float] | None) -> ActivationHandle:
    """A vector activation (softmax over the feature/channel dim 1) as a harness handle."""
    from actsym.analysis.vector import channel_factory

    if params:
        raise KeyError(f"vector activation {spec!r} takes no parameters")
    make = channel_factory(spec)
    return ActivationHandle(name=spec, expr_str=spec, hash=_short_hash("vector", spec), params={}, learnable=(),
                            factory=lambda c: make(c), latex=None, source="actsym-vector")
