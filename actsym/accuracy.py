"""Accuracy meter (after Herbie, Panchekha et al., PLDI 2015): bits of error of generated code over the
whole floating-point range.

For f, df/dx and every df/dtheta of an activation, inputs are sampled log-uniformly in magnitude over the
dtype's whole finite range (both signs, plus 0, the branch points and their float neighbours), the module's
results (forward and autograd backward, parameters at their initial values) are compared with the *user's*
expression and its plain SymPy derivatives evaluated by mpmath at 40 digits, and the error is reported in
ulps and bits (``log2(1 + ulps)``: 0 = exact, 1 = one bit lost, 53 = garbage in float64). A point where the
exact value is finite and representable but the result is inf/NaN is listed separately -- that is a bug a
user would hit, not a rounding matter. Points whose exact value overflows the dtype, is non-real, or where
f is not differentiable are skipped. Where the user's expression is 0/0 (a removable singularity in x or in a
parameter), the reference is its limit (:func:`actsym.numerics.exact_value`). A result below the dtype's
smallest normal number where the exact value is below it too counts as exact (an underflow: float32 code
on GPUs flushes such values to zero).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import mpmath
import sympy as sp
import torch

from actsym import numerics
from actsym.numerics import eval_at, exact_value, guarded_lambdify

#: dtype -> (mantissa bits, smallest normal, largest finite)
FORMATS = {torch.float64: numerics.FLOAT_FORMATS["float64"], torch.float32: numerics.FLOAT_FORMATS["float32"]}


@dataclass
class FunctionAccuracy:
    """Accuracy of one generated function (f, d/dx or d/dp) in one dtype."""

    what: str
    points: int = 0
    mean_bits: float = 0.0
    max_bits: float = 0.0
    worst_x: float | None = None
    nonfinite: list[tuple[float, float, float]] = field(default_factory=list)  # (x, got, exact)

    def line(self) -> str:
        s = f"{self.what}: mean {self.mean_bits:.2f} bits, max {self.max_bits:.1f} bits"
        if self.worst_x is not None and self.max_bits > 3:
            s += f" (at x = {self.worst_x:.6g})"
        if self.nonfinite:
            x, got, exact = self.nonfinite[0]
            s += f"; NON-FINITE at {len(self.nonfinite)} points, e.g. x = {x:.6g}: got {got}, exact {exact:.6g}"
        return s + f" over {self.points} points"


@dataclass
class AccuracyReport:
    activation: str
    dtype: str
    functions: list[FunctionAccuracy]

    @property
    def nonfinite(self) -> int:
        return sum(len(f.nonfinite) for f in self.functions)

    def lines(self) -> list[str]:
        return [f"{self.dtype} {f.line()}" for f in self.functions]


def _fmt(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def ulp(v: float, dtype: torch.dtype) -> float:
    """The spacing of the dtype's floats at |v| (subnormal spacing below the smallest normal)."""
    return numerics.ulp(v, _fmt(dtype))


def sample_points(dtype: torch.dtype, n: int, extra: list[float] = (), seed: int = 0) -> list[float]:
    """``n`` points log-uniform in magnitude over [smallest normal, largest finite], both signs, plus 0,
    the ``extra`` points and their float neighbours (all rounded to the dtype)."""
    return numerics.sample_points(_fmt(dtype), n, extra, seed)


def _oracle(expr: sp.Expr, x: sp.Symbol, params: list[sp.Symbol]):
    syms = [x, *params]

    def clean(e):
        return e.replace(lambda t: isinstance(t, sp.DiracDelta), lambda t: sp.S.Zero)

    fs = [("f", guarded_lambdify(syms, expr))]
    fs.append(("d/dx", guarded_lambdify(syms, clean(sp.diff(expr, x)))))
    for p in params:
        fs.append((f"d/d{p.name}", guarded_lambdify(syms, clean(sp.diff(expr, p)))))
    return fs


_eval = eval_at
_exact = exact_value


def _differentiable(fn, t0: float) -> bool:
    """Both one-sided difference quotients of the univariate mpmath function ``fn`` agree at ``t0`` (no kink
    or jump there)."""
    h = mpmath.mpf(abs(t0) if t0 != 0 else 1e-30) * mpmath.mpf(10) ** -20
    with mpmath.workdps(60):
        try:
            a, b, c = fn(mpmath.mpf(t0) - h), fn(mpmath.mpf(t0)), fn(mpmath.mpf(t0) + h)
            left, right = (b - a) / h, (c - b) / h
            return bool(abs(left - right) <= 1e-10 * (1 + abs(left) + abs(right)))
        except (ZeroDivisionError, ValueError, TypeError, OverflowError, MemoryError):
            return False


def _along(f, k: int, x0: float, pv: list[float]):
    """f as a univariate function of x (k = 1) or of parameter k - 2, and the point."""
    if k == 1:
        return (lambda t: f(t, *pv)), x0

    def g(t):
        args = list(pv)
        args[k - 2] = t
        return f(x0, *args)

    return g, pv[k - 2]


def measure(act, dtype: torch.dtype = torch.float64, n: int = 400, seed: int = 0,
            branch_points: list[float] = ()) -> AccuracyReport:
    """Bits of error of f, df/dx and every df/dp of ``act``'s generated module in ``dtype``."""
    spec = act.spec
    x = spec.x
    params = spec.param_symbols
    pv = [v.init for v in spec.params.values()]
    oracle = _oracle(spec.expr, x, params)
    f_exact = oracle[0][1]
    pts = sample_points(dtype, n, list(branch_points), seed)
    xt = torch.tensor(pts, dtype=dtype, requires_grad=True)
    ps = [torch.full_like(xt, v).requires_grad_(True) for v in pv]  # per point: unreduced parameter grads
    with torch.enable_grad():
        y = act.functional(xt, *ps)
        grads = torch.autograd.grad(y, [xt, *ps], torch.ones_like(y), allow_unused=True)
    got = [y.detach()] + [g if g is not None else torch.zeros_like(xt) for g in grads]
    _, tiny, big = FORMATS[dtype]
    out = []
    for k, (what, fn) in enumerate(oracle):
        acc = FunctionAccuracy(what)
        bits_sum = 0.0
        values = got[k].tolist()
        for i, x0 in enumerate(pts):
            exact = _exact(fn, x0, pv)
            if exact is None or abs(exact) > big:
                continue
            if k > 0 and not _differentiable(*_along(f_exact, k, x0, pv)):
                continue
            v = values[i]
            ex = float(exact)
            if not math.isfinite(v):
                acc.nonfinite.append((x0, v, ex))
                continue
            err = abs(mpmath.mpf(v) - exact)
            ulps = float(err / ulp(ex, dtype))
            # exact and result both below the smallest normal number: an underflow (flush to zero is the
            # float answer there), not lost digits
            # capped at the format's width, as Herbie's bits of error (an exact value that underflows to 0
            # but a result of 1e-150 is "no correct bit", not 500 of them)
            width = 64 if dtype == torch.float64 else 32
            bits = 0.0 if abs(ex) < tiny and abs(v) < tiny else min(math.log2(1 + ulps), width)
            acc.points += 1
            bits_sum += bits
            if bits > acc.max_bits:
                acc.max_bits, acc.worst_x = bits, x0
        acc.mean_bits = bits_sum / acc.points if acc.points else 0.0
        out.append(acc)
    return AccuracyReport(spec.name, str(dtype).replace("torch.", ""), out)
