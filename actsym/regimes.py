"""Accuracy regimes (after Herbie, Panchekha et al., PLDI 2015): rewrite a generated function where its
direct formula loses bits or overflows, and keep a rewrite only where *measurement* says it is better.

For one function g(x; theta) (f, df/dx or a df/dtheta, after stabilisation and singularity patches):

1. **Screen.** g is evaluated in float32 and float64 (NumPy, with the operations the generated code uses) at points
   spread log-uniformly over the whole float range; if both agree and are finite everywhere, g is kept as it
   is and nothing else runs (the common case: a few milliseconds).
2. **Measure.** Otherwise the exact values come from mpmath at adaptive precision, and g and every
   candidate rewrite are scored per point in bits of error (float32 + float64; an inf/NaN where the exact
   value is finite and representable costs 64 bits).
3. **Candidates** are identities, valid for every parameter value:

   * *exponential normal form*: a ratio whose denominator holds exponentials (sinh/cosh/tanh/sigmoid written
     as exponentials) divided through by its dominant exponential exp(M), one candidate per exponent M
     (``x*exp(x)/(exp(x) + 2)`` -> ``x/(1 + 2*exp(-x))``); ``log(S)`` written ``M + log(S*exp(-M))``;
   * *log-space products*: a product of exponentials and sigmoids as one ``exp(sum of logs)``
     (``x*exp(x)*sigmoid(-2*exp(x))``: no inf*0);
   * *conjugates*: ``a + sqrt(c)`` as ``(a**2 - c)/(a - sqrt(c))`` with the numerator expanded (the
     cancellation of ``x + sqrt(x**2 + b)`` at x -> -oo is gone: ``-b/(x - sqrt(x**2 + b))``);
   * *scaled roots*: ``sqrt(P(x))`` with P of even degree 2d as ``|x|**d*sqrt(P/x**(2d))`` (no x**2 overflow);
   * any alternative forms the caller passes (the unsimplified derivative: simplification is accepted only
     where it does not lose accuracy).
4. **Regimes.** A dynamic programme over the sorted points picks at most :data:`MAX_REGIMES` intervals of x,
   each with its best candidate (a split must save :data:`SPLIT_PENALTY` bits); each boundary is refined by
   bisection between the two samples and rounded to a short decimal. The result is
   ``Piecewise((g1, x < t1), (g2, x < t2), ..., (gk, True))`` -- lowered like any user Piecewise (masked
   inputs, so no inf/NaN of an unselected regime reaches a gradient).

The final code is still checked against the independent oracle (:mod:`actsym.verify`) and the accuracy meter
(:mod:`actsym.accuracy`); this module only chooses.
"""

from __future__ import annotations

import math
import time

import numpy as np
import scipy.special as _sps
import sympy as sp

from actsym.functions import expm1, log1p, logabs, sigmoid, softplus
from actsym.numerics import add_plan, exact_value, guarded_lambdify, mul_plan

#: A limit at infinity replaces a function only at |x| >= TAIL (and only beyond where it is lost).
TAIL = 1e6
#: At most this many intervals of x with different formulas.
MAX_REGIMES = 4
#: Bits (summed over the sample, float32 + float64) a split must save.
SPLIT_PENALTY = 48.0
#: Bits a different form (even without a split) must save to replace the function.
SWITCH_PENALTY = 24.0
#: Errors up to this many bits at a point are rounding noise, not a reason to choose a form.
NOISE_BITS = 2.0
#: Cost of an inf/NaN where the exact value is finite (and of any error beyond it).
WORST = 64.0
#: Cost of a logabs form where its argument is 0 or inf (its derivatives are not finite there).
LOGABS_PENALTY = WORST / 2
#: Candidates larger than this many operations (or than 4x the original) are not considered.
MAX_OPS = 400
#: Seconds for the whole search of one function (past it, the function is kept as it is).
REGIME_SECONDS = 5
#: Seconds for generating one candidate (SymPy's together/expand can blow up).
CANDIDATE_SECONDS = 2
F32_MAX = float(np.finfo(np.float32).max)
F32_TINY = float(np.finfo(np.float32).tiny)


class _Unsupported(Exception):
    pass


# ------------------------------------------------------------------------------------------------------
# sample points
# ------------------------------------------------------------------------------------------------------


def sample_points() -> np.ndarray:
    """Sorted float64 points: 0, magnitudes log-uniform over [1e-300, 1e300] and denser over [1e-3, 1e3] (the
    training range), both signs; points inside float32's range are float32 numbers (one exact value serves
    both dtypes)."""
    mags = np.concatenate([10.0 ** np.linspace(-300, 300, 41), 10.0 ** np.linspace(-3, 3, 49),
                           np.array([0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 15.0, 30.0, 60.0, 90.0, 150.0, 400.0,
                                     750.0]),
                           # the top of each format, where a constant factor alone overflows (25*x at 1e37)
                           np.array([1e19, 1e35, 1e37, 1e38, 3e38, 1e305, 1e307, 1e308])])
    pts = np.concatenate([[0.0], mags, -mags])
    mid = (np.abs(pts) < F32_MAX) & (np.abs(pts) >= F32_TINY)
    pts[mid] = pts[mid].astype(np.float32).astype(np.float64)
    sub32 = np.array([2.0**-149, 1e-40, 1e-39], dtype=np.float32).astype(np.float64)  # float32 subnormals
    return np.unique(np.concatenate([pts, sub32, -sub32]))


