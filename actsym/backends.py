"""Backend selection: one activation, four ways to run it.

``make_module(act, backend, num_parameters=1, **init)`` builds an ``nn.Module`` for

* ``"eager"``: the generated eager module (``generated/<name>.py``; in-place torch ops when autograd is off);
* ``"compile"``: the same module with ``backend="compile"`` (its math ``torch.compile``'d on first use);
* ``"triton"``: :class:`FusedActivation`, the fused custom op of :mod:`actsym.codegen.custom_op` (generated
  Triton kernels on CUDA; the eager math on CPU, so the module still runs there); needs ``triton``;
* ``"auto"``: ``"triton"`` when CUDA is available, Triton imports and the activation has a Triton translation
  (no ``atan``/``erfc``...), else ``"eager"``.

All four have the same parameters, buffers and ``state_dict`` keys, so a checkpoint moves between them.
Triton and CUDA are probed lazily, when a module is built -- importing actsym never imports Triton.

``act`` is an :class:`~actsym.activation.Activation` or a catalog/corpus name. The dispatch itself is
:mod:`actsym.dispatch` (what :meth:`Activation.module` uses); this module adds the lookup by name.
"""

from __future__ import annotations

import torch

from actsym import dispatch
from actsym.dispatch import BACKENDS, FusedActivation, resolve_backend

__all__ = ["BACKENDS", "FusedActivation", "make_functional", "make_module", "resolve_backend"]


def _activation(act):
    if isinstance(act, str):
        from actsym.api import get

        return get(act)
    return act


def make_module(act, backend: str = "auto", num_parameters: int = 1, **init) -> torch.nn.Module:
    """An ``nn.Module`` for ``act`` (an :class:`~actsym.activation.Activation` or a catalog name) on the chosen
    backend; ``num_parameters``/``learnable``/``<param>=init`` as for the generated module."""
    return dispatch.make_module(_activation(act), backend, num_parameters, **init)


def make_functional(act, backend: str = "auto"):
    """``(x, *params) -> y`` on the chosen backend (parameters: numbers, or tensors of one element or one per
    channel for ``"triton"``; broadcastable tensors for the others)."""
    return dispatch.make_functional(_activation(act), backend)
