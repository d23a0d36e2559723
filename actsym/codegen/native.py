"""Native twins: an activation whose f *is* one of PyTorch's fused activations runs that kernel (and its
``aten.*_backward``) on the in-place path, where training spends its time.

PyTorch computes ``silu``, ``gelu``, ``mish``, ... forward and backward in one fused kernel each; the
generated in-place code needs 2 (silu) to 10 (gelu backward) kernels for the same math. A twin is found by
*measurement*, not by pattern matching on the expression (which would miss ``x*(1 + erf(x/sqrt(2)))/2`` vs
``x*ndtr(x)`` and every other way of writing one function): the candidate kernel and its backward are run
at the points the accuracy meter uses (log-uniform over each format's whole finite range, both signs, 0, the
branch points and their float neighbours) and compared with the user's expression and its plain SymPy
derivative evaluated by mpmath (:mod:`actsym.numerics`). A twin is used for a format only when every point
is within :data:`TOLERANCE_ULPS` of the exact value (at a kink: of the derivation's own one-sided
convention; non-finite where it is not representable), so swapping it in changes no result beyond
rounding. float16/bfloat16 run as float32 in generated code, so float32 covers them.

Only parameter-free activations are matched: a module's parameters are tensors (possibly learnable or per
channel), and the native kernels take Python numbers. The differentiable (out-of-place) code is never
replaced, so double backward keeps its symbolic derivative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import sympy as sp
import torch

from actsym.numerics import FLOAT_FORMATS, exact_value, guarded_lambdify, sample_points, ulp

#: largest error of a native kernel, in ulps of the exact value, at every sampled point
TOLERANCE_ULPS = 8
#: formats a twin is checked in, with the torch dtype the generated file names
FORMATS = {"float32": torch.float32, "float64": torch.float64}
_F = "torch.nn.functional"
_A = "torch.ops.aten"


@dataclass(frozen=True)
class Twin:
    """One fused PyTorch activation: ``value``/``grad`` are code templates over ``{x}`` and ``{g}`` (the
    incoming gradient); :meth:`run` evaluates them (the checked code is the emitted code)."""

    name: str
    value: str
    grad: str

    def run(self, code: str, x: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        with torch.no_grad():
            return eval(code.format(x="x", g="g"), {"torch": torch}, {"x": x, "g": g})  # noqa: S307 - our templates

    def second(self, x: torch.Tensor) -> torch.Tensor:
        """d2f/dx2 by PyTorch's autograd of the value kernel (its own double-backward formula)."""
        with torch.enable_grad():
            t = x.clone().requires_grad_(True)
            y = eval(self.value.format(x="t"), {"torch": torch}, {"t": t})  # noqa: S307 - our templates
            (g,) = torch.autograd.grad(y.sum(), t, create_graph=True)
            if not g.requires_grad:
                return torch.zeros_like(x)
            return torch.autograd.grad(g.sum(), t)[0]


_SELU = (1.6732632423543772848170429916717, 1.0507009873554804934193349852946)