def special_points(expr: sp.Expr, x: sp.Symbol) -> np.ndarray:
    """Points where ``expr``'s own structure changes, and their neighbours: the roots of every parameter-free
    condition (``x < 3``, ``Abs(x - pi) < 0.038`` -- the centre of a Taylor patch and its two edges), each
    with neighbours at 1e-2, 1e-4 and 1e-7 of its scale on both sides. The generic samples rarely fall
    inside a patch's interval, and a rewrite that ruins the patch must be measured there."""
    roots: set[float] = set()
    for rel in expr.atoms(sp.core.relational.Relational):
        if rel.free_symbols != {x}:
            continue
        d = rel.lhs - rel.rhs
        for u in [d, *(a.args[0] for a in d.atoms(sp.Abs))]:
            roots |= _linear_roots(u, x)
        k, rest = d.as_independent(x, as_Add=True)
        if isinstance(rest, sp.Abs) and k.is_number:  # |u| = -k
            for side in (-k, k):
                roots |= _linear_roots(rest.args[0] + side, x)
    out = []
    for r in roots:
        scale = max(1.0, abs(r))
        out.append(r)
        for h in (1e-2, 1e-4, 1e-7):
            out += [r - h * scale, r + h * scale]
    pts = np.array([v for v in out if math.isfinite(v) and abs(v) < F32_MAX], dtype=np.float64)
    return np.unique(pts.astype(np.float32).astype(np.float64))


def _linear_roots(u: sp.Expr, x: sp.Symbol) -> set[float]:
    try:
        poly = sp.Poly(u, x)
    except (sp.PolynomialError, sp.GeneratorsNeeded):
        return set()
    if poly.degree() != 1:
        return set()
    c1, c0 = poly.all_coeffs()
    try:
        return {float(-c0 / c1)}
    except (TypeError, ValueError, ZeroDivisionError):
        return set()


def _in32(pts: np.ndarray) -> np.ndarray:
    """The points that are float32 numbers (scored in float32 too)."""
    with np.errstate(over="ignore"):
        return (np.abs(pts) < F32_MAX) & (pts.astype(np.float32).astype(np.float64) == pts)


# ------------------------------------------------------------------------------------------------------
# numeric evaluation (NumPy, the operations the generated code uses)
# ------------------------------------------------------------------------------------------------------

def _sigmoid(u):
    return _sps.expit(u)


def _softplus(u):  # as torch's softplus(u, threshold=40)
    return np.where(u > 40, u, np.log1p(np.exp(np.minimum(u, 40))))


def _ndtr(u):  # as the generated code: 0.5*erfc(-u/sqrt(2))
    return u.dtype.type(0.5) * _sps.erfc(u * u.dtype.type(-0.7071067811865476))


_UNARY = {
    "exp": np.exp, "log": np.log, "sin": np.sin, "cos": np.cos, "tan": np.tan, "tanh": np.tanh,
    "sinh": np.sinh, "cosh": np.cosh, "atan": np.arctan, "asinh": np.arcsinh, "erf": _sps.erf,
    "erfc": _sps.erfc, "Abs": np.abs, "sign": np.sign, "sigmoid": _sigmoid, "log1p": np.log1p,
    "expm1": np.expm1, "softplus": _softplus, "ndtr": _ndtr, "logabs": lambda u: np.log(np.abs(u)),
}
_COMPARE = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal, "==": np.equal,
            "!=": np.not_equal}


def evaluate(expr: sp.Basic, env: dict, dtype) -> np.ndarray:
    """``expr`` over numpy arrays of ``dtype`` (np.float32 or np.float64; every symbol in ``env``), with the
    operations the generated code uses; raises :class:`_Unsupported` for unknown nodes. (NumPy, not torch:
    this runs inside the forked budget worker, where torch's thread pools are not safe to use.)"""
    dtype = np.dtype(dtype).type
    memo: dict = {}

    def ev(e):
        if e in memo:
            return memo[e]
        v = _ev(e)
        memo[e] = v
        return v

    def const(v):
        return dtype(v)

    def _ev(e):
        if e.is_Symbol:
            if e not in env:
                raise _Unsupported(f"symbol {e}")
            return env[e]
        if e is sp.true or e is sp.false:
            return np.bool_(bool(e))
        if isinstance(e, sp.Expr) and e.is_number:
            try:
                c = complex(e.evalf(30))
            except (TypeError, ValueError, OverflowError):
                return const(math.nan)
            return const(c.real if c.imag == 0 else math.nan)
        if e.is_Add:  # in the generated code's order (actsym.numerics.add_plan)
            plan = add_plan(e)
            (sign, first), *rest = plan.terms
            c = plan.const
            if plan.const_first:
                out = const(c) - ev(first)
                c = None
            else:
                out = ev(first) if sign > 0 else -ev(first)
            for sign, t in rest:
                out = out + ev(t) if sign > 0 else out - ev(t)
            return out if c is None else out + const(c)
        if e.is_Mul:  # in the generated code's order (actsym.numerics.mul_plan)
            plan = mul_plan(e)
            out = None
            for i, a in enumerate(plan.factors):
                out = ev(a) if out is None else out * ev(a)
                if i == 0 and plan.leading:
                    out = out * const(plan.coef)
            if plan.denominators:
                d = ev(plan.denominators[0])
                for a in plan.denominators[1:]:
                    d = d * ev(a)
                out = const(1) / d if out is None else out / d
            if plan.coef is not None and not plan.leading:
                out = const(plan.coef) if out is None else out * const(plan.coef)
            if out is None:
                out = const(1)
            return -out if plan.negate else out
        if e.is_Pow:
            b, p = e.args
            if b == sp.E:
                return np.exp(ev(p))
            if p.is_number:
                bb = ev(b)
                if p == 2:
                    return bb * bb
                if p == sp.S.Half:
                    return np.sqrt(bb)
                if p == -sp.S.Half:
                    return const(1) / np.sqrt(bb)
                if p == -1:
                    return const(1) / bb
                return np.power(bb, const(float(p)))
            return np.power(ev(b), ev(p))
        if e.is_Relational:
            op = _COMPARE.get(e.rel_op)
            if op is None:
                raise _Unsupported(e.rel_op)
            return op(ev(e.lhs), ev(e.rhs))
        if isinstance(e, (sp.And, sp.Or)):
            f = np.logical_and if isinstance(e, sp.And) else np.logical_or
            out = ev(e.args[0])
            for a in e.args[1:]:
                out = f(out, ev(a))
            return out
        if isinstance(e, sp.Not):
            return np.logical_not(ev(e.args[0]))
        if isinstance(e, sp.Piecewise):
            *pairs, (last, _) = e.args
            out = ev(last)
            for value, cond in reversed(pairs):
                out = np.where(ev(cond), ev(value), out)
            return out
        if isinstance(e, (sp.Max, sp.Min)):
            f = np.maximum if isinstance(e, sp.Max) else np.minimum
            out = ev(e.args[0])
            for a in e.args[1:]:
                out = f(out, ev(a))
            return out
        if isinstance(e, sp.exp):
            return np.exp(ev(e.args[0]))
        fn = _UNARY.get(type(e).__name__)
        if fn is None or len(e.args) != 1:
            raise _Unsupported(type(e).__name__)
        return fn(np.asarray(ev(e.args[0]), dtype=dtype))

    with np.errstate(all="ignore"):
        out = np.asarray(ev(expr))
    if out.dtype == np.bool_:
        raise _Unsupported("a condition, not a value")
    return out.astype(dtype, copy=False)


