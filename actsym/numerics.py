"""Exact values at adaptive precision (mpmath): the reference of the accuracy meter and of the regime search.

The lowest layer with numbers in it: it knows SymPy-lambdified mpmath callables, nothing of code generation.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

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
    (all rounded to the format), sorted. The edges of the format are always in: +-largest finite, half and
    an eighth of it, its square root and the smallest normal (where x*6 or x*x overflows although f(x)
    does not: random samples rarely land there)."""
    _, tiny, big = FLOAT_FORMATS[fmt]
    rng = random.Random(seed)
    lo, hi = math.log2(tiny), math.log2(big)
    pts = [0.0]
    for edge in (big, big / 2, big / 8, math.sqrt(big), tiny):
        pts += [edge, -edge]
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


@dataclass(frozen=True)
class MulPlan:
    """A product's floating-point operations, left to right:
    ``(-1 if negate) * ((factors[0] [* coef if leading]) * factors[1] * ...) / (denominators[0] * ...)
    [* coef if not leading]``. Numeric factors are folded into one float ``coef`` (None when +-1)."""

    negate: bool
    factors: tuple
    coef: float | None
    denominators: tuple
    leading: bool  # the coefficient multiplies factors[0] at once (a bounded factor: see split_product)


@dataclass(frozen=True)
class AddPlan:
    """``terms[0] (+|-) terms[1] ... (+|-) const``: (sign, term) pairs, positive terms first, the constant last
    -- except when every term is negative: then ``const - terms[0] - ...`` (``const_first``)."""

    terms: tuple
    const: float | None

    @property
    def const_first(self) -> bool:
        return self.const is not None and self.terms[0][0] < 0


def mul_plan(e: sp.Mul) -> MulPlan:
    """The order every printer and the regime scorer evaluate a product in (see :func:`split_product`)."""
    coef, factors, dens = split_product(e)
    value = float(coef.evalf(17))
    negate = value == -1.0  # any other sign rides on the coefficient (negation is exact either way)
    c = None if abs(value) == 1.0 else value
    return MulPlan(negate, tuple(factors), c, tuple(dens), c is not None and leading_coefficient(coef, factors))


def add_plan(e: sp.Add) -> AddPlan:
    """The order every printer and the regime scorer evaluate a sum in."""
    pos, neg = [], []
    numeric = sp.Add(*[t for t in e.args if t.is_number])
    const = float(numeric.evalf(17)) if numeric != 0 else None
    for t in e.args:
        if t.is_number:
            continue
        c, _ = t.as_coeff_Mul()
        if c.is_negative:
            neg.append(-t)
        else:
            pos.append(t)
    terms = [(1, t) for t in compound_first(pos)] + [(-1, t) for t in compound_first(neg)]
    return AddPlan(tuple(terms), const)


def split_product(e: sp.Expr) -> tuple[sp.Expr, list, list]:
    """The order of a product's floating-point operations, shared by both printers of the generated code
    (:mod:`actsym.codegen.printer`, :mod:`actsym.codegen.ir`) and the regime scorer
    (:mod:`actsym.regimes`), so that what is measured is what runs: (numeric coefficient, factors,
    denominators). The factors are multiplied left to right, compound ones before symbols, then divided by
    the product of the denominators, and the coefficient comes last (``4*x*sigmoid(-x)`` at x = 1e308 is
    ``(sigmoid(-x)*x)*4`` = 0, not ``(4*x)*...`` = inf*0) -- except when a factor is *bounded* (a sigmoid,
    a clamp to numbers, sums and products of such): then that factor goes first and takes the coefficient
    at once (``x*Min(Max(x + 3, 0), 6)/6`` at x = 2e38 in float32 is ``(Min(...)/6)*x``, not
    ``(Min(...)*x)/6`` = inf); see :func:`leading_coefficient`."""
    coef = sp.S.One
    factors, dens = [], []
    for f in e.args:
        if f.is_number:
            coef *= f
        elif f.is_Pow and f.exp.is_Integer and f.exp < 0:
            dens.append(f.base if f.exp == -1 else f.base ** (-f.exp))
        else:
            factors.append(f)
    factors = compound_first(factors)
    if abs(coef) != 1:
        first = next((i for i, f in enumerate(factors) if bounded(f)), None)
        if first is not None:
            factors.insert(0, factors.pop(first))
    return coef, factors, compound_first(dens)


def leading_coefficient(coef: sp.Expr, factors: list) -> bool:
    """True when the coefficient of :func:`split_product` multiplies its first factor (a bounded one)
    at once instead of coming last."""
    return abs(coef) != 1 and bool(factors) and bounded(factors[0])