TWINS = (
    Twin("relu", "torch.relu({x})", f"{_A}.threshold_backward({{g}}, {{x}}, 0.0)"),
    Twin("sigmoid", "torch.sigmoid({x})", f"{_A}.sigmoid_backward({{g}}, torch.sigmoid({{x}}))"),
    Twin("tanh", "torch.tanh({x})", f"{_A}.tanh_backward({{g}}, torch.tanh({{x}}))"),
    Twin("silu", f"{_F}.silu({{x}})", f"{_A}.silu_backward({{g}}, {{x}})"),
    Twin("gelu", f"{_F}.gelu({{x}})", f"{_A}.gelu_backward({{g}}, {{x}})"),
    Twin("gelu_tanh", f"{_F}.gelu({{x}}, approximate='tanh')", f"{_A}.gelu_backward({{g}}, {{x}}, approximate='tanh')"),
    Twin("elu", f"{_F}.elu({{x}})", f"{_A}.elu_backward({{g}}, 1.0, 1.0, 1.0, False, {{x}})"),
    Twin("selu", f"{_F}.selu({{x}})", f"{_A}.elu_backward({{g}}, {_SELU[0]!r}, {_SELU[1]!r}, 1.0, False, {{x}})"),
    Twin("softplus", f"{_F}.softplus({{x}}, 1.0, 40.0)", f"{_A}.softplus_backward({{g}}, {{x}}, 1.0, 40.0)"),
    Twin("mish", f"{_F}.mish({{x}})", f"{_A}.mish_backward({{g}}, {{x}})"),
    Twin("logsigmoid", f"{_F}.logsigmoid({{x}})",
         f"{_A}.log_sigmoid_backward({{g}}, {{x}}, {_A}.log_sigmoid_forward({{x}})[1])"),
    Twin("hardswish", f"{_F}.hardswish({{x}})", f"{_A}.hardswish_backward({{g}}, {{x}})"),
    Twin("hardsigmoid", f"{_F}.hardsigmoid({{x}})", f"{_A}.hardsigmoid_backward({{g}}, {{x}})"),
    Twin("hardtanh", f"{_F}.hardtanh({{x}})", f"{_A}.hardtanh_backward({{g}}, {{x}}, -1.0, 1.0)"),
    Twin("relu6", f"{_F}.relu6({{x}})", f"{_A}.hardtanh_backward({{g}}, {{x}}, 0.0, 6.0)"),
    Twin("leaky_relu", f"{_F}.leaky_relu({{x}})", f"{_A}.leaky_relu_backward({{g}}, {{x}}, 0.01, False)"),
)

#: quick rejection: a twin must agree with f here (float64, loose) before the full measurement
_PROBE = (-7.5, -3.0, -1.25, -0.5, -0.1, 0.0, 0.1, 0.5, 1.25, 3.0, 7.5)


@dataclass(frozen=True)
class Match:
    """A twin and the torch dtypes it was verified for (``value``: f; ``grad``: df/dx)."""

    twin: Twin
    value_dtypes: tuple[str, ...]
    grad_dtypes: tuple[str, ...]
    #: formats where f, df/dx and d2f/dx2 (PyTorch's double backward) all are: there the module *is* the kernel
    whole_dtypes: tuple[str, ...] = ()

    def describe(self) -> str:
        def fmts(t):
            return ", ".join(t) if t else "none (less accurate than the generated code)"

        return (f"PyTorch's fused kernels -- f: {fmts(self.value_dtypes)}; df/dx: {fmts(self.grad_dtypes)}; "
                f"f, df/dx and d2f/dx2 (then the module is PyTorch's op): {fmts(self.whole_dtypes)} (each within "
                f"{TOLERANCE_ULPS} ulps of the exact value at every sampled point)")


def _close(got: float, exact: float | None, fmt: str) -> bool:
    """``got`` is within the tolerance of ``exact`` in ``fmt`` (both non-finite, or both below the smallest
    normal number -- an underflow -- count as agreeing); ``exact`` None (no exact value: undefined, or too
    large for mpmath to hold) is not compared, as in the accuracy meter."""
    mant, tiny, big = FLOAT_FORMATS[fmt]
    if exact is None:
        return True
    if not math.isfinite(exact) or abs(exact) > big:
        return not math.isfinite(got) or abs(got) > big
    if not math.isfinite(got):
        return False
    if abs(exact) < tiny and abs(got) < tiny:
        return True
    return abs(got - exact) <= TOLERANCE_ULPS * ulp(exact, fmt)


def _unevaluated(e: sp.Expr) -> bool:
    """SymPy left a derivative it could not take (``Derivative``/``Subs``): nothing exact to compare with."""
    return e.has(sp.Derivative, sp.Subs)