def _values(expr, x, params, pvals, pts, dtype) -> np.ndarray:
    np_dtype = dtype
    n = len(pts)
    with np.errstate(over="ignore"):
        env = {x: np.asarray(pts, dtype=np.float64).astype(np_dtype)}
    for p, v in zip(params, pvals):
        env[p] = np.full(n, v, dtype=np_dtype)
    out = evaluate(expr, env, np_dtype)
    return np.broadcast_to(out, (n,)).astype(np.float64)


# ------------------------------------------------------------------------------------------------------
# scoring
# ------------------------------------------------------------------------------------------------------


def _bits(got: np.ndarray, exact: np.ndarray, dtype) -> np.ndarray:
    """Bits of error per point; 0 where the exact value is unknown or not representable in ``dtype``, and
    where exact and result are both below the smallest normal number (an underflow, not a lost digit)."""
    info = np.finfo(np.float32 if dtype == np.float32 else np.float64)
    known = np.isfinite(exact) & (np.abs(exact) <= float(info.max))
    with np.errstate(all="ignore"):
        spacing = np.spacing(np.abs(exact).astype(info.dtype)).astype(np.float64)
        ulps = np.abs(got - exact) / spacing
        bits = np.minimum(np.log2(1 + ulps), WORST)
        underflow = (np.abs(exact) < float(info.tiny)) & (np.abs(got) < float(info.tiny))
    bits = np.where(np.isfinite(got), np.where(underflow, 0.0, bits), WORST)
    return np.where(known, bits, 0.0)


_UNSET = object()


class _Scorer:
    def __init__(self, x, params, pvals, pts, exact, original=None):
        self.x, self.params, self.pvals, self.pts, self.exact = x, params, pvals, pts, exact
        self.in32 = _in32(pts)
        self.original = original
        self._derivs: dict = {}
        self._original_ok = _UNSET  # the original's finite-slope mask at self.pts, once computed
        self._original_values = None  # the original's finite-value mask at self.pts, once computed

    def _original_slope(self, pts):
        """_finite_slope of the original (None if it cannot be evaluated), once for the sample points: every
        candidate is compared with it."""
        if pts is self.pts and self._original_ok is not _UNSET:
            return self._original_ok
        try:
            want = self._finite_slope(self.original, pts)
        except (_Unsupported, RuntimeError, TypeError, ValueError):
            want = None
        if pts is self.pts:
            self._original_ok = want
        return want

    def _tail(self, pts) -> np.ndarray:
        """The points at or beyond (on their side of 0) the innermost point with |x| >= TAIL where the
        original's value is non-finite."""
        lost = ~self._original_finite(pts) & (np.abs(pts) >= TAIL)
        ok = np.zeros(len(pts), bool)
        if (lost & (pts > 0)).any():
            ok |= pts >= pts[lost & (pts > 0)].min()
        if (lost & (pts < 0)).any():
            ok |= pts <= pts[lost & (pts < 0)].max()
        return ok

    def _original_finite(self, pts) -> np.ndarray:
        """Where the original's value is finite in float64 and (inside its range) float32."""
        if pts is self.pts and self._original_values is not None:
            return self._original_values
        try:
            ok = np.isfinite(_values(self.original, self.x, self.params, self.pvals, pts, np.float64))
            in32 = _in32(pts)
            if in32.any():
                ok[in32] &= np.isfinite(_values(self.original, self.x, self.params, self.pvals, pts[in32],
                                                np.float32))
        except (_Unsupported, RuntimeError, TypeError, ValueError):
            ok = np.ones(len(pts), bool)
        if pts is self.pts:
            self._original_values = ok
        return ok

    def _finite_slope(self, expr, pts) -> np.ndarray:
        """Where d(expr)/dx evaluates finite, in float64 and (inside its range) float32. The generated code
        of a function is differentiated by autograd (double backward, torch.func), so a form that is right
        only through inf arithmetic (``x/sqrt(1 + x**-4)`` at 0: 0*inf in its derivative) must not be
        chosen where the original's derivative is finite."""
        d = self._derivs.get(expr)
        if d is None:
            # autograd's derivative of sign/Heaviside is 0: SymPy's Dirac deltas are dropped, as in actsym.derive
            d = self._derivs[expr] = sp.diff(expr, self.x).replace(lambda t: isinstance(t, sp.DiracDelta),
                                                                  lambda t: sp.S.Zero)
        ok = np.isfinite(_values(d, self.x, self.params, self.pvals, pts, np.float64))
        in32 = _in32(pts)
        if in32.any():
            ok[in32] &= np.isfinite(_values(d, self.x, self.params, self.pvals, pts[in32], np.float32))
        return ok

    def __call__(self, expr, pts=None, exact=None) -> np.ndarray:
        pts = self.pts if pts is None else pts
        exact = self.exact if exact is None else exact
        in32 = _in32(pts)
        c64 = _bits(_values(expr, self.x, self.params, self.pvals, pts, np.float64), exact, np.float64)
        v32 = np.full(len(pts), np.nan)
        if in32.any():
            v32[in32] = _values(expr, self.x, self.params, self.pvals, pts[in32], np.float32)
        c32 = np.where(in32, _bits(v32, exact, np.float32), 0.0)
        cost = np.maximum(c64 - NOISE_BITS, 0.0) + np.maximum(c32 - NOISE_BITS, 0.0)
        # log|u| at u = 0 (or inf) gives the right value (exp(-inf) = 0) but 1/u = inf in every derivative:
        # a form with logabs is chosen where its argument vanishes only if every other one gets the value
        # itself wrong there (a NaN value costs more than a NaN second derivative: LOGABS_PENALTY < WORST)
        for la in expr.atoms(logabs):
            u = _values(la.args[0], self.x, self.params, self.pvals, pts, np.float64)
            cost = cost + np.where(np.isfinite(u) & (u != 0), 0.0, LOGABS_PENALTY)
        if self.original is not None and not expr.has(self.x):
            # a limit at infinity (an approximation, not an identity): only in a far tail (|x| >= TAIL) from
            # the innermost point out where the original's value is lost (non-finite) -- the parameters move
            # in training, and the limit is exact only far out
            cost = cost + np.where(self._tail(pts), 0.0, 4 * WORST)
        if self.original is not None and expr != self.original:
            want = self._original_slope(pts)
            if want is not None and want.any():
                try:
                    got = self._finite_slope(expr, pts)
                except (_Unsupported, RuntimeError, TypeError, ValueError):
                    got = np.zeros(len(pts), bool)  # a slope that cannot be evaluated is not trusted
                cost = cost + np.where(want & ~got, 2 * WORST, 0.0)
        return cost