#: Functions whose values are bounded for every argument (inf included): name -> (lowest, highest).
_BOUNDED_FUNCTIONS = {"sigmoid": (0.0, 1.0), "ndtr": (0.0, 1.0), "tanh": (-1.0, 1.0), "erf": (-1.0, 1.0),
                      "erfc": (0.0, 2.0), "sin": (-1.0, 1.0), "cos": (-1.0, 1.0), "sign": (-1.0, 1.0),
                      "atan": (-math.pi / 2, math.pi / 2)}


def bounded(e: sp.Expr) -> bool:
    """|e| has a finite bound whatever x and the parameters are (a clamp to numbers, a sigmoid, their sums
    and products). Conservative: False when unsure."""
    lo, hi = _interval(e)
    return math.isfinite(lo) and math.isfinite(hi)


def _interval(e: sp.Expr) -> tuple[float, float]:
    """Bounds of e's values by interval arithmetic over the node types above (x and the parameters are
    unbounded); (-inf, inf) when unknown."""
    unknown = (-math.inf, math.inf)
    if e.is_number:
        try:
            v = complex(e.evalf(17))
        except (TypeError, ValueError):
            return unknown
        return (v.real, v.real) if v.imag == 0 and math.isfinite(v.real) else unknown
    if isinstance(e, sp.Function) and type(e).__name__ in _BOUNDED_FUNCTIONS:
        return _BOUNDED_FUNCTIONS[type(e).__name__]
    if isinstance(e, (sp.Min, sp.Max)):
        parts = [_interval(a) for a in e.args]
        pick = min if isinstance(e, sp.Min) else max
        return (pick(p[0] for p in parts), pick(p[1] for p in parts))
    if isinstance(e, sp.Piecewise):
        parts = [_interval(v) for v, _ in e.args]
        return (min(p[0] for p in parts), max(p[1] for p in parts))
    if isinstance(e, sp.Abs):
        lo, hi = _interval(e.args[0])
        return (0.0 if lo <= 0 <= hi else min(abs(lo), abs(hi)), max(abs(lo), abs(hi)))
    if isinstance(e, sp.exp) or (e.is_Pow and e.base == sp.E):
        lo, hi = _interval(e.args[0] if isinstance(e, sp.exp) else e.exp)
        return (_exp(lo), _exp(hi))
    if e.is_Pow and e.exp.is_number:
        return _power(_interval(e.base), e.exp)
    if e.is_Add or e.is_Mul:
        lo, hi = _interval(e.args[0])
        for arg in e.args[1:]:
            a_lo, a_hi = _interval(arg)
            if e.is_Add:
                lo, hi = lo + a_lo, hi + a_hi
            else:  # 0 * inf counts as 0 at an end: [0, 1] * [1, inf] is [0, inf]
                ends = [u * v if u and v else 0.0 for u in (lo, hi) for v in (a_lo, a_hi)]
                lo, hi = min(ends), max(ends)
            if math.isnan(lo) or math.isnan(hi):
                return unknown
        return (lo, hi)
    return unknown


def _exp(v: float) -> float:
    return math.inf if v > 709 else math.exp(v)


def _power(base: tuple[float, float], p: sp.Expr) -> tuple[float, float]:
    """[lo, hi]**p for a numeric p (even integer powers of any base, other powers of a non-negative one)."""
    unknown = (-math.inf, math.inf)
    lo, hi = base
    try:
        q = float(p)
    except (TypeError, ValueError):
        return unknown
    if p.is_integer and int(p) % 2 == 0 and lo < 0:  # even power of a signed base: of |base| from 0
        lo, hi = (0.0 if hi >= 0 else -hi), max(-lo, hi)
    if lo < 0:
        return unknown
    def pw(v: float) -> float:
        if v == 0:
            return 0.0 if q > 0 else math.inf
        if math.isinf(v):
            return math.inf if q > 0 else 0.0
        try:
            return v ** q
        except OverflowError:
            return math.inf
    a, b = pw(lo), pw(hi)
    return (min(a, b), max(a, b))


class Temporary(sp.Symbol):
    """A name code generation gives a shared subexpression (CSE): it stands for a compound value and is
    ordered as one (:func:`compound_first`), so that naming a subexpression does not reorder the
    floating-point operations the regime scorer measured."""


def compound_first(items: list) -> list:
    """Compound values (and temporaries naming them) before plain symbols (x, parameters), otherwise in
    their order."""
    def plain(a):
        return a.is_Symbol and not isinstance(a, Temporary)

    return [a for a in items if not plain(a)] + [a for a in items if plain(a)]
