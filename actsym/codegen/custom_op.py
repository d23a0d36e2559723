"""The fused kernels of an activation as PyTorch custom ops (``torch.library.custom_op``).

Two ops per activation (named with the spec hash, so redefining a name never clashes)::

    torch.ops.actsym.<name>_<hash>_fwd(x, *params) -> y
    torch.ops.actsym.<name>_<hash>_bwd(grad, x, *params, needs) -> [grad_x, *param grads]

with fake (meta) kernels and autograd registered, so ``torch.compile(fullgraph=True)`` traces a module using
them without a graph break and ``torch.export`` records them as single nodes. Parameters are tensors of one
element (per-layer) or one per channel (dim 1 of the input).

One implementation serves every device; it picks, per call:

* CUDA tensors and Triton importable: the generated Triton kernels (``generated_triton/<name>.py``);
* CPU tensors, ``TRITON_INTERPRET=1`` set before Triton was imported, Triton importable: the same kernels
  in Triton's CPU interpreter (how CI tests them);
* otherwise (or when the activation has no Triton translation): the generated eager math (``<name>_value``
  / ``<name>_grad_all``), float32 for half inputs.

Backward uses the fused backward op when autograd is not recording (the usual case, also under
``torch.compile``) and the differentiable eager math when it is (``create_graph=True``), so double backward
(gradgradcheck, gradient penalties) works on every device; it is not fused.

Outputs are contiguous (the kernels work on a contiguous copy; the fake kernels say so too).
"""

from __future__ import annotations

import functools
import importlib
import os
import threading
import types
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from actsym.loader import load_source

if TYPE_CHECKING:  # annotations only: the runtime layer (activation) is above codegen
    from actsym.activation import Activation

NAMESPACE = "actsym"
_LOCK = threading.Lock()


# ------------------------------------------------------------------------------------------------------
# Lazy probes (never at import of actsym)
# ------------------------------------------------------------------------------------------------------


@functools.cache
def triton_available() -> bool:
    """True if ``import triton`` works (probed once, on first use)."""
    if importlib.util.find_spec("triton") is None:
        return False
    try:
        importlib.import_module("triton.language")
    except Exception:  # a broken install (missing libs) counts as absent  # noqa: BLE001
        return False
    return True


def interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def uses_triton(x: torch.Tensor) -> bool:
    """Whether the op runs the Triton kernels for tensors on x's device."""
    if x.device.type == "cuda":
        return triton_available()
    return x.device.type == "cpu" and interpreting() and triton_available()


# ------------------------------------------------------------------------------------------------------
# The generated Triton module of an activation
# ------------------------------------------------------------------------------------------------------

_TRITON_MODULES: dict[str, types.ModuleType] = {}


def triton_source(act: Activation) -> str:
    """Source of the activation's Triton module (what ``actsym codegen`` writes)."""
    from actsym.codegen.triton_backend import render

    return render(act.derivation)


_UNSUPPORTED: dict[str, str | None] = {}


def triton_unsupported(act: Activation) -> str | None:
    """Why the activation has no Triton kernels (an unsupported node, e.g. ``atan``), or None."""
    from actsym.codegen.triton_printer import UnsupportedNode

    key = triton_hash(act)
    if key not in _UNSUPPORTED:
        try:
            triton_source(act)
            _UNSUPPORTED[key] = None
        except UnsupportedNode as e:
            _UNSUPPORTED[key] = str(e)
    return _UNSUPPORTED[key]


def triton_hash(act: Activation) -> str:
    from actsym.codegen.triton_backend import GENERATOR

    return act.spec.source_hash(GENERATOR)


def triton_module(act: Activation) -> types.ModuleType:
    """The imported Triton module: ``generated_triton.<name>`` when its hash matches, else built
    from the rendered source (kernels decorated now, so in interpreter mode if ``TRITON_INTERPRET=1``)."""
    key = triton_hash(act)
    with _LOCK:
        if key not in _TRITON_MODULES:
            mod = None
            try:
                mod = importlib.import_module(f"generated_triton.{act.name}")
            except ImportError:
                pass
            if getattr(mod, "SOURCE_HASH", None) != key:
                mod = load_source(triton_source(act), f"actsym_triton_{act.name}_{key}")
            _TRITON_MODULES[key] = mod
        return _TRITON_MODULES[key]