def _screen_ok(expr, x, params, pvals, pts) -> bool:
    """True if float32 and float64 agree to a few bits and are finite wherever float64 is finite (a cheap
    stand-in for the exact values: cancellation and overflow show up as a disagreement somewhere)."""
    v64 = _values(expr, x, params, pvals, pts, np.float64)
    in32 = _in32(pts)
    v32 = _values(expr, x, params, pvals, pts[in32], np.float32)
    if not np.isfinite(v64).all():
        return False
    ref = v64[in32]
    ok32 = np.abs(ref) <= F32_MAX
    bits = _bits(v32[ok32], ref[ok32], np.float32)
    return bool((bits <= 4).all())


# ------------------------------------------------------------------------------------------------------
# candidate rewrites (identities)
# ------------------------------------------------------------------------------------------------------

_HYPERBOLIC = (sp.sinh, sp.cosh, sp.tanh, sp.sech, sp.csch, sp.coth)


def _positive_power(t: sp.Basic) -> bool:
    """b**e with a symbolic exponent and a base that is never negative (|u|, exp, sqrt...): exp(e*log(b))."""
    return t.is_Pow and not t.exp.is_number and t.base.is_nonnegative is True and t.base != sp.E


def _to_exp(e: sp.Expr, sigmoids: bool) -> sp.Expr:
    e = e.replace(lambda t: isinstance(t, _HYPERBOLIC), lambda t: t.rewrite(sp.exp))
    e = e.replace(_positive_power, lambda t: sp.exp(t.exp * sp.log(t.base)))
    if sigmoids:
        e = e.replace(lambda t: isinstance(t, sigmoid), lambda t: 1 / (1 + sp.exp(-t.args[0])))
    return e.replace(lambda t: isinstance(t, expm1), lambda t: sp.exp(t.args[0]) - 1)


def _exponent(term: sp.Expr) -> sp.Expr:
    """The total exponent of the exponential factors of a product (0 if none)."""
    t = sp.powsimp(term, combine="exp")
    return sp.Add(*[f.args[0] for f in sp.Mul.make_args(t) if isinstance(f, sp.exp)])


def _dominant(exponents: list[sp.Expr], x, subs: dict) -> list[sp.Expr]:
    """The exponents that are largest as x -> +oo, x -> -oo and x -> 0 (powers of |x| are exponentials of
    log|x|), at the parameters' values."""
    out = []
    for far in (60.0, -60.0, 1e4, -1e4, 1e-30):
        best, best_v = None, -math.inf
        for m in exponents:
            try:
                v = float(m.subs(subs).subs(x, far).evalf(20))
            except (TypeError, ValueError, OverflowError):
                continue
            if v > best_v:
                best, best_v = m, v
        if best is not None and best not in out:
            out.append(best)
    return out


def _divide_through(num, den, m):
    def scaled(e):
        return sp.Add(*[sp.powsimp(t * sp.exp(-m), combine="exp") for t in sp.Add.make_args(sp.expand(e))])

    return scaled(num) / scaled(den)


def exp_normal_forms(e: sp.Expr, x, subs: dict) -> list[sp.Expr]:
    out = []
    for sigmoids in (False, True):
        w = _to_exp(e, sigmoids)
        if not w.has(sp.exp):
            continue
        # logs of sums of exponentials
        for lg in sorted(w.atoms(sp.log), key=sp.count_ops):
            s = sp.expand(lg.args[0])
            ms = _dominant([_exponent(t) for t in sp.Add.make_args(s)], x, subs)
            for m in ms:
                if m == 0:
                    continue
                inner = sp.Add(*[sp.powsimp(t * sp.exp(-m), combine="exp") for t in sp.Add.make_args(s)])
                out.append(w.xreplace({lg: m + sp.log(inner)}))
        # the ratio
        num, den = sp.fraction(sp.together(w))
        if den.has(sp.exp):
            ms = _dominant([_exponent(t) for t in sp.Add.make_args(sp.expand(den))], x, subs)
            out += [_divide_through(num, den, m) for m in ms]
        elif num.has(sp.exp):
            out.append(_log_space(w, x, False))
    return out


