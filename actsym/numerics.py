"""Exact values at adaptive precision (mpmath): the reference of the accuracy meter and of the regime search.

The lowest layer with numbers in it: it knows SymPy-lambdified mpmath callables, nothing of code generation.
"""

from __future__ import annotations

import math
import random

import mpmath
import numpy as np
import sympy as sp

#: IEEE format name -> (mantissa bits, smallest normal, largest finite)
FLOAT_FORMATS = {
    "float64": (52, 2.0**-1022, 1.7976931348623157e308),
    "float32": (23, 2.0**-126, 3.4028234663852886e38),
}
_NP = {"float64": np.float64, "float32": np.float32}


def ulp(v: float, fmt: str) -> float:
    """The spacing of the format's floats at |v| (subnormal spacing below the smallest normal)."""
    mant, tiny, _ = FLOAT_FORMATS[fmt]
    a = abs(v)
    if a < tiny:
        return tiny * 2.0**-mant
    return 2.0 ** (math.floor(math.log2(a)) - mant)


def sample_points(fmt: str, n: int, extra: list[float] = (), seed: int = 0) -> list[float]:
    """``n`` points log-uniform in magnitude over [smallest normal, largest finite], both signs, plus 0, a
    denser sample over [1e-3, 1e3] (where training lives), the ``extra`` points and their float neighbours
    (all rounded to the format), sorted."""
    _, tiny, big = FLOAT_FORMATS[fmt]
    rng = random.Random(seed)
    lo, hi = math.log2(tiny), math.log2(big)
    pts = [0.0]
    for _ in range(n):
        pts.append(rng.choice((1, -1)) * 2.0 ** rng.uniform(lo, hi))
    for _ in range(n // 2):
        pts.append(rng.choice((1, -1)) * 10.0 ** rng.uniform(-3, 3))
    for e in extra:
        pts += [e, math.nextafter(e, math.inf), math.nextafter(e, -math.inf), e + 1e-6 * max(1, abs(e)),
                e - 1e-6 * max(1, abs(e))]
    with np.errstate(over="ignore"):
        rounded = np.asarray(pts, dtype=np.float64).astype(_NP[fmt]).astype(np.float64)
    return sorted({float(v) for v in rounded if math.isfinite(v)})


#: Beyond this magnitude, exp/sinh/cosh/... of an mpf are returned as their limits (inf or 0):
#: exp(exp(1e300)) would otherwise try to build an integer with 1e300 digits.
HUGE = 1e6


def _guard(f, big):
    def g(u):
        if isinstance(u, (mpmath.mpf, int, float)) and abs(u) > HUGE:
            return big(u)
        return f(u)

    return g


def guarded_namespace() -> dict:
    """An mpmath namespace for ``sympy.lambdify`` in which no function can exhaust memory."""
    from actsym.functions import mpmath_namespace

    inf, zero, one = mpmath.inf, mpmath.mpf(0), mpmath.mpf(1)
    ns = mpmath_namespace()
    ns.update({
        "exp": _guard(mpmath.exp, lambda u: inf if u > 0 else zero),
        "expm1": _guard(mpmath.expm1, lambda u: inf if u > 0 else -one),
        "sinh": _guard(mpmath.sinh, lambda u: inf if u > 0 else -inf),
        "cosh": _guard(mpmath.cosh, lambda u: inf),
        "softplus": _guard(ns["softplus"], lambda u: u if u > 0 else zero),
        "sigmoid": _guard(ns["sigmoid"], lambda u: one if u > 0 else zero),
        "tanh": _guard(mpmath.tanh, lambda u: one if u > 0 else -one),
    })
    return ns


def _gpow(b, e):
    """b**e, or its limit when |e*log|b|| is beyond HUGE (10**(x**2) at x = 1e300 would not fit in memory)."""
    if b != 0 and isinstance(e, (mpmath.mpf, int, float)):
        t = e * mpmath.log(abs(b))
        if abs(t) > HUGE:
            if b < 0:
                raise ValueError("non-real power")
            return mpmath.inf if t > 0 else mpmath.mpf(0)
    return mpmath.power(b, e)


_GPOW = sp.Function("actsym_gpow")


def guarded_lambdify(symbols: list, expr: sp.Expr):
    """``sympy.lambdify`` to mpmath where no exp/power can exhaust memory (see :func:`guarded_namespace`)."""
    e = expr.replace(lambda t: t.is_Pow and not t.exp.is_number and t.base.is_number is not None,
                     lambda t: _GPOW(t.base, t.exp))
    ns = guarded_namespace()
    ns["actsym_gpow"] = _gpow
    return sp.lambdify(symbols, e, modules=[ns, "mpmath"])


def eval_at(fn, x0, pv: list, dps: int):
    """``fn(x0, *pv)`` at ``dps`` digits; None where undefined, non-real, not finite, or too large to hold."""
    with mpmath.workdps(dps):
        try:
            v = mpmath.mpmathify(fn(mpmath.mpf(x0), *[mpmath.mpf(p) for p in pv]))
        except (ZeroDivisionError, ValueError, TypeError, OverflowError, MemoryError):
            return None  # MemoryError: exp(exp(1e300)) has an exponent mpmath cannot hold
        if isinstance(v, mpmath.mpc):
            if v.imag != 0:
                return None
            v = v.real
        return v if mpmath.isfinite(v) else None


def exact_value(fn, x0: float, pv: list[float], limits: bool = True):
    """The exact value, to ~20 significant digits: evaluated at increasing precision until two successive
    precisions agree (a fixed precision loses everything to cancellation, e.g. exp(x) - 1 at x = 1e-60).

    Where the expression is undefined (0/0 at a removable singularity, in x or in a parameter: sin(x)/x at
    0, (exp(a*x) - 1)/a at a = 0), ``limits`` gives its continuous extension: the value at points 1e-40
    (relative) to either side, when both sides agree to 25 digits."""
    v = _exact(fn, x0, pv)
    if v is not None or not limits:
        return v
    return _two_sided_limit(fn, x0, pv)


def _near(fn, x0, pv, which, h):
    """The value at distance h (relative) on both sides of the point, if both sides agree to 25 digits."""
    sides = []
    for s in (1, -1):
        args = [mpmath.mpf(x0), *[mpmath.mpf(p) for p in pv]]
        for k in which:
            args[k] += s * h * max(1, abs(args[k]))
        sides.append(eval_at(fn, args[0], args[1:], 200))
    a, b = sides
    if a is not None and b is not None and abs(a - b) <= mpmath.mpf(10) ** -25 * max(abs(a), abs(b), 1e-300):
        return (a + b) / 2
    return None


def _two_sided_limit(fn, x0: float, pv: list[float]):
    """The limit as the value at 1e-40 and at 1e-80 from the point when they agree; 0 when the second is
    negligible beside the first (x*log|x| at 0 tends to 0 too slowly for a single distance to show it)."""
    with mpmath.workdps(200):
        for which in ([0], list(range(1, len(pv) + 1)), list(range(len(pv) + 1))):
            if which == [] or (which != [0] and not pv):
                continue
            a = _near(fn, x0, pv, which, mpmath.mpf(10) ** -40)
            b = _near(fn, x0, pv, which, mpmath.mpf(10) ** -80)
            if a is None or b is None:
                continue
            if abs(a - b) <= mpmath.mpf(10) ** -25 * max(abs(a), abs(b), 1e-300):
                return b
            if abs(b) <= mpmath.mpf(10) ** -30 * abs(a) or (abs(a) < 1e-50 and abs(b) < 1e-90):
                return mpmath.mpf(0)
    return None


def _exact(fn, x0, pv):
    # Two precisions can agree on the same wrong answer when the digits a cancellation loses exceed both
    # (exp(x) - 1 - x*exp(x) at x = 1e-222 is +1e-222 at 30 and at 60 digits; the truth is -5e-445): the
    # first precision covers the magnitude of every input, whose square (or reciprocal) may cancel.
    scale = max([abs(float(mpmath.log10(abs(mpmath.mpf(v))))) for v in (x0, *pv) if v != 0 and math.isfinite(v)]
                or [0.0])
    start = 30 + min(int(scale), 400)
    prev = eval_at(fn, x0, pv, start)
    for dps in (2 * start, 4 * start):
        cur = eval_at(fn, x0, pv, dps)
        if prev is None and cur is None:
            return None
        if prev is not None and cur is not None and cur != 0:  # an exact 0 may be total cancellation: go on
            with mpmath.workdps(dps):
                if abs(cur - prev) <= abs(cur) * mpmath.mpf(10) ** -20:
                    return cur
        prev = cur
    if prev is not None:
        # No two precisions agreed (or all gave an exact 0): exp of an input of this size may vanish beside 1
        # at every precision so far (log(1 + exp(x)) at x = -285.6 is 9.1274669e-125; 128 digits give
        # 9.12752e-125, fewer give 0): digits for exp(|input|), once.
        deep = 30 + min(int(max(abs(v) for v in (x0, *pv) if math.isfinite(v)) / 2.3), 3000)
        if deep > 4 * start:
            a, b = eval_at(fn, x0, pv, deep), eval_at(fn, x0, pv, 2 * deep)
            if a is not None and b is not None and b != 0:
                with mpmath.workdps(2 * deep):
                    if abs(a - b) <= abs(b) * mpmath.mpf(10) ** -20:
                        return b
    return prev


def split_product(e: sp.Expr) -> tuple[sp.Expr, list, list]:
    """The order of a product's floating-point operations, shared by the generated code
    (:mod:`actsym.codegen.ir`) and the regime scorer (:mod:`actsym.regimes`), so that what is measured is
    what runs: (numeric coefficient, factors, denominators); the factors are multiplied left to right,
    compound ones before symbols, then divided by the product of the denominators, and the coefficient comes
    last (``4*x*sigmoid(-x)`` at x = 1e308 is ``(sigmoid(-x)*x)*4`` = 0, not ``(4*x)*...`` = inf*0)."""
    coef = sp.S.One
    factors, dens = [], []
    for f in e.args:
        if f.is_number:
            coef *= f
        elif f.is_Pow and f.exp.is_Integer and f.exp < 0:
            dens.append(f.base if f.exp == -1 else f.base ** (-f.exp))
        else:
            factors.append(f)
    return coef, compound_first(factors), compound_first(dens)


def compound_first(items: list) -> list:
    return [a for a in items if not a.is_Symbol] + [a for a in items if a.is_Symbol]
