"""An independent oracle for generated activation code, and the self-check built on it.

The oracle knows nothing of actsym's derivation: it evaluates the user's expression ``spec.expr`` and its
*plain* SymPy derivatives (``sympy.diff`` with respect to ``x`` and every parameter) with mpmath at
``DPS`` digits. :func:`self_check` compares every eager path of a generated module against it (module
forward with autograd on and under ``no_grad`` -- the in-place code --, backward with ``create_graph`` off
and on for a per-layer and a per-channel module, the out-of-place and in-place kernels called directly),
in float64 and float32, at a fixed set of a few hundred points.

**Points.** Magnitudes spread log-uniformly over [1e-7, 10] with both signs, and 0; plus every *switch
point*: a root in [-10.5, 10.5] of what decides a branch (Piecewise conditions, the arguments of Abs,
sign and Heaviside, the differences of Max/Min arguments) or a pole/domain edge (bases of negative or
fractional powers, arguments of log), found on a grid and refined by bisection at the parameters' initial
values, each with its float neighbours (``nextafter`` +-1 and +-1e-6 relative). Every point and parameter
is rounded to the dtype first and the oracle is evaluated at the rounded numbers, so the exact answer is
the answer for the inputs the code really received.

**Conventions.** The derivative at a branch point is the plain derivative of the expression there (the
branch selected there, PyTorch's convention). Within a few ulps of a switch point (where the float
evaluation of a condition may legitimately go either way, and where f may not be differentiable) the
one-sided limits of the derivative (and its value at the switch point) are accepted too, and so are the
one-sided limits of the value and the value at the switch point, at points that are not the switch point
itself. ``DiracDelta`` is 0 (almost-everywhere convention).

**Tolerance** (per point): ``|got - exact| <= rtol*|exact| + C*eps*E + atol`` where ``E`` is a running
forward error bound of the naive evaluation of the expression tree in units of the dtype's epsilon
(``E(a+b) = E(a) + E(b) + |a+b|``, ``E(a*b) = |b|E(a) + |a|E(b) + |ab|``, ``E(g(u)) = |g'(u)|E(u) + |g(u)|``,
evaluated in float64 numpy), so cancellation and ill-conditioning (``sinh(x) - x`` near 0, ``sin(100*x)``)
widen the tolerance exactly where rounding is amplified, while a wrong term, branch, constant or buffer is
an O(1) relative error. Where the naive evaluation itself is 0/0 (a removable singularity such as
``sin(x - pi)/(x - pi)`` at ``x = pi`` in floats), ``E`` is the largest ``|exact|`` within distance 1 (the
local scale). ``rtol`` is 1e-10 (float64) and 1e-5 (float32), ``C = 64``, ``atol = 2**20 * tiny`` (the smallest normal
number: results that close to underflow are noise).

**Skipped points.** Where the exact value is not real (logarithms and fractional powers are the real ones:
``tanh(log(log(x)))`` is undefined for ``x < 1`` even though mpmath would find a real number through the
complex plane), not finite or beyond what the dtype represents the
point is not compared. A non-finite *generated* result where the exact value is finite and below 1e30 is a
failure, unless the naive evaluation itself overflows the dtype on the way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import mpmath
import numpy as np
import sympy as sp
import torch
from scipy import special as _sps

from actsym.functions import expm1, log1p, logabs, mpmath_namespace, ndtr, sigmoid, softplus
from actsym.parse import ExpressionError, X

DPS = 40
C_BOUND = 64.0
RTOL = {torch.float64: 1e-10, torch.float32: 1e-5}
NEAR_ULPS = 32
FINITE_LIMIT = 1e30
MAX_SWITCH_POINTS = 24
DTYPES = (torch.float64, torch.float32)


class VerificationFailed(ExpressionError):
    """Generated code disagrees with the oracle (or crashed); the message is one line naming path and point."""


# ------------------------------------------------------------------------------------------------------
# mpmath evaluation
# ------------------------------------------------------------------------------------------------------


def _mp_heaviside(u, h0=None):
    if u > 0:
        return mpmath.mpf(1)
    if u < 0:
        return mpmath.mpf(0)
    return mpmath.mpf(1) / 2 if h0 is None else mpmath.mpf(h0)


_HUGE = 10**6  # |arguments| of exp-like functions beyond this: the result is not representable anyway


def _guard(f, big):
    """f, but +-inf (or its limit) for |u| > _HUGE: exp(exp(exp(exp(10)))) must not build a 10**9565-digit int."""

    def g(u):
        if isinstance(u, (mpmath.mpf, int, float)) and abs(u) > _HUGE:
            return big(u)
        return f(u)

    return g


def _mp_log(u):
    if u <= 0:  # the real logarithm only: complex intermediates (log(log(x)) for x < 1) are outside the domain
        raise ValueError("log of a non-positive number")
    return mpmath.log(u)


def _mp_log1p(u):
    if u <= -1:
        raise ValueError("log1p below -1")
    return mpmath.log1p(u)


def _mp_rpow(b, e):
    """b**e for a non-integer exponent: real only for b >= 0."""
    if b < 0:
        raise ValueError("fractional power of a negative number")
    if b == 0:
        if e > 0:
            return mpmath.mpf(0)
        raise ZeroDivisionError
    return mpmath.power(b, e)


_RPOW = sp.Function("actsym_rpow")


def _real_domain(expr: sp.Expr) -> sp.Expr:
    """Non-integer powers as a real-only function (mpmath would go through the complex plane)."""
    return expr.replace(lambda n: n.is_Pow and not n.exp.is_Integer, lambda n: _RPOW(n.base, n.exp))


def _mp_namespace() -> dict:
    ns = mpmath_namespace()
    inf = mpmath.inf
    ns.update({
        "log": _mp_log, "log1p": _mp_log1p, "actsym_rpow": _mp_rpow,
        "Heaviside": _mp_heaviside, "sign": mpmath.sign, "Abs": abs,
        "exp": _guard(mpmath.exp, lambda u: inf if u > 0 else mpmath.mpf(0)),
        "expm1": _guard(mpmath.expm1, lambda u: inf if u > 0 else mpmath.mpf(-1)),
        "sinh": _guard(mpmath.sinh, lambda u: inf if u > 0 else -inf),
        "cosh": _guard(mpmath.cosh, lambda u: inf),
        "softplus": _guard(ns["softplus"], lambda u: u if u > 0 else mpmath.mpf(0)),
        "sigmoid": _guard(ns["sigmoid"], lambda u: mpmath.mpf(1) if u > 0 else mpmath.mpf(0)),
    })
    return ns


def _real(v):
    """An mpmath/Python result as a finite real mpf, or None."""
    if isinstance(v, bool):
        v = int(v)
    if isinstance(v, mpmath.mpc) or isinstance(v, complex):
        if abs(v.imag) > mpmath.mpf(10) ** (-DPS + 10) * max(1, abs(v.real)):
            return None
        v = v.real
    try:
        v = mpmath.mpf(v)
    except (TypeError, ValueError):
        return None
    return v if mpmath.isfinite(v) else None


def _call(fn, args):
    try:
        return _real(fn(*args))
    except (ZeroDivisionError, ValueError, OverflowError, TypeError, ArithmeticError):
        return None


class _MpFunction:
    """One expression (value or plain derivative) as an mpmath callable of (x, *params)."""

    def __init__(self, expr: sp.Expr, args: list[sp.Symbol], wrt_index: int | None, value_fn=None):
        self.numeric = expr.has(sp.Derivative, sp.Subs)
        self.wrt = wrt_index
        self.value_fn = value_fn
        self.fn = None if self.numeric else sp.lambdify(args, _real_domain(expr), modules=[_mp_namespace(), "mpmath"])

    def __call__(self, args):
        """The value at ``args`` to about 20 significant digits: evaluated at the working precision and with
        30 more digits, and again with more while the two disagree (cancellation, e.g. cos(x)/(x - pi) -
        sin(x)/(x - pi)**2 near pi); None where no real finite value is found."""
        dps = mpmath.mp.dps
        prev = self._eval(args)
        for extra in (30, 90, 250):
            if prev is None:
                return None
            with mpmath.workdps(dps + extra):
                v = self._eval(args)
            if v is None:
                return None
            if abs(v - prev) <= mpmath.mpf(10) ** -20 * abs(v) or v == prev:
                return v
            prev = v
        return None

    def _eval(self, args):
        if not self.numeric:
            v = _call(self.fn, args)
            if v is None:  # removable singularity (0/0 at the point): the two-sided limit when both sides agree
                with mpmath.workdps(2 * DPS):  # (1 - cos(h))/h**2 cancels 2*12 digits
                    x = args[0]
                    means = []
                    for h in (mpmath.mpf(10) ** -12 * max(1, abs(x)), mpmath.mpf(10) ** -15 * max(1, abs(x))):
                        lo, hi = _call(self.fn, (x - h, *args[1:])), _call(self.fn, (x + h, *args[1:]))
                        if lo is None or hi is None or abs(lo - hi) > mpmath.mpf(10) ** -8 * (1 + abs(lo)):
                            return None
                        means.append((lo + hi) / 2)  # the mean cancels the odd terms: error O(h**2)
                    if abs(means[0] - means[1]) > mpmath.mpf(10) ** -12 * (1 + abs(means[1])):
                        return None  # no limit (a symmetric pole such as 1/sqrt(|x|))
                    v = means[1]
            return v
        # sympy left the derivative unevaluated: differentiate the value numerically at high precision
        def g(t):
            a = list(args)
            a[self.wrt] = t
            v = self.value_fn(a)
            if v is None:
                raise ValueError
            return v

        try:
            return _real(mpmath.diff(g, args[self.wrt]))
        except (ValueError, ZeroDivisionError, ArithmeticError):
            return None


# ------------------------------------------------------------------------------------------------------
# float64 error bound (numpy): value, forward error bound in units of eps, peak intermediate magnitude
# ------------------------------------------------------------------------------------------------------


class _Unsupported(Exception):
    pass


def _mul0(a, b):
    """a*b with 0*inf = 0 (an exact zero factor kills the bound)."""
    with np.errstate(all="ignore"):
        return np.where((a == 0) | (b == 0), 0.0, a * b)


def _sigmoid_np(u):
    return _sps.expit(u)


_NP_FUNCS = {
    sp.exp: (np.exp, np.exp),
    sp.log: (np.log, lambda u: 1 / u),
    sp.sin: (np.sin, np.cos),
    sp.cos: (np.cos, np.sin),
    sp.tan: (np.tan, lambda u: 1 + np.tan(u) ** 2),
    sp.tanh: (np.tanh, lambda u: 1 - np.tanh(u) ** 2),
    sp.sinh: (np.sinh, np.cosh),
    sp.cosh: (np.cosh, np.sinh),
    sp.atan: (np.arctan, lambda u: 1 / (1 + u * u)),
    sp.asinh: (np.arcsinh, lambda u: 1 / np.sqrt(1 + u * u)),
    sp.erf: (_sps.erf, lambda u: 2 / np.sqrt(np.pi) * np.exp(-u * u)),
    sp.erfc: (_sps.erfc, lambda u: 2 / np.sqrt(np.pi) * np.exp(-u * u)),
    sigmoid: (_sigmoid_np, lambda u: _sigmoid_np(u) * (1 - _sigmoid_np(u))),
    softplus: (lambda u: np.logaddexp(0.0, u), _sigmoid_np),
    log1p: (np.log1p, lambda u: 1 / (1 + u)),
    expm1: (np.expm1, np.exp),
    ndtr: (_sps.ndtr, lambda u: np.exp(-u * u / 2) / np.sqrt(2 * np.pi)),
    logabs: (lambda u: np.log(np.abs(u)), lambda u: 1 / u),
    sp.Abs: (np.abs, lambda u: np.ones_like(u)),
}


class _Bound:
    """Evaluates an expression tree on float64 arrays, returning (value, error bound / eps, peak |value|)."""

    def __init__(self, env: dict[sp.Symbol, np.ndarray], n: int, eps: float = float(np.finfo(np.float64).eps)):
        self.env = env
        self.n = n
        self.eps = eps  # of the dtype checked: decides where a sign or a branch is lost in rounding
        self.memo: dict = {}

    def _unsure(self, v, err):
        """Where a computed value may have the wrong sign: within its rounding error (C_BOUND*eps*err) of 0.
        There sign(v), Heaviside(v) and a condition on v can come out either way."""
        with np.errstate(all="ignore"):
            return (err > 0) & (np.abs(v) <= C_BOUND * self.eps * err)

    def const(self, v, err=0.0):
        full = np.full(self.n, float(v))
        return full, np.full(self.n, float(err)), np.abs(full)

    def __call__(self, e):
        got = self.memo.get(e)
        if got is None:
            with np.errstate(all="ignore"):
                got = self._eval(e)
            self.memo[e] = got
        return got

    def _eval(self, e):
        if e.is_Symbol:
            if e not in self.env:
                raise _Unsupported(str(e))
            v = self.env[e]
            return v, np.zeros(self.n), np.abs(v)
        if e.is_Integer:
            return self.const(int(e))
        if e.is_Number or e.is_NumberSymbol:
            v = float(e)
            return self.const(v, abs(v))
        # a boolean's second slot: where it may be wrong (a relation within rounding of the switch)
        if e is sp.true or e is sp.false:
            return np.full(self.n, bool(e)), np.zeros(self.n, bool), np.zeros(self.n)
        if e.is_Add:
            parts = [self(a) for a in e.args]
            v = sum(p[0] for p in parts)
            err = sum(p[1] for p in parts) + sum(np.abs(p[0]) for p in parts)
            return v, err, np.fmax.reduce([p[2] for p in parts] + [np.abs(v)])
        if e.is_Mul:
            v, err, peak = self(e.args[0])
            for a in e.args[1:]:
                bv, be, bp = self(a)
                err = _mul0(np.abs(bv), err) + _mul0(np.abs(v), be) + np.abs(v * bv)
                v = v * bv
                peak = np.fmax(np.fmax(peak, bp), np.abs(v))
            return v, err, peak
        if e.is_Pow:
            bv, be, bp = self(e.base)
            if e.exp.is_Number:
                k = float(e.exp)
                v = np.power(bv, k)
                err = _mul0(np.abs(k * np.power(bv, k - 1)), be) + np.abs(v)
                return v, err, np.fmax(bp, np.abs(v))
            ev, ee, ep = self(e.exp)
            v = np.power(bv, ev)
            err = _mul0(np.abs(ev * np.power(bv, ev - 1)), be) + _mul0(np.abs(v * np.log(np.abs(bv))), ee) + np.abs(v)
            return v, err, np.fmax.reduce([bp, ep, np.abs(v)])
        if isinstance(e, sp.Piecewise):
            v = np.full(self.n, np.nan)
            err = np.zeros(self.n)
            peak = np.zeros(self.n)
            done = np.zeros(self.n, bool)
            unsure = np.zeros(self.n, bool)
            branches = []
            for expr, cond in e.args:
                cv, cu = self(cond)[:2]
                unsure |= cu & ~done  # this condition was looked at, and may have gone the other way
                c = cv.astype(bool) & ~done
                bv, be, bp = self(expr)
                branches.append(bv)
                v, err, peak = np.where(c, bv, v), np.where(c, be, err), np.where(c, bp, peak)
                done |= c
            if unsure.any():  # a branch lost in rounding: the result may be any branch's value there
                for bv in branches:
                    jump = np.where(unsure & np.isfinite(bv) & np.isfinite(v), np.abs(bv - v) / self.eps, 0.0)
                    err = np.fmax(err, jump)
            return v, err, peak
        if isinstance(e, sp.core.relational.Relational):
            (a, ea, _), (b, eb, _) = self(e.lhs), self(e.rhs)
            op = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
                  "==": np.equal, "!=": np.not_equal}[e.rel_op]
            return op(a, b), self._unsure(a - b, ea + eb), np.zeros(self.n)
        if isinstance(e, (sp.And, sp.Or)):
            parts = [self(a) for a in e.args]
            red = np.logical_and.reduce if isinstance(e, sp.And) else np.logical_or.reduce
            return red([p[0].astype(bool) for p in parts]), np.logical_or.reduce([p[1] for p in parts]), np.zeros(self.n)
        if isinstance(e, sp.Not):
            v, u, _ = self(e.args[0])
            return ~v.astype(bool), u, np.zeros(self.n)
        if isinstance(e, (sp.Max, sp.Min)):
            parts = [self(a) for a in e.args]
            pick = np.argmax if isinstance(e, sp.Max) else np.argmin
            vals = np.stack([p[0] for p in parts])
            idx = pick(vals, axis=0)
            cols = np.arange(self.n)
            errs = np.stack([p[1] for p in parts])
            return vals[idx, cols], errs.max(axis=0), np.fmax.reduce([p[2] for p in parts])
        if isinstance(e, (sp.sign, sp.Heaviside, sp.DiracDelta)):
            uv, ue, up = self(e.args[0])
            jump = 0.0
            if isinstance(e, sp.sign):
                v, jump = np.sign(uv), 2.0
            elif isinstance(e, sp.DiracDelta):
                v = np.zeros(self.n)
            else:
                h0 = float(e.args[1]) if len(e.args) > 1 else 0.5
                v, jump = np.where(uv > 0, 1.0, np.where(uv < 0, 0.0, h0)), 1.0
            # an argument within rounding of 0 may have either sign: the step is not determined there
            return v, np.where(self._unsure(uv, ue), jump / self.eps, 0.0), up
        for cls, (fn, dfn) in _NP_FUNCS.items():
            if isinstance(e, cls):
                uv, ue, up = self(e.args[0])
                v = fn(uv)
                err = _mul0(np.abs(dfn(uv)), ue) + np.abs(v)
                return v, err, np.fmax(up, np.abs(v))
        raise _Unsupported(type(e).__name__)


# ------------------------------------------------------------------------------------------------------
# the oracle: points, exact values and accepted alternatives, tolerances -- per dtype
# ------------------------------------------------------------------------------------------------------


@dataclass
class Case:
    """Everything the comparison needs for one dtype. Keys: None (the value), "x", parameter names."""

    dtype: torch.dtype
    params: dict[str, float]
    xs: np.ndarray
    exact: dict = field(default_factory=dict)  # key -> float64 array, nan where not compared
    alts: dict = field(default_factory=dict)  # key -> list of arrays of accepted alternatives (nan: none)
    tol: dict = field(default_factory=dict)  # key -> array
    must_be_finite: dict = field(default_factory=dict)  # key -> bool array
    switch_points: list = field(default_factory=list)  # roots of the switch functions (float64)

    def clean(self, keys) -> np.ndarray:
        """Indices where every key has a unique, finite expected value that the code must reproduce."""
        ok = np.ones(len(self.xs), bool)
        for k in keys:
            ok &= np.isfinite(self.exact[k]) & self.must_be_finite[k]
            for a in self.alts[k]:
                ok &= ~np.isfinite(a)
        return np.nonzero(ok)[0]


def _switch_functions(expr: sp.Expr) -> list[sp.Expr]:
    """Expressions whose roots are branch points, kinks, poles or domain edges of ``expr``."""
    out = []
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Piecewise):
            for _, cond in node.args:
                if isinstance(cond, sp.Basic):
                    for rel in cond.atoms(sp.core.relational.Relational):
                        out.append(rel.lhs - rel.rhs)
        elif isinstance(node, (sp.Abs, sp.sign, sp.Heaviside, sp.log, log1p)):
            out.append(node.args[0] + (1 if isinstance(node, log1p) else 0))
        elif isinstance(node, (sp.Max, sp.Min)):
            a = node.args
            out += [a[i] - a[j] for i in range(len(a)) for j in range(i + 1, len(a))]
        elif node.is_Pow and node.exp.is_Number and (node.exp.is_negative or not node.exp.is_integer):
            out.append(node.base)
    seen, uniq = set(), []
    for g in out:
        if g.has(X) and g not in seen:
            seen.add(g)
            uniq.append(g)
    return uniq


def _roots(switches, psubs: dict[sp.Symbol, float], mp_args, params_mp) -> list:
    """Sign changes of each switch function on a grid over [-10.5, 10.5], refined to DPS digits."""
    grid = np.linspace(-10.5, 10.5, 4201)
    roots = []
    env = {X: grid, **{s: np.full(grid.size, v) for s, v in psubs.items()}}
    for g in switches:
        try:
            gv = _Bound(env, grid.size)(g)[0].astype(float)
        except (_Unsupported, TypeError, ValueError):
            continue
        fn = sp.lambdify(mp_args, _real_domain(g), modules=[_mp_namespace(), "mpmath"])
        exact_zero = np.nonzero(gv == 0)[0]
        change = np.nonzero(np.isfinite(gv[:-1]) & np.isfinite(gv[1:]) & (np.sign(gv[:-1]) * np.sign(gv[1:]) < 0))[0]
        for i in exact_zero:
            roots.append(mpmath.mpf(grid[i]))
        for i in change:
            lo, hi = mpmath.mpf(grid[i]), mpmath.mpf(grid[i + 1])
            glo = _call(fn, (lo, *params_mp))
            if glo is None:
                continue
            for _ in range(140):
                mid = (lo + hi) / 2
                gm = _call(fn, (mid, *params_mp))
                if gm is None:
                    break
                if gm == 0:
                    lo = hi = mid
                    break
                if (gm > 0) == (glo > 0):
                    lo, glo = mid, gm
                else:
                    hi = mid
            roots.append((lo + hi) / 2)
        if len(roots) > 4 * MAX_SWITCH_POINTS:
            break
    roots.sort(key=lambda r: (abs(r), r))
    out = []
    for r in roots:
        if all(abs(r - s) > mpmath.mpf(10) ** (-DPS + 8) for s in out):
            out.append(r)
    return out[:MAX_SWITCH_POINTS]


def _spread() -> np.ndarray:
    mags = np.logspace(-7, 1, 80)
    return np.concatenate([[0.0], mags, -mags])


class Oracle:
    """The user's expression and its plain SymPy derivatives, evaluated with mpmath."""

    def __init__(self, spec):
        self.spec = spec
        self.pnames = list(spec.params)
        self.psyms = [sp.Symbol(p, real=True) for p in self.pnames]
        self.args = [X, *self.psyms]
        self.exprs = {None: spec.expr, "x": sp.diff(spec.expr, X)}
        for p, s in zip(self.pnames, self.psyms):
            self.exprs[p] = sp.diff(spec.expr, s)
        value = _MpFunction(spec.expr, self.args, None)
        self.fns = {None: value}
        for i, k in enumerate(["x", *self.pnames]):
            self.fns[k] = _MpFunction(self.exprs[k], self.args, i, value)
        self.switches = _switch_functions(spec.expr)
        self._cases: dict = {}

    def case(self, dtype: torch.dtype, budget_s: float = 0.5) -> Case:
        if dtype not in self._cases:
            with mpmath.workdps(DPS):
                self._cases[dtype] = self._build(dtype, budget_s)
        return self._cases[dtype]

    def _build(self, dtype: torch.dtype, budget_s: float) -> Case:
        t0 = time.perf_counter()
        npd = np.float64 if dtype == torch.float64 else np.float32
        finfo = np.finfo(npd)
        eps = float(finfo.eps)
        params = {p: float(npd(v.init)) for p, v in self.spec.params.items()}
        params_mp = [mpmath.mpf(params[p]) for p in self.pnames]
        psubs = dict(zip(self.psyms, params.values()))
        roots = _roots(self.switches, psubs, self.args, params_mp)
        # points near switch points first (they matter most), then the spread
        near_pts: list[float] = []
        root_of: dict[float, object] = {}
        for r in roots:
            r0 = float(npd(float(r)))
            rel = 1e-6 * abs(r0) if r0 != 0 else 1e-6
            cands = [r0, np.nextafter(npd(r0), npd(np.inf)), np.nextafter(npd(r0), npd(-np.inf)), r0 + rel, r0 - rel]
            for c in cands:
                c = float(npd(c))
                if abs(c) <= 10.5 and c not in root_of:
                    root_of[c] = r
                    near_pts.append(c)
        spread = [float(npd(v)) for v in _spread()]
        pts = near_pts + [v for v in spread if v not in root_of]
        keys = [None, "x", *self.pnames]
        rows = []  # per point: {key: (exact, [alts])}
        onesided: dict = {}
        for j, xv in enumerate(pts):
            if j >= 40 and time.perf_counter() - t0 > budget_s:
                break
            xm = mpmath.mpf(xv)
            a = (xm, *params_mp)
            row = {k: (self.fns[k](a), []) for k in keys}
            r = root_of.get(xv)
            if r is not None and abs(xv - float(r)) <= NEAR_ULPS * eps * max(abs(float(r)), 1.0):
                if r not in onesided:
                    with mpmath.workdps(2 * DPS):  # digits to spare for cancellation at r +- h
                        h = mpmath.mpf(10) ** (-DPS // 2) * max(1, abs(r))
                        # the one-sided limits, and the value at the switch point (for its neighbours: an
                        # intermediate such as x*x may round onto it)
                        onesided[r] = {k: [self.fns[k]((r - h, *params_mp)), self.fns[k]((r + h, *params_mp)),
                                           self.fns[k]((r, *params_mp))] for k in keys}
                for k in keys:
                    if k is None and xm == r:
                        continue  # at the switch point itself the value is that of the branch selected there
                    row[k][1].extend(onesided[r][k])  # [left, right, at r]; None where undefined
            rows.append(row)
        n = len(rows)
        xs = np.array(pts[:n], dtype=np.float64)
        case = Case(dtype, params, xs, switch_points=[float(r) for r in roots])
        env = {X: xs, **{s: np.full(n, v) for s, v in psubs.items()}}
        bound = _Bound(env, n, eps)
        big = float(finfo.max) * 1e-3
        limit = min(FINITE_LIMIT, big)
        for k in keys:
            exact = np.array([float(r[k][0]) if r[k][0] is not None else np.nan for r in rows])
            with np.errstate(all="ignore"):
                exact = np.where(np.abs(exact) <= big, exact, np.nan)
            nalt = max((len(r[k][1]) for r in rows), default=0)
            alts = []
            for i in range(nalt):
                alt = np.array([float(r[k][1][i]) if i < len(r[k][1]) and r[k][1][i] is not None else np.nan
                                for r in rows])
                alts.append(np.where(np.abs(alt) <= big, alt, np.nan))
            try:
                naive, err, peak = bound(self.exprs[k])
                # where the naive float evaluation is 0/0 (a removable singularity), code can only be accurate
                # relative to the function's scale nearby: the largest |exact| within distance 1
                with np.errstate(all="ignore"):
                    mag = np.where(np.isfinite(exact), np.abs(exact), 0.0)
                    local = np.array([mag[np.abs(xs - xv) <= 1].max(initial=0.0) for xv in xs])
                removable = np.isnan(naive) & np.isfinite(exact)
                err = np.where(np.isfinite(err), err, np.maximum(np.abs(exact) * 1e3, local))
                with np.errstate(invalid="ignore"):
                    # an intermediate beyond the range excuses a non-finite result -- but not where the naive
                    # value is NaN while the exact one is finite (0/0 at a removable singularity: 1/x peaks)
                    overflow = (peak > big) & ~(np.isnan(naive) & np.isfinite(exact))
            except (_Unsupported, TypeError, ValueError):
                err, overflow, removable = np.abs(exact) * 4, np.zeros(n, bool), np.ones(n, bool)
            # atol: results within 2**20 of the underflow threshold are noise (intermediates underflow first)
            tol = RTOL[dtype] * np.abs(exact) + C_BOUND * eps * err + 2.0**20 * float(finfo.tiny)
            case.exact[k], case.alts[k], case.tol[k] = exact, alts, tol
            # where the first-order error bound of the formula in this format exceeds the value itself, no
            # digit is determined, and an intermediate may round onto a singularity (log1p(log1p(x)) at
            # float32 x = 1/e - 1: log1p(x) rounds to -1): a non-finite result there is the format's, not a
            # bug -- except where the naive value is NaN and the exact one finite (a removable singularity
            # the code must patch; its bound above is a stand-in, not a measured loss)
            with np.errstate(invalid="ignore"):
                lost = (np.abs(exact) > 0) & (C_BOUND * eps * err >= np.abs(exact)) & ~removable
            case.must_be_finite[k] = (np.abs(exact) < limit) & ~overflow & ~lost
        return case


_ORACLES: dict = {}


def oracle(spec) -> Oracle:
    """The (cached) oracle of a spec."""
    key = (spec.name, sp.srepr(spec.expr), tuple((k, v.init) for k, v in spec.params.items()))
    o = _ORACLES.get(key)
    if o is None:
        if len(_ORACLES) > 64:
            _ORACLES.clear()
        o = _ORACLES[key] = Oracle(spec)
    return o


# ------------------------------------------------------------------------------------------------------
# the self-check: every eager path against the oracle
# ------------------------------------------------------------------------------------------------------


def _key_name(k) -> str:
    return "f" if k is None else f"df/d{k}"


def _fmt(v) -> str:
    return f"{v:.10g}" if isinstance(v, float) else str(v)


class _Checker:
    def __init__(self, spec, module, case: Case):
        self.spec, self.mod, self.case = spec, module, case
        self.name, self.cname = spec.name, spec.class_name
        self.dtype = case.dtype
        self.dname = str(case.dtype).replace("torch.", "")
        self.pnames = list(spec.params)
        self.learnable = [p for p, v in spec.params.items() if v.learnable]
        n = len(case.xs)
        self.x = torch.tensor(case.xs, dtype=self.dtype)
        self.w = torch.tensor([0.5 + ((7 * i) % 11) / 8 for i in range(n)], dtype=self.dtype)
        self.pvals = [case.params[p] for p in self.pnames]

    def where(self, i) -> str:
        ps = "".join(f", {p}={_fmt(v)}" for p, v in zip(self.pnames, self.pvals))
        return f"x={_fmt(float(self.case.xs[i]))}{ps}"

    def fail(self, path, msg):
        raise VerificationFailed(f"self-check failed: {path} ({self.dname}) {msg}")

    def run(self, path, fn):
        try:
            return fn()
        except VerificationFailed:
            raise
        except Exception as e:  # noqa: BLE001 - any crash of generated code is a verification failure
            text = (str(e).strip().splitlines() or [""])[0][:200]
            self.fail(path, f"raised {type(e).__name__}: {text}")

    def compare(self, path, key, got, idx=None, weights=None):
        """Pointwise comparison of ``got`` (a tensor, one value per point of ``idx``) with the oracle."""
        c = self.case
        idx = np.arange(len(c.xs)) if idx is None else idx
        if not isinstance(got, torch.Tensor):
            self.fail(path, f"{_key_name(key)} is a {type(got).__name__}, not a tensor")
        if got.dtype != self.dtype:
            self.fail(path, f"{_key_name(key)} has dtype {got.dtype}, expected {self.dtype}")
        g = got.detach().to(torch.float64).cpu().reshape(-1)
        if g.numel() == 1 and len(idx) != 1:
            g = g.expand(len(idx))
        g = g.numpy()
        if g.shape[0] != len(idx):
            self.fail(path, f"{_key_name(key)} has {g.shape[0]} elements, expected {len(idx)}")
        wt = np.ones(len(idx)) if weights is None else weights
        exact = c.exact[key][idx] * wt
        tol = c.tol[key][idx] * wt
        alts = [a[idx] * wt for a in c.alts[key]]
        with np.errstate(all="ignore"):
            ok = ~np.isfinite(exact)
            ok |= np.abs(g - exact) <= tol
            for a in alts:  # an alternative (a one-sided value) has its own scale: tol was sized for exact
                ok |= np.abs(g - a) <= tol + RTOL[self.dtype] * np.abs(a)
            if len(alts) >= 2:  # within rounding of a kink the computed u(x) may be exactly 0, and then the
                # code's one-sided convention applies (d|u|/du = sign(0) = 0 gives the mean of the two slopes):
                # any value between the one-sided limits (alts[0], alts[1]) is a right derivative there
                lo, hi = np.fmin(alts[0], alts[1]), np.fmax(alts[0], alts[1])
                ok |= (g >= lo - tol) & (g <= hi + tol)
            ok |= ~np.isfinite(g) & ~c.must_be_finite[key][idx]
        bad = np.nonzero(~ok)[0]
        if bad.size:  # reported per unit upstream gradient
            j = bad[0]
            i = idx[j]
            u = float(wt[j])
            others = [_fmt(float(a[j]) / u) for a in alts if np.isfinite(a[j])]
            extra = f" (or {', '.join(others)})" if others else ""
            self.fail(path, f"{_key_name(key)} at {self.where(i)}: got {_fmt(float(g[j]) / u)}, expected "
                            f"{_fmt(float(exact[j]) / u)}{extra} (tolerance {float(tol[j]) / u:.2g}; "
                            f"{bad.size} of {len(idx)} points wrong)")

    def compare_sum(self, path, key, got, idx, weights):
        c = self.case
        if not isinstance(got, torch.Tensor) or got.numel() != 1:
            self.fail(path, f"{_key_name(key)} of a per-layer module is not a one-element tensor")
        g = float(got.detach().to(torch.float64).reshape(()))
        exact = float(np.sum(c.exact[key][idx] * weights))
        tol = float(np.sum(c.tol[key][idx] * weights) + RTOL[self.dtype] * np.sum(np.abs(c.exact[key][idx] * weights)))
        tol += len(idx) * float(np.finfo(np.float32 if self.dtype == torch.float32 else np.float64).eps) * float(
            np.sum(np.abs(c.exact[key][idx] * weights)))
        if not (abs(g - exact) <= tol):
            self.fail(path, f"{_key_name(key)} summed over {len(idx)} points: got {_fmt(g)}, expected {_fmt(exact)} "
                            f"(tolerance {tol:.2g})")

    # -- module helpers -----------------------------------------------------------------------------
    def make_module(self, num_parameters):
        cls = getattr(self.mod, self.cname)
        m = cls(num_parameters=num_parameters).to(self.dtype)
        tensors = dict(m.named_parameters())
        tensors.update(dict(m.named_buffers()))
        with torch.no_grad():
            for p, v in zip(self.pnames, self.pvals):
                if p not in tensors:
                    self.fail(f"{self.cname}()", f"has no parameter or buffer named {p!r}")
                tensors[p].fill_(v)
        return m, tensors

    # -- the paths ------------------------------------------------------------------------------------
    def check_all(self):
        self.check_forward()
        self.check_direct()
        self.check_backward_x()
        if self.learnable:
            self.check_backward_per_channel()
            self.check_backward_per_layer()

    def check_forward(self):
        path = f"{self.cname} forward"
        m, _ = self.run(f"{self.cname}()", lambda: self.make_module(1))
        with torch.enable_grad():
            y = self.run(path, lambda: m(self.x.clone().requires_grad_(True)))
        self.compare(path, None, y)
        path = f"{self.cname} forward under no_grad"
        with torch.no_grad():
            y = self.run(path, lambda: m(self.x.clone()))
        self.compare(path, None, y)

    def ptensors(self):
        return [torch.tensor(v, dtype=self.dtype) for v in self.pvals]

    def check_direct(self):
        x, w = self.x, self.w
        wn = self.w.to(torch.float64).numpy()
        kernels = [(f"{self.name}_value", False), (f"{self.name}_value_nograd", True)]
        for fname, nograd in kernels:
            fn = getattr(self.mod, fname, None)
            if fn is None:
                self.fail(fname, "is missing from the generated module")
            with torch.no_grad() if nograd else torch.enable_grad():
                y = self.run(fname, lambda fn=fn: fn(x.clone(), *self.ptensors()))
            self.compare(fname, None, y)
        grads = [(f"{self.name}_grad_x", False, False), (f"{self.name}_grad_x_nograd", True, False)]
        if self.pnames:
            grads += [(f"{self.name}_grad_all", False, True), (f"{self.name}_grad_all_nograd", True, True)]
        for fname, nograd, all_ in grads:
            fn = getattr(self.mod, fname, None)
            if fn is None:
                self.fail(fname, "is missing from the generated module")
            with torch.no_grad() if nograd else torch.enable_grad():
                out = self.run(fname, lambda fn=fn: fn(w.clone(), x.clone(), *self.ptensors()))
            if not all_:
                self.compare(fname, "x", self.run(fname, lambda out=out: torch.broadcast_to(out, x.shape)), weights=wn)
                continue
            if not isinstance(out, (tuple, list)) or len(out) != 1 + len(self.pnames):
                self.fail(fname, f"returned {type(out).__name__}, expected a tuple of {1 + len(self.pnames)} tensors")
            for k, g in zip(["x", *self.pnames], out):
                g = self.run(fname, lambda g=g: torch.broadcast_to(torch.as_tensor(g), x.shape))
                self.compare(fname, k, g, weights=wn)

    def check_backward_x(self):
        fn = getattr(self.mod, self.name)
        wn = self.w.to(torch.float64).numpy()
        for cg in (False, True):
            path = f"{self.name}(x, params) backward d/dx (create_graph={cg})"

            def go(cg=cg):
                xr = self.x.clone().requires_grad_(True)
                with torch.enable_grad():
                    y = fn(xr, *self.pvals)
                    return torch.autograd.grad(y, xr, self.w, create_graph=cg)[0]

            self.compare(path, "x", self.run(path, go), weights=wn)

    def check_backward_per_channel(self):
        n = len(self.case.xs)
        wn = self.w.to(torch.float64).numpy()
        m, tensors = self.run(f"{self.cname}(num_parameters={n})", lambda: self.make_module(n))
        learn = [tensors[p] for p in self.learnable]
        for cg in (False, True):
            path = f"{self.cname}(num_parameters=C) backward (create_graph={cg})"

            def go(cg=cg):
                xr = self.x.clone().view(1, n).requires_grad_(True)
                with torch.enable_grad():
                    y = m(xr)
                    return torch.autograd.grad(y, [xr, *learn], self.w.view(1, n), create_graph=cg, allow_unused=True)

            grads = self.run(path, go)
            for k, g in zip(["x", *self.learnable], grads):
                if g is None:
                    self.fail(path, f"{_key_name(k)} is None (parameter not connected to the output)")
                self.compare(path, k, g, weights=wn)

    def check_backward_per_layer(self):
        idx = self.case.clean(["x", *self.learnable])
        if idx.size == 0:
            return
        wn = self.w.to(torch.float64).numpy()[idx]
        m, tensors = self.run(f"{self.cname}()", lambda: self.make_module(1))
        learn = [tensors[p] for p in self.learnable]
        x = self.x[torch.as_tensor(idx)]
        w = self.w[torch.as_tensor(idx)]
        for cg in (False, True):
            path = f"{self.cname}() backward (create_graph={cg})"

            def go(cg=cg):
                xr = x.clone().requires_grad_(True)
                with torch.enable_grad():
                    y = m(xr)
                    return torch.autograd.grad(y, [xr, *learn], w, create_graph=cg, allow_unused=True)

            grads = self.run(path, go)
            if grads[0] is None:
                self.fail(path, "df/dx is None")
            self.compare(path, "x", grads[0], idx=idx, weights=wn)
            for k, g in zip(self.learnable, grads[1:]):
                if g is None:
                    self.fail(path, f"{_key_name(k)} is None (parameter not connected to the output)")
                self.compare_sum(path, k, g, idx, wn)


def self_check(spec, module, *, seconds: float = 1.0, dtypes=DTYPES) -> None:
    """Compare every eager path of ``module`` (a generated module object) with the oracle of ``spec``.

    Raises :class:`VerificationFailed` with a one-line message naming the path, dtype, point, got and
    expected. ``seconds`` is a soft budget for the oracle: points are evaluated near-switch-points first,
    then the spread, and the spread is cut short (keeping at least 40 points) when the budget is spent --
    which only happens for expressions that are slow to evaluate at high precision.
    """
    o = oracle(spec)
    share = 0.6 * seconds / max(1, len(dtypes))
    for dtype in dtypes:
        case = o.case(dtype, share)
        if len(case.xs) == 0:
            continue
        _Checker(spec, module, case).check_all()