def _log_abs(base: sp.Expr, x: sp.Symbol, scaled: bool) -> sp.Expr:
    """log|base|; ``scaled``: a polynomial P of degree d >= 1 with several terms as d*log|x| + log|P/x**d|
    (no overflow of P itself at huge |x|: log|0.13*x**2 + 1| at x = 1e165 is 2*log|x| + log|0.13 + x**-2|)."""
    if scaled and base.is_Add:
        try:
            d = sp.Poly(base, x).degree()
        except sp.PolynomialError:
            d = 0
        if d >= 1:
            return d * logabs(x) + logabs(sp.expand(base / x**d))
    return logabs(base)


def _log_space(e: sp.Expr, x: sp.Symbol, powers: bool, scaled: bool = False) -> sp.Expr:
    """Products of exponentials and sigmoids (times anything) as one exponential of the sum of their logs;
    with ``powers``, integer powers of x-dependent factors join too (``x**2*sigmoid(x)*sigmoid(-x)`` at
    x = 1e300 is inf*0; ``sign(x)**2*exp(2*log|x| - softplus(-x) - softplus(x))`` is 0); ``scaled``: the log
    of a polynomial factor is taken without forming the polynomial (:func:`_log_abs`)."""

    def fold(m):
        logs, rest = [], []
        for f in m.args:
            if isinstance(f, sp.exp):
                logs.append(f.args[0])
            elif isinstance(f, sigmoid):
                logs.append(-softplus(-f.args[0]))
            elif f.is_Pow and isinstance(f.base, sigmoid) and f.exp.is_Integer:
                logs.append(-f.exp * softplus(-f.base.args[0]))
            elif f.is_Pow and isinstance(f.base, sp.exp):  # exp(u)**b = exp(b*u) for real u, any b
                logs.append(f.exp * f.base.args[0])
            else:
                rest.append(f)
        if not powers and len(logs) < 2:
            return m
        if powers:
            joining = [f for f in rest if _joins(f, x)]
            # without an exponential, only a ratio of powers (x*softplus(x)/(x + c*exp(-x)) at x = 1e20 is
            # inf/inf; its log-space form is finite)
            if not logs and not (len(joining) >= 2 and any(f.as_base_exp()[1] < 0 for f in joining)):
                return m
            kept = []
            for f in rest:
                if f in joining:
                    base, k = f.as_base_exp()
                    logs.append(k * _log_abs(base, x, scaled))
                    if k % 2:
                        kept.append(sp.sign(base))
                else:
                    kept.append(f)
            rest = kept
        if len(logs) < 2:
            return m
        return sp.Mul(*rest) * sp.exp(sp.Add(*logs), evaluate=False)

    return e.replace(lambda t: t.is_Mul, fold)


def _joins(f: sp.Expr, x) -> bool:
    base, k = f.as_base_exp()
    return bool(k.is_Integer and base.has(x) and not isinstance(base, (sp.Abs, sp.sign)))


def log_space_products(e: sp.Expr, x, subs: dict) -> list[sp.Expr]:
    out = [_log_space(e, x, False), _log_space(e, x, True), _log_space(e, x, True, scaled=True)]
    w = _to_exp(e, sigmoids=False)
    if w != e:
        out.append(_log_space(w, x, False))
    return out


def common_denominator(e: sp.Expr, x, subs: dict) -> list[sp.Expr]:
    """The sum over one denominator with the numerator expanded: ``1/(|x| + 1) - |x|/(|x| + 1)**2`` is
    ``1/(|x| + 1)**2`` (the difference cancels to no digit at |x| = 1e150)."""
    from actsym.rewrite import stabilize

    num, den = sp.fraction(sp.together(e))
    c = stabilize(sp.expand(num)) / den
    return [c] if c != e else []


def taylor_at_zero(e: sp.Expr, x, subs: dict) -> list[sp.Expr]:
    """The Taylor polynomial at 0 (12 terms): where f has a root or a cancellation at 0 (``x - tanh(x)``,
    ``softplus(x) - log(2)``), chosen only in a regime around 0 where measurement says it is better. Not
    an identity: the regime search keeps it only where its error is below the direct formula's."""
    from actsym.derive import _plain
    from actsym.rewrite import stabilize

    if any(k.has(x) for k in e.atoms(sp.Abs, sp.sign, sp.Heaviside, sp.Piecewise, sp.Max, sp.Min)):
        return []
    s = sp.series(_plain(e), x, 0, 12).removeO()
    if s.has(sp.Order) or not s.is_polynomial(x) or s == 0:
        return []
    return [stabilize(sp.expand(s))]


def _root_terms(add: sp.Expr, x) -> list[sp.Expr]:
    return [t for t in add.args if any(isinstance(f, sp.Pow) and f.exp == sp.S.Half and f.base.has(x)
                                       for f in sp.Mul.make_args(t))]


def conjugates(e: sp.Expr, x, subs: dict) -> list[sp.Expr]:
    """``a + k*sqrt(c)`` as ``(a**2 - k**2*c)/(a - k*sqrt(c))``; a sum with a root in a denominator
    (``1/2 + x/(2*sqrt(x**2 + b))``) is brought over one denominator first."""
    out = []
    for add in e.atoms(sp.Add):
        if not any(isinstance(p, sp.Pow) and abs(p.exp) == sp.S.Half and p.base.has(x) for p in add.atoms(sp.Pow)):
            continue
        num, den = sp.fraction(sp.together(add))
        num = sp.expand(num)
        if not num.is_Add:
            continue
        roots = _root_terms(num, x)
        if len(roots) != 1:
            continue
        r = roots[0]
        a = num - r
        if a == 0 or not a.has(x):
            continue
        top = sp.expand(a**2 - r**2)
        if sp.count_ops(top) > sp.count_ops(num) + 4:
            continue
        out.append(e.xreplace({add: top / ((a - r) * den)}))
    return out