class _References:
    """Exact f, df/dx (at a kink: the derivation's one-sided convention) and d2f/dx2 of the user's expression,
    each built on first use: most expressions fail the probe, and their derivatives are never needed."""

    def __init__(self, spec_expr: sp.Expr, patched_dx: sp.Expr, x: sp.Symbol):
        self.expr, self.patched_dx, self.x = spec_expr, patched_dx, x
        self._fns: dict = {}

    def _fn(self, key: str):
        if key not in self._fns:
            x = self.x
            e = {"f": lambda: self.expr, "conv": lambda: self.patched_dx,
                 "df": lambda: sp.diff(self.expr, x), "d2f": lambda: sp.diff(self.expr, x, 2)}[key]()
            e = e.replace(lambda t: isinstance(t, sp.DiracDelta), lambda t: sp.S.Zero)
            self._fns[key] = None if _unevaluated(e) else guarded_lambdify([x], e)
        return self._fns[key]

    def _at(self, key: str, x0: float):
        fn = self._fn(key)
        v = None if fn is None else exact_value(fn, x0, [])
        return None if v is None else float(v)

    def value(self, x0: float):
        return self._at("f", x0)

    def grad(self, x0: float, kink: bool):
        v = self._at("conv" if kink else "df", x0)
        return self._at("conv", x0) if v is None and not kink else v

    def second(self, x0: float):
        return self._at("d2f", x0)

    def missing(self, key: str) -> bool:
        """No exact reference for ``key`` (SymPy could not differentiate): the twin is not used for it."""
        return self._fn(key) is None


def _agrees(twin: Twin, code: str | None, xs: list[float], want: list, fmt: str) -> bool:
    dtype = FORMATS[fmt]
    t = torch.tensor(xs, dtype=dtype)
    try:
        got = (twin.second(t) if code is None else twin.run(code, t, torch.ones_like(t))).tolist()
    except (RuntimeError, TypeError, ValueError):
        return False
    return all(_close(a, b, fmt) for a, b in zip(got, want))


def find(spec, x: sp.Symbol, patched_dx: sp.Expr, branch_points=(), n: int = 160) -> Match | None:
    """The native twin of a parameter-free activation, with the formats it is exact in; None if none is.
    ``branch_points``: a list, or a callable returning one (costly: called only once a twin passes the probe)."""
    if spec.params:
        return None
    ref = _References(spec.expr, patched_dx, x)
    probe = [ref.value(p) for p in _PROBE]
    if any(v is None for v in probe):
        return None
    kinks = None
    for twin in TWINS:
        got = twin.run(twin.value, torch.tensor(_PROBE, dtype=torch.float64)).tolist()
        if not all(abs(a - b) <= 1e-9 * (1 + abs(b)) for a, b in zip(got, probe)):
            continue
        if kinks is None:
            kinks = set(branch_points() if callable(branch_points) else branch_points) | {0.0}
        vd, gd, wd = [], [], []
        for fmt in FORMATS:
            xs = sample_points(fmt, n, extra=list(kinks), seed=1)
            if _agrees(twin, twin.value, xs, [ref.value(p) for p in xs], fmt):
                vd.append(fmt)
            if ref.missing("df") or ref.missing("conv"):
                continue
            if _agrees(twin, twin.grad, xs, [ref.grad(p, p in kinks) for p in xs], fmt):
                gd.append(fmt)
                smooth = [p for p in xs if p not in kinks]  # d2f at a kink is a delta: no value to compare
                if fmt in vd and not ref.missing("d2f") and _agrees(
                        twin, None, smooth, [ref.second(p) for p in smooth], fmt):
                    wd.append(fmt)
        return Match(twin, tuple(vd), tuple(gd), tuple(wd)) if (vd or gd) else None
    return None


def nograd_reference(module, fn: str, args) -> torch.Tensor | None:
    """What a generated module's ``<name>_<fn>_nograd(*args)`` computes when it runs its native twin for the
    dtype of x (``fn``: "value" with args (x,), "grad_x" with args (grad, x)); None where it runs the
    generated in-place code. For tests that compare the in-place code with its reference bit for bit."""
    info = getattr(module, "NATIVE", None)
    if not info or fn not in ("value", "grad_x"):
        return None
    x = args[0] if fn == "value" else args[1]
    if str(x.dtype).replace("torch.", "") not in info[fn]:
        return None
    twin = next(t for t in TWINS if t.name == info["op"])
    return twin.run(twin.value, x) if fn == "value" else twin.run(twin.grad, x, args[0])
