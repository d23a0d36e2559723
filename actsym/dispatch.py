"""Backend dispatch for an :class:`~actsym.activation.Activation` object: which backend runs it, and the
``nn.Module`` / functional for that backend.

This is what :meth:`Activation.module` calls, so it never imports :mod:`actsym.activation` or
:mod:`actsym.api` (that would be a cycle); looking activations up by name is :mod:`actsym.backends`, the
public face on top of it. See :mod:`actsym.backends` for the four backends.
"""

from __future__ import annotations

import torch

BACKENDS = ("auto", "eager", "triton", "compile")


def resolve_backend(backend: str = "auto") -> str:
    """The concrete backend ``backend`` means on this machine (``"auto"`` -> ``"triton"`` or ``"eager"``)."""
    from actsym.codegen.custom_op import triton_available

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "triton" if torch.cuda.is_available() and triton_available() else "eager"
    if backend == "triton" and not triton_available():
        raise RuntimeError("backend='triton' needs the triton package (pip install 'actsym[triton]')")
    return backend


class FusedActivation(torch.nn.Module):
    """An activation through its fused custom op: one Triton kernel forward, one backward (grad_x and all
    parameter gradients) on CUDA; the generated eager math elsewhere.

    Same constructor as the generated eager module: ``num_parameters`` 1 (per-layer) or C (per channel,
    dim 1), ``<param>=init``, ``learnable=(names...)`` (default: the spec's learnable parameters; the others
    are buffers). ``act`` is an :class:`~actsym.activation.Activation` (by name: :func:`actsym.backends.make_module`).
    """

    def __init__(self, act, num_parameters: int = 1, learnable=None, **init):
        super().__init__()
        from actsym.codegen.custom_op import fused_op

        unknown = set(init) - set(act.spec.params)
        if unknown:
            raise TypeError(f"{act.name} has no parameter(s) {sorted(unknown)}")
        self.spec = act.spec
        self._activation_type = type(act)  # rebuilds the activation from the spec after unpickling
        self.num_parameters = num_parameters
        self._pnames = tuple(act.spec.params)
        if learnable is None:
            learnable = tuple(k for k, v in act.spec.params.items() if v.learnable)
        for p, spec in act.spec.params.items():
            value = torch.full((num_parameters,), float(init.get(p, spec.init)))
            if p in learnable:
                setattr(self, p, torch.nn.Parameter(value))
            else:
                self.register_buffer(p, value)
        self._bind(fused_op(act))

    def _bind(self, op) -> None:
        self._op = op.forward_overload
        self._act = op.act
        self._act.code  # the eager math (ONNX export runs it), built now: never while an exporter traces  # noqa: B018

    # the op handle is process-local: pickling/deepcopy keep the spec and look the op up again
    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_op", None)
        state.pop("_act", None)
        return state

    def __setstate__(self, state):
        from actsym.codegen.custom_op import fused_op

        super().__setstate__(state)
        self._bind(fused_op(self._activation_type(self.spec)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params = [getattr(self, p) for p in self._pnames]
        if torch.onnx.is_in_onnx_export():  # ONNX has no Triton kernel: export the same function's eager math
            from actsym.codegen.custom_op import eager_forward

            return eager_forward(self._act, x, params)
        return self._op(x, *params)

    def extra_repr(self) -> str:
        ps = ", ".join(f"{p}={getattr(self, p).tolist()}" for p in self._pnames)
        return f"{self.spec.name}, num_parameters={self.num_parameters}" + (f", {ps}" if ps else "") + ", backend=triton"


def make_module(act, backend: str = "auto", num_parameters: int = 1, **init) -> torch.nn.Module:
    """An ``nn.Module`` for the activation object ``act`` on the chosen backend; ``num_parameters``/
    ``learnable``/``<param>=init`` as for the generated module."""
    chosen = resolve_backend(backend)
    if chosen == "triton":
        from actsym.codegen.custom_op import triton_unsupported

        reason = triton_unsupported(act)
        if reason is None:
            return FusedActivation(act, num_parameters=num_parameters, **init)
        if backend == "triton":
            raise ValueError(f"{act.name} has no Triton kernels: {reason}")
        chosen = "eager"  # auto: the eager module for activations the Triton printer cannot translate
    # module_class, not act.module: Activation.module delegates here
    if chosen == "compile":
        if "compile" in getattr(act.code, "BACKENDS", ()):
            return act.module_class(num_parameters=num_parameters, backend="compile", **init)
        return torch.compile(act.module_class(num_parameters=num_parameters, **init))
    return act.module_class(num_parameters=num_parameters, **init)


def make_functional(act, backend: str = "auto"):
    """``(x, *params) -> y`` for the activation object ``act`` on the chosen backend (parameters: numbers, or
    tensors of one element or one per channel for ``"triton"``; broadcastable tensors for the others)."""
    chosen = resolve_backend(backend)
    if chosen == "triton":
        from actsym.codegen.custom_op import fused_op

        return fused_op(act)
    if chosen == "compile":
        fn = act.functional
        return lambda x, *params: fn(x, *params, backend="compile")
    return act.functional