def scaled_roots(e: sp.Expr, x, subs: dict) -> list[sp.Expr]:
    """``P(x)**q`` (q not an integer: sqrt, ``**(3/2)``, ...) with P a polynomial of even degree 2d as
    ``|x|**(2dq)*(P/x**(2d))**q``: no overflow of x**(2d) at large |x|; then ``x**m*|x|**k`` in a product as
    ``sign(x)**m*|x|**(m + k)`` (``x**3/(a*x**2 + 1)**(3/2)`` is ``sign(x)/(a + x**-2)**(3/2)``)."""
    reps = {}
    for p in e.atoms(sp.Pow):
        q = p.exp
        if not (q.is_Rational and not q.is_Integer) or not p.base.has(x):
            continue
        try:
            poly = sp.Poly(p.base, x)
        except sp.PolynomialError:
            continue
        deg = poly.degree()
        if deg < 2 or deg % 2:
            continue
        reps[p] = sp.Abs(x) ** (deg * q) * sp.expand(p.base / x**deg) ** q
    if not reps:
        return []
    return [_merge_abs_powers(e.xreplace(reps), x)]


def _merge_abs_powers(e: sp.Expr, x) -> sp.Expr:
    def merge(m):
        m_exp, k_exp, rest = 0, 0, []
        for f in m.args:
            base, k = f.as_base_exp()
            if base == x and k.is_Integer:
                m_exp += int(k)
            elif base == sp.Abs(x):
                k_exp += k
            else:
                rest.append(f)
        if not m_exp or not k_exp:
            return m
        return sp.Mul(*rest) * sp.sign(x) ** (m_exp % 2) * sp.Abs(x) ** (m_exp + k_exp)

    return e.replace(lambda t: t.is_Mul, merge)


def log1p_forms(e: sp.Expr, x, subs: dict) -> list[sp.Expr]:
    """``log(S)`` as ``log1p(S - 1)`` with ``S - 1`` expanded and stabilised (``cosh(x) - 1`` is
    ``2*sinh(x/2)**2``): no cancellation where S is close to 1."""
    from actsym.rewrite import stabilize

    reps = {}
    for lg in e.atoms(sp.log):
        if lg.args[0].has(x):
            reps[lg] = log1p(stabilize(sp.expand(lg.args[0] - 1)))
    return [e.xreplace(reps)] if reps else []


def combined_powers(e: sp.Expr, x, subs: dict) -> list[sp.Expr]:
    """Powers of one base combined: ``|x|**a/|x|`` as ``|x|**(a - 1)`` (|x|**a underflows first)."""
    c = sp.powsimp(e, combine="exp")
    return [c] if c != e else []


def limits_at_infinity(e: sp.Expr, x, subs: dict) -> list[sp.Expr]:
    """The limits of e at x -> +oo and -oo where they exist (constants, maybe in the parameters): a candidate
    for the far tails only, where the direct formula is lost to an overflowing intermediate that the value
    does not depend on (``exp(-s**2*x**2)*cos(w*x)`` at x = 1e37: cos(inf) is NaN, the product is 0)."""
    from actsym.derive import _plain

    if e.has(sp.Piecewise, sp.Max, sp.Min, sp.Heaviside):
        return []
    # each parameter with the sign of its value (SymPy's limit may depend on it: exp(-s**2*x**2) needs s != 0)
    signed = {}
    for p, v in subs.items():
        if v == 0:
            return []
        signed[p] = sp.Dummy(p.name, positive=True) if v > 0 else sp.Dummy(p.name, negative=True)
    back = {d: p for p, d in signed.items()}
    plain = _plain(e).xreplace(signed)
    out = []
    for end in (sp.oo, -sp.oo):
        try:
            lim = sp.limit(plain, x, end)
        except (NotImplementedError, ValueError, TypeError):
            continue
        if lim.is_finite and not lim.has(x, sp.AccumBounds, sp.nan) and lim.xreplace(back) not in out:
            out.append(lim.xreplace(back))
    return out


GENERATORS = (combined_powers, exp_normal_forms, log_space_products, common_denominator, conjugates, scaled_roots,
              log1p_forms, limits_at_infinity, taylor_at_zero)


def candidates(e: sp.Expr, x, subs: dict, alternatives=(), near_zero: bool = True) -> list[sp.Expr]:
    """``e``, the alternatives and every generator's rewrites of each (``near_zero``: the Taylor polynomial
    at 0 too -- the slowest generator, and of use only where the direct formula is inaccurate near 0)."""
    from actsym.derive import _ANALYSIS_ERRORS, time_budget

    generators = [g for g in GENERATORS if near_zero or g is not taylor_at_zero]

    limit = min(MAX_OPS, 4 * sp.count_ops(e) + 60)
    seeds = [e, *[a for a in alternatives if a != e]]
    out: list[sp.Expr] = list(seeds)
    def run(gen, v):
        _check_time()
        try:
            with time_budget(CANDIDATE_SECONDS):
                return [c for c in gen(v, x, subs) if sp.count_ops(c) <= limit]
        except (*_ANALYSIS_ERRORS, AttributeError, KeyError):
            return []

    for base in seeds:  # the Taylor polynomial is one function's, whatever the form: taken of e only
        for gen in (generators if base is e else [g for g in generators if g is not taylor_at_zero]):
            out += [c for c in run(gen, base) if c not in out]
            if isinstance(base, sp.Piecewise):  # each branch on its own (a Taylor polynomial of one branch)
                if gen is taylor_at_zero and any(v.has(x) and v.is_polynomial(x) for v, _ in base.args):
                    continue  # already patched near a point with a polynomial (a removable singularity)
                if gen is limits_at_infinity:
                    continue  # a constant is not an identity: only as a whole function's tail (see _Scorer)
                per_branch = [run(gen, v) for v, _ in base.args]
                for i in range(max(map(len, per_branch), default=0)):  # the i-th rewrite of every branch
                    pieces = [(outs[i] if i < len(outs) else v, c) for outs, (v, c) in zip(per_branch, base.args)]
                    new = sp.Piecewise(*pieces)
                    if new != base and new not in out and sp.count_ops(new) <= limit:
                        out.append(new)
    # one more round for the roots (a conjugate whose square overflows: scale its roots too)
    for c in list(out[len(seeds):]):
        try:
            with time_budget(CANDIDATE_SECONDS):
                out += [s for s in scaled_roots(c, x, subs) if s not in out]
        except _ANALYSIS_ERRORS:
            continue
    return out


