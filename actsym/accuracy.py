"""Accuracy meter (after Herbie, Panchekha et al., PLDI 2015): bits of error of generated code over the
whole floating-point range.

For f, df/dx and every df/dtheta of an activation, inputs are sampled log-uniformly in magnitude over the
dtype's whole finite range (both signs, plus 0, the branch points and their float neighbours), the module's
results (forward and autograd backward, parameters at their initial values) are compared with the *user's*
expression and its plain SymPy derivatives evaluated by mpmath at 40 digits, and the error is reported in
ulps and bits (``log2(1 + ulps)``: 0 = exact, 1 = one bit lost, 53 = garbage in float64). A point where the
exact value is finite and representable but the result is inf/NaN is listed separately -- that is a bug a
user would hit, not a rounding matter. Points whose exact value overflows the dtype, is non-real, or where
f is not differentiable are skipped.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import mpmath
import sympy as sp
import torch

from actsym.functions import mpmath_namespace

#: dtype -> (mantissa bits, smallest normal, largest finite)
FORMATS = {
    torch.float64: (52, 2.0**-1022, 1.7976931348623157e308),
    torch.float32: (23, 2.0**-126, 3.4028234663852886e38),
}


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


def ulp(v: float, dtype: torch.dtype) -> float:
    """The spacing of the dtype's floats at |v| (subnormal spacing below the smallest normal)."""
    mant, tiny, _ = FORMATS[dtype]
    a = abs(v)
    if a < tiny:
        return tiny * 2.0**-mant
    return 2.0 ** (math.floor(math.log2(a)) - mant)


def sample_points(dtype: torch.dtype, n: int, extra: list[float] = (), seed: int = 0) -> list[float]:
    """``n`` points log-uniform in magnitude over [smallest normal, largest finite], both signs, plus 0,
    the ``extra`` points and their float neighbours (all rounded to the dtype)."""
    _, tiny, big = FORMATS[dtype]
    rng = random.Random(seed)
    lo, hi = math.log2(tiny), math.log2(big)
    pts = [0.0]
    for _ in range(n):
        pts.append(rng.choice((1, -1)) * 2.0 ** rng.uniform(lo, hi))
    # ordinary magnitudes are where training lives: a second, denser sample over [1e-3, 1e3]
    for _ in range(n // 2):
        pts.append(rng.choice((1, -1)) * 10.0 ** rng.uniform(-3, 3))
    for e in extra:
        pts += [e, math.nextafter(e, math.inf), math.nextafter(e, -math.inf), e + 1e-6 * max(1, abs(e)),
                e - 1e-6 * max(1, abs(e))]
    t = torch.tensor(pts, dtype=torch.float64).to(dtype).to(torch.float64)
    return sorted(set(t.tolist()))


def _oracle(expr: sp.Expr, x: sp.Symbol, params: list[sp.Symbol]):
    syms = [x, *params]
    ns = [mpmath_namespace(), "mpmath"]

    def clean(e):
        return e.replace(lambda t: isinstance(t, sp.DiracDelta), lambda t: sp.S.Zero)

    fs = [("f", sp.lambdify(syms, expr, modules=ns))]
    fs.append(("d/dx", sp.lambdify(syms, clean(sp.diff(expr, x)), modules=ns)))
    for p in params:
        fs.append((f"d/d{p.name}", sp.lambdify(syms, clean(sp.diff(expr, p)), modules=ns)))
    return fs


def _eval(fn, x0: float, pv: list[float], dps: int):
    with mpmath.workdps(dps):
        try:
            v = mpmath.mpmathify(fn(mpmath.mpf(x0), *[mpmath.mpf(p) for p in pv]))
        except (ZeroDivisionError, ValueError, TypeError, OverflowError):
            return None
        if isinstance(v, mpmath.mpc):
            if v.imag != 0:
                return None
            v = v.real
        return v if mpmath.isfinite(v) else None


def _exact(fn, x0: float, pv: list[float]) -> float | None:
    """The exact value, to ~20 significant digits: evaluated at increasing precision until two successive
    precisions agree (a fixed precision loses everything to cancellation, e.g. exp(x) - 1 at x = 1e-60)."""
    prev = _eval(fn, x0, pv, 30)
    for dps in (60, 120, 300, 800):
        cur = _eval(fn, x0, pv, dps)
        if prev is None and cur is None:
            return None
        if prev is not None and cur is not None and cur != 0:  # an exact 0 may be total cancellation: go on
            with mpmath.workdps(dps):
                if abs(cur - prev) <= abs(cur) * mpmath.mpf(10) ** -20:
                    return cur
        prev = cur
    return prev


def _differentiable(fn, t0: float) -> bool:
    """Both one-sided difference quotients of the univariate mpmath function ``fn`` agree at ``t0`` (no kink
    or jump there)."""
    h = mpmath.mpf(abs(t0) if t0 != 0 else 1e-30) * mpmath.mpf(10) ** -20
    with mpmath.workdps(60):
        try:
            a, b, c = fn(mpmath.mpf(t0) - h), fn(mpmath.mpf(t0)), fn(mpmath.mpf(t0) + h)
            left, right = (b - a) / h, (c - b) / h
            return bool(abs(left - right) <= 1e-10 * (1 + abs(left) + abs(right)))
        except (ZeroDivisionError, ValueError, TypeError, OverflowError):
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
    big = FORMATS[dtype][2]
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
            bits = math.log2(1 + ulps)
            acc.points += 1
            bits_sum += bits
            if bits > acc.max_bits:
                acc.max_bits, acc.worst_x = bits, x0
        acc.mean_bits = bits_sum / acc.points if acc.points else 0.0
        out.append(acc)
    return AccuracyReport(spec.name, str(dtype).replace("torch.", ""), out)