# ------------------------------------------------------------------------------------------------------
# Eager fallback (the generated eager math)
# ------------------------------------------------------------------------------------------------------


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _view(p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A (1,) or (C,) parameter as a scalar or viewed as (1, C, 1, ...) against x."""
    if p.numel() == 1:
        return p.reshape(())
    if x.dim() < 2 or x.shape[1] != p.numel():
        raise ValueError(f"parameter of size {p.numel()} needs one element or one per channel (dim 1), got input {tuple(x.shape)}")
    return p.reshape([1, -1] + [1] * (x.dim() - 2))


def _fresh(t: torch.Tensor, *inputs: torch.Tensor) -> torch.Tensor:
    """t, contiguous and not sharing memory with any input (custom ops may not return aliases)."""
    t = t.contiguous()
    if any(t.untyped_storage().data_ptr() == i.untyped_storage().data_ptr() for i in inputs if i.numel()):
        t = t.clone()
    return t


def eager_forward(act: Activation, x: torch.Tensor, params) -> torch.Tensor:
    comp = _compute_dtype(x)
    value = getattr(act.code, f"{act.name}_value")
    y = value(x.to(comp), *(_view(p.to(comp), x) for p in params))
    return y.to(x.dtype)


def eager_backward(act: Activation, grad, x, params, needs) -> list:
    """[grad_x or None, *param grads or None] with the generated eager math; differentiable when autograd
    records (double backward)."""
    comp = _compute_dtype(x)
    xs, gs = x.to(comp), grad.to(comp)
    views = [_view(p.to(comp), x) for p in params]
    if params:
        gx, *gps = getattr(act.code, f"{act.name}_grad_all")(gs, xs, *views)
    else:
        gx, gps = getattr(act.code, f"{act.name}_grad_x")(gs, xs), []
    out = [gx.to(x.dtype) if needs[0] else None]
    for g, v, p, need in zip(gps, views, params, needs[1:]):
        if not need:
            out.append(None)
            continue
        g = torch.broadcast_to(g, x.shape)
        g = g.sum() if v.dim() == 0 else g.sum_to_size(v.shape)
        out.append(g.reshape(p.shape).to(p.dtype))
    return out


# ------------------------------------------------------------------------------------------------------
# The ops
# ------------------------------------------------------------------------------------------------------


@dataclass
class FusedOp:
    """The registered forward/backward ops of one activation."""

    act: Activation
    qualname: str  # "<name>_<hash>"
    fwd: object  # torch.library.CustomOpDef
    bwd: object

    @property
    def forward_overload(self):
        """``torch.ops.actsym.<qualname>_fwd.default`` (what modules call)."""
        return getattr(getattr(torch.ops, NAMESPACE), f"{self.qualname}_fwd").default

    @property
    def backward_overload(self):
        return getattr(getattr(torch.ops, NAMESPACE), f"{self.qualname}_bwd").default

    def __call__(self, x: torch.Tensor, *params) -> torch.Tensor:
        params = [p if isinstance(p, torch.Tensor) else torch.tensor([float(p)], dtype=x.dtype, device=x.device) for p in params]
        return self.forward_overload(x, *params)


_OPS: dict[str, FusedOp] = {}


def fused_op(act: Activation) -> FusedOp:
    """The custom ops of ``act`` (registered on first use, then cached by spec hash)."""
    key = triton_hash(act)
    with _LOCK:
        if key not in _OPS:
            _OPS[key] = _register(act, f"{act.name}_{key[:10]}")
        return _OPS[key]


def _register(act: Activation, qualname: str) -> FusedOp:
    pnames = list(act.spec.params)
    n = 1 + len(pnames)
    psig = "".join(f", Tensor {p}" for p in pnames)

    resolved: dict = {}  # per-op cache: the hash-keyed lookups cost more than a kernel launch

    def kernels(x):
        """The Triton module to run for x, or None (eager math)."""
        if not uses_triton(x):
            return None
        if "module" not in resolved:
            resolved["module"] = triton_module(act) if triton_unsupported(act) is None else None
        return resolved["module"]

    def fwd_impl(x, *params):
        mod = kernels(x)
        if mod is not None:
            y = mod.forward(x, *params)
        else:
            with torch.no_grad():
                y = eager_forward(act, x, params)
        return _fresh(y, x, *params)

    def fwd_fake(x, *params):
        return torch.empty_like(x, memory_format=torch.contiguous_format)

    def bwd_impl(grad, x, *rest):
        *params, needs = rest
        mod = kernels(x)
        if mod is not None:
            outs = mod.backward(grad, x, *params, needs=needs)
        else:
            with torch.no_grad():
                outs = eager_backward(act, grad, x, params, needs)
        inputs = (grad, x, *params)
        return [_fresh(o, *inputs) if o is not None else t.new_empty(0) for o, t in zip(outs, (x, *params))]

    def bwd_fake(grad, x, *rest):
        *params, needs = rest
        return [
            torch.empty_like(t, memory_format=torch.contiguous_format) if need else t.new_empty(0)
            for t, need in zip((x, *params), needs)
        ]

    lib = torch.library
    fwd = lib.custom_op(f"{NAMESPACE}::{qualname}_fwd", fwd_impl, mutates_args=(), schema=f"(Tensor x{psig}) -> Tensor")
    fwd.register_fake(fwd_fake)
    bwd = lib.custom_op(
        f"{NAMESPACE}::{qualname}_bwd", bwd_impl, mutates_args=(), schema=f"(Tensor grad, Tensor x{psig}, bool[] needs) -> Tensor[]"
    )
    bwd.register_fake(bwd_fake)
    bwd_overload = getattr(getattr(torch.ops, NAMESPACE), f"{qualname}_bwd").default

    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    def backward(ctx, grad):
        x, *params = ctx.saved_tensors
        needs = list(ctx.needs_input_grad[:n])
        if not any(needs):
            return (None,) * n
        if torch.is_grad_enabled():  # create_graph=True: differentiable eager math (double backward)
            return tuple(eager_backward(act, grad, x, params, needs))
        outs = bwd_overload(grad, x, *params, needs)
        return tuple(o if need else None for o, need in zip(outs, needs))

    fwd.register_autograd(backward, setup_context=setup_context)
    return FusedOp(act, qualname, fwd, bwd)