# ------------------------------------------------------------------------------------------------------
# regimes
# ------------------------------------------------------------------------------------------------------


def _first_f32_above(lo: float) -> float:
    """The smallest float32 number > lo (inf past float32's range)."""
    with np.errstate(over="ignore"):
        f = np.float32(lo)
        if float(f) <= lo:
            f = np.nextafter(f, np.float32(np.inf))
    return float(f)


def _split_ok(lo: float, hi: float) -> bool:
    """A split between samples lo < hi that float32 code sees too: a finite float32 number lies in (lo, hi]
    (a boundary or a safe point beyond float32's range cannot even be written in float32 code)."""
    f = _first_f32_above(lo)
    return math.isfinite(f) and f <= hi


def _segments(costs: np.ndarray, allowed: np.ndarray | None = None) -> tuple[float, list[tuple[int, int]]]:
    """Best split of the points (columns) into at most MAX_REGIMES runs with one candidate (row) each:
    (total cost with penalties, [(candidate, first column of its run), ...]); a run may start at column j
    only where ``allowed[j]``."""
    k, n = costs.shape
    if allowed is None:
        allowed = np.ones(n + 1, dtype=bool)
    pre = np.concatenate([np.zeros((k, 1)), np.cumsum(costs, axis=1)], axis=1)  # pre[c, i] = cost of [0, i)
    best = {1: (pre[:, n].min(), [(int(pre[:, n].argmin()), 0)])}
    # dp[s][i]: best cost of the first i points with s runs, and the choices
    dp = {1: [(float(pre[:, i].min()), [(int(pre[:, i].argmin()), 0)]) for i in range(n + 1)]}
    for s in range(2, MAX_REGIMES + 1):
        row = [(math.inf, [])] * (n + 1)
        for i in range(1, n + 1):
            bestv, bestc = math.inf, None
            for j in range(1, i):
                if not allowed[j]:
                    continue
                prev, choice = dp[s - 1][j]
                if not math.isfinite(prev):
                    continue
                seg = pre[:, i] - pre[:, j]
                c = int(seg.argmin())
                v = prev + seg[c]
                if v < bestv:
                    bestv, bestc = v, choice + [(c, j)]
            if bestc is not None:
                row[i] = (bestv, bestc)
        dp[s] = row
        best[s] = (row[n][0] + SPLIT_PENALTY * (s - 1), row[n][1])
    total, runs = min(best.values(), key=lambda t: t[0])
    merged: list[tuple[int, int]] = []
    for c, j in runs:
        if merged and merged[-1][0] == c:
            continue
        merged.append((c, j))
    return total, merged


def _short_between(lo: float, hi: float) -> float:
    """A number in (lo, hi] with as few significant digits as possible (``x < t`` then puts lo on the left
    and hi on the right)."""
    def inside(r):  # and still inside once the generated code rounds it to float32
        if abs(r) >= F32_MAX / 2:  # the safe points next to it must be float32 numbers too
            return False
        r32 = float(np.float32(r))
        return lo < r <= hi and lo < r32 <= hi

    for digits in range(1, 17):
        for v in (hi, (lo + hi) / 2, lo):
            r = float(f"{v:.{digits}g}")
            if inside(r):
                return r
    f = _first_f32_above(lo)
    return f if lo < f <= hi else hi


def _boundary(score, exact_fn, a, b, lo: float, hi: float) -> float:
    """Refine the switch from candidate a (left) to b (right) between samples lo < hi by bisection (kept
    inside float32's range where lo or hi is: float32 code must be able to write the boundary)."""
    top = float(np.finfo(np.float32).max)
    if abs(lo) <= top < hi:
        hi = top
    if lo < -top <= hi:
        lo = -top
    for _ in range(24):
        if lo > 0 and hi > 0 and hi / lo > 1.5:
            mid = math.sqrt(lo * hi)
        elif lo < 0 and hi < 0 and lo / hi > 1.5:
            mid = -math.sqrt(lo * hi)
        else:
            mid = (lo + hi) / 2
        mid = float(np.float32(mid)) if abs(mid) < F32_MAX else mid
        if not lo < mid < hi:
            break
        pts = np.array([mid])
        ex = np.array([exact_fn(mid)])
        if score(a, pts, ex)[0] <= score(b, pts, ex)[0]:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-3 * max(1.0, abs(lo), abs(hi)):
            break
    return _short_between(lo, hi)


def improve(expr: sp.Expr, x: sp.Symbol, params: list[sp.Symbol], pvals: list[float],
            alternatives=(), seconds: float | None = None) -> sp.Expr:
    """``expr`` (or an alternative), with accuracy regimes where measurement finds them worth it. Past
    ``seconds`` (default :data:`REGIME_SECONDS`) the search gives up and ``expr`` is kept."""
    from actsym.derive import _Timeout, time_budget

    if not expr.has(x) or expr.has(sp.nan, sp.zoo, sp.oo, -sp.oo):
        return expr
    global _DEADLINE
    limit = REGIME_SECONDS if seconds is None else seconds
    if limit < 0.05:
        return expr
    _DEADLINE = time.process_time() + limit  # CPU time: the same search on a loaded machine
    try:
        with time_budget(limit):
            return _improve(expr, x, params, pvals, alternatives)
    except (_Timeout, _OutOfTime):
        return expr
    finally:
        _DEADLINE = math.inf


class _OutOfTime(Exception):
    """The search's own deadline (checked between steps: an alarm can be swallowed by an inner handler that
    catches SymPy's timeouts, and then nothing else would stop the search)."""


_DEADLINE = math.inf


def _check_time() -> None:
    if time.process_time() > _DEADLINE:
        raise _OutOfTime


def _improve(expr, x, params, pvals, alternatives):
    pvals = [float(np.float32(v)) for v in pvals]
    pts = np.unique(np.concatenate([sample_points(), special_points(expr, x)]))
    try:
        if _screen_ok(expr, x, params, pvals, pts):
            return expr
    except (_Unsupported, RuntimeError, TypeError, ValueError):
        return expr
    if callable(alternatives):  # computed only when the screen finds something to improve
        alternatives = alternatives()
    fns = []
    for form in [expr, *alternatives]:  # identities: where one cannot be evaluated (an mpmath overflow of
        try:  # log((5/2)**(10**(x**2/2))) at x = 10) another may
            fns.append(guarded_lambdify([x, *params], form))
        except Exception:  # noqa: BLE001, S112 - no mpmath spelling: not a reference
            continue
    if not fns:
        return expr

    def exact_fn(x0: float) -> float:
        _check_time()
        for fn in fns:
            v = exact_value(fn, x0, pvals)
            if v is not None:
                return _clip(v)
        return math.nan

    result = _choose(expr, x, params, pvals, alternatives, exact_fn, pts)
    return _patch_zero(result, expr, x, params, pvals, exact_fn(0.0))


def _patch_zero(e: sp.Expr, original: sp.Expr, x, params, pvals, exact0: float) -> sp.Expr:
    """``e`` at x = 0 exactly as its limit where it is 0*log(0) or the like there (NaN, exact value
    finite): ``-log|x|*|x|**a/(|x|**a + 1)**2`` (d/da of 1/(1 + |x|**a)). The limit is taken with each
    parameter of the sign of its value (it may depend on it) and used only while the parameters keep it;
    it is taken of ``original`` (the same function before regimes were chosen)."""
    if not math.isfinite(exact0):
        return e
    env = {x: np.zeros(1), **{p: np.full(1, v) for p, v in zip(params, pvals)}}
    try:
        if np.isfinite(evaluate(e, env, np.float64)).all():
            return e
    except (_Unsupported, RuntimeError, TypeError, ValueError):
        return e
    from actsym.derive import _ANALYSIS_ERRORS, LIMIT_SECONDS, _plain, time_budget

    signed, conds = {}, []
    for p, v in zip(params, pvals):
        if v == 0:
            return e
        signed[p] = sp.Dummy(p.name, positive=True) if v > 0 else sp.Dummy(p.name, negative=True)
        conds.append(p > 0 if v > 0 else p < 0)
    plain = _plain(original).xreplace(signed)
    try:
        with time_budget(LIMIT_SECONDS):
            left, right = sp.limit(plain, x, 0, "-"), sp.limit(plain, x, 0, "+")
            if not (left.is_finite and sp.simplify(left - right) == 0):
                return e
    except _ANALYSIS_ERRORS:
        return e
    value = left.xreplace({d: p for p, d in signed.items()})
    return sp.Piecewise((value, sp.And(sp.Eq(x, 0), *conds)), (e, True))


def _choose(expr, x, params, pvals, alternatives, exact_fn, pts):
    subs = dict(zip(params, pvals))
    exact = np.array([exact_fn(float(p)) for p in pts])
    score = _Scorer(x, params, pvals, pts, exact, original=expr)
    try:
        own = score(expr)
    except (_Unsupported, RuntimeError, TypeError, ValueError):
        return expr
    if own.sum() <= SWITCH_PENALTY:  # the screen's disagreement was not an error (no form could save enough)
        return expr
    near_zero = bool((own[np.abs(pts) <= 0.25] > 2 * NOISE_BITS).any())  # where a 12-term polynomial can help
    cands_all = candidates(expr, x, subs, alternatives, near_zero=near_zero)
    if len(cands_all) < 2:
        return expr
    cands, costs = [], []
    for c in cands_all:
        _check_time()
        try:
            cost = score(c)
        except (_Unsupported, RuntimeError, TypeError, ValueError):
            continue
        cands.append(c)
        costs.append(cost)
    if not cands:
        return expr
    costs = np.array(costs)
    base = 0 if cands[0] == expr else None
    allowed = np.array([True] + [_split_ok(float(pts[j - 1]), float(pts[j])) for j in range(1, len(pts))] + [True])
    total, runs = _segments(costs, allowed)
    if base is not None and costs[base].sum() <= total + SWITCH_PENALTY:
        return expr
    if len(runs) == 1:
        return cands[runs[0][0]]
    pieces = []
    for (a, _), (b, j) in zip(runs, runs[1:]):
        t = _boundary(score, exact_fn, cands[a], cands[b], float(pts[j - 1]), float(pts[j]))
        pieces.append((cands[a], x < sp.Float(t) if t != int(t) else x < sp.Integer(int(t))))
    pieces.append((cands[runs[-1][0]], sp.true))
    result = sp.Piecewise(*pieces)
    if result.args[0].expr.has(sp.Piecewise) or any(v.has(sp.Piecewise) for v, _ in result.args):
        from actsym.rewrite import simplify_conditions

        result = simplify_conditions(sp.piecewise_fold(result))
    return result


def describe(old: sp.Expr, new: sp.Expr, x: sp.Symbol) -> str:
    """One line for a file header: what the regime search did to a function ('' if nothing)."""
    if new == old:
        return ""
    splits = sorted({float(c.rhs) for c in new.atoms(sp.StrictLessThan)
                     if c.lhs == x and c.rhs.is_number} - {float(c.rhs) for c in old.atoms(sp.StrictLessThan)
                                                           if c.lhs == x and c.rhs.is_number})
    if not splits:
        return "rewritten for accuracy (a measured equivalent form)"
    return f"{len(splits) + 1} accuracy regimes, split at x = {', '.join(f'{t:g}' for t in splits)}"


def _clip(v) -> float:
    try:
        return float(v)
    except OverflowError:
        return math.inf if v > 0 else -math.inf

