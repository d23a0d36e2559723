"""Expectations of an activation under a Gaussian input, numerically and (where SymPy can) exactly.

Numerics: composite Gauss–Legendre quadrature in the standard-normal variable ``z`` on ``[-L, L]``, with
segment edges placed on the activation's branch points (kinks), so every segment integrates a smooth
function and ``E[relu(z)^2] = 1/2`` comes out to rounding error. All nodes are evaluated in one call of
the generated torch code (float64); derivatives come from autograd through the generated backward.
``L`` grows until the integrand is negligible at the ends (activations growing like ``e^x`` push the
mass outwards when the input variance is large).

Symbolics: the canonical expression is rewritten into elementary functions and integrated against the
normal density by SymPy, only for expressions built from polynomials, ``exp``, ``sin``/``cos`` and
piecewise pieces (``Abs``, ``sign``, ``Piecewise``), and only within a time budget.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import sympy as sp
import torch

from actsym.activation import Activation
from actsym.analysis.common import derivatives, param_values, pointwise
from actsym.derive import _Timeout, branches, effective_regions, time_budget
from actsym.functions import expm1, log1p, sigmoid, softplus

NODES = 16  # Gauss–Legendre nodes per segment
WIDTH = 0.25  # segment width in z


@dataclass(frozen=True)
class Moments:
    """For x = loc + scale*z, z ~ N(0, 1): E[f(x)], E[f(x)^2], E[f'(x)^2]."""

    mean: float
    second: float
    deriv_second: float

    @property
    def variance(self) -> float:
        # mean*mean, not mean**2: a float power raises OverflowError past 1e308 (x**(-64)), a product is inf
        return self.second - self.mean * self.mean


@functools.cache
def _legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(n)


def _nodes(breaks_z: list[float], half_range: float) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature nodes and weights for ∫ g(z) φ(z) dz over [-L, L], segments split at ``breaks_z``."""
    edges = np.arange(-half_range, half_range + WIDTH / 2, WIDTH)
    inside = [b for b in breaks_z if -half_range < b < half_range]
    edges = np.unique(np.concatenate([edges, inside]))
    edges = edges[np.concatenate([[True], np.diff(edges) > 1e-12])]
    t, w = _legendre(NODES)
    mid = (edges[1:] + edges[:-1]) / 2
    half = (edges[1:] - edges[:-1]) / 2
    z = (mid[:, None] + half[:, None] * t[None, :]).ravel()
    wz = (half[:, None] * w[None, :]).ravel() * np.exp(-(z**2) / 2) / np.sqrt(2 * np.pi)
    return z, wz


@functools.lru_cache(maxsize=128)
def _kinks(act: Activation) -> tuple[float, ...]:
    from actsym.branch_points import branch_points

    return tuple(branch_points(act.derivation.f, act.spec.x, act.expr))


def kinks_of(act: Activation) -> list[float]:
    """Parameter-free branch points of f (cached per activation object)."""
    return list(_kinks(act))


def moments(
    act: Activation,
    q: float = 1.0,
    loc: float = 0.0,
    params: Mapping[str, float] | None = None,
    breaks: list[float] | None = None,
) -> Moments:
    """E[f(x)], E[f(x)^2], E[f'(x)^2] for x ~ N(loc, q) by quadrature (parameters at their inits unless
    given). ``breaks``: kinks of f (default: :func:`actsym.branch_points.branch_points`)."""
    fn = pointwise(act, params)
    scale = float(np.sqrt(q))
    if scale == 0.0:
        f, fp = derivatives(fn, torch.tensor([float(loc)], dtype=torch.float64), order=1)
        return Moments(float(f[0]), float(f[0] ** 2), float(fp[0] ** 2))
    kinks = kinks_of(act) if breaks is None else breaks
    breaks_z = [(b - loc) / scale for b in kinks]
    half_range = 12.0
    while True:
        z, w = _nodes(breaks_z, half_range)
        x = torch.from_numpy(loc + scale * z)
        f, fp = (t.numpy() for t in derivatives(fn, x, order=1))
        with np.errstate(over="ignore", invalid="ignore"):
            terms = np.stack([f, f**2, fp**2])
            totals = terms @ w
            ends = np.abs(terms[:, [0, -1]] * w[[0, -1]]).max(axis=1)
        settled = np.isfinite(totals) & (ends <= 1e-17 * np.maximum(np.abs(totals), 1e-300))
        if settled.all():
            return Moments(*(float(v) for v in totals))
        if half_range >= 96 or not np.isfinite(totals).all():
            # the Gaussian does not tame f: the expectation diverges (sign unknown for E[f])
            out = [float(t) if ok else (math.nan if i == 0 else math.inf) for i, (t, ok) in enumerate(zip(totals, settled))]
            return Moments(*out)
        half_range *= 2


# ------------------------------------------------------------------------------------------------------
# symbolic
# ------------------------------------------------------------------------------------------------------

_ELEMENTARY = {
    sigmoid: lambda u: 1 / (1 + sp.exp(-u)),
    softplus: lambda u: sp.log(1 + sp.exp(u)),
    log1p: lambda u: sp.log(1 + u),
    expm1: lambda u: sp.exp(u) - 1,
}


def elementary(expr: sp.Expr) -> sp.Expr:
    """Replace the stable primitives (sigmoid, softplus, log1p, expm1) by elementary functions."""
    for cls, rule in _ELEMENTARY.items():
        expr = expr.replace(lambda e, cls=cls: isinstance(e, cls), lambda e, rule=rule: rule(e.args[0]))
    return expr


def _number(v: float) -> sp.Expr:
    r = sp.Rational(v).limit_denominator(1000)
    return r if float(r) == v else sp.Float(repr(v), 30)


def _integrable_term(term: sp.Expr, x: sp.Symbol) -> bool:
    """A product of powers of x, exp/sin/cos of linear arguments and constants (x in a denominator only
    as an exponential)."""
    _, den = term.as_numer_denom()
    if any(x in f.free_symbols and not isinstance(f, sp.exp) for f in sp.Mul.make_args(den)):
        return False
    for f in term.atoms(sp.Function):
        if x not in f.free_symbols:
            continue
        if not isinstance(f, (sp.exp, sp.sin, sp.cos)):
            return False
        try:
            if sp.Poly(f.args[0], x).degree() > 1:
                return False
        except sp.PolynomialError:
            return False
    return True


def _phi(u):
    return sp.S.Zero if u in (sp.oo, -sp.oo) else sp.exp(-(u**2) / 2) / sp.sqrt(2 * sp.pi)


def _Phi(u):
    return sp.S.One if u == sp.oo else sp.S.Zero if u == -sp.oo else (1 + sp.erf(u / sp.sqrt(2))) / 2


def _gauss_power(k: int, lo, hi):
    """∫_lo^hi u^k φ(u) du by I_k = [-u^(k-1) φ(u)]_lo^hi + (k-1) I_(k-2) (integration by parts)."""
    if k == 0:
        return _Phi(hi) - _Phi(lo)
    edge = lambda u: sp.S.Zero if u in (sp.oo, -sp.oo) else u ** (k - 1) * _phi(u)  # noqa: E731
    return edge(lo) - edge(hi) + (k - 1) * (_gauss_power(k - 2, lo, hi) if k >= 2 else 0)


def _poly_exp_integral(term: sp.Expr, x: sp.Symbol, lo, hi):
    """∫_lo^hi term φ(x) dx in closed form when term = polynomial(x) · exp(a x + b), else None.

    Completing the square: x^n e^{a x} φ(x) = e^{a²/2} (u + a)^n φ(u) with u = x − a.
    """
    exps = [f for f in sp.Mul.make_args(term) if isinstance(f, sp.exp)]
    rest = sp.Mul(*[f for f in sp.Mul.make_args(term) if not isinstance(f, sp.exp)])
    arg = sp.expand(sp.Add(*[f.args[0] for f in exps]))
    try:
        lin, poly = sp.Poly(arg, x), sp.Poly(rest, x)
    except sp.PolynomialError:
        return None
    if lin.degree() > 1 or any(c.has(sp.exp, sp.sin, sp.cos) for c in poly.coeffs()):
        return None
    a, b = (lin.all_coeffs() if lin.degree() == 1 else [sp.S.Zero, lin.as_expr()])
    u = sp.Symbol("u", real=True)
    shifted = sp.Poly(sp.expand(poly.as_expr().subs(x, u + a)), u)
    lo_u, hi_u = (lim if lim in (sp.oo, -sp.oo) else lim - a for lim in (lo, hi))
    total = sp.Add(*[c * _gauss_power(k, lo_u, hi_u) for (k,), c in shifted.terms()])
    return sp.exp(b + a**2 / 2) * total


def _trig_integral(term: sp.Expr, x: sp.Symbol):
    """E[term] over the whole line with sin/cos written as complex exponentials (then completing the
    square as for real exponentials); None if a piece is not of that form or the result is not real."""
    parts = sp.Add.make_args(sp.expand(term.rewrite(sp.exp)))
    pieces = [_poly_exp_integral(sp.powsimp(p), x, -sp.oo, sp.oo) for p in parts]
    if any(p is None for p in pieces):
        return None
    value = sp.simplify(sp.expand_complex(sp.Add(*pieces)))
    return None if value.has(sp.I) else value


def gaussian_integral(expr: sp.Expr, x: sp.Symbol, seconds: float = 10.0) -> sp.Expr | None:
    """E[expr(z)] for z ~ N(0, 1) in closed form, or None (not attempted, failed, or over budget).

    Piecewise expressions (also ``Abs``/``sign``/``Max``) are integrated branch by branch over the
    interval where each branch is selected, term by term after expansion.
    """
    expr = sp.piecewise_fold(expr.rewrite(sp.Piecewise))
    pieces = branches(expr)
    regions = effective_regions([c for _, c in pieces], x)
    density = sp.exp(-(x**2) / 2) / sp.sqrt(2 * sp.pi)
    total = sp.S.Zero
    try:
        with time_budget(seconds):
            for (value, _), region in zip(pieces, regions):
                if region is None:
                    return None
                for iv in region.args if isinstance(region, sp.Union) else [region]:
                    if iv is sp.S.EmptySet or isinstance(iv, sp.FiniteSet):
                        continue  # measure zero
                    if not isinstance(iv, sp.Interval):
                        return None
                    for term in sp.Add.make_args(sp.expand(value)):
                        if not _integrable_term(term, x):
                            return None
                        closed = _poly_exp_integral(sp.powsimp(term), x, iv.start, iv.end)
                        if closed is None and iv == sp.Interval(-sp.oo, sp.oo):
                            closed = _trig_integral(term, x)
                        if closed is None:  # sin/cos on a half-line: leave it to SymPy
                            closed = sp.integrate(term * density, (x, iv.start, iv.end))
                        total += closed
            value = sp.simplify(total.rewrite(sp.erf))
    except (_Timeout, sp.PolynomialError, NotImplementedError, TypeError, ValueError, RecursionError):
        return None
    if value.has(sp.Integral) or value.free_symbols or not value.is_finite:
        return None
    return value


def symbolic_moments(act: Activation, params: Mapping[str, float] | None = None, seconds: float = 10.0
                     ) -> dict[str, sp.Expr | None]:
    """Exact ``{"mean", "second", "deriv_second"}`` for z ~ N(0, 1) (a value is None where SymPy cannot)."""
    x = act.spec.x
    subs = {act.symbol(k): _number(v) for k, v in param_values(act, params).items()}
    f = elementary(act.derivation.f).xreplace(subs)
    fp = elementary(act.derivative("x")).xreplace(subs)
    return {
        "mean": gaussian_integral(f, x, seconds),
        "second": gaussian_integral(f**2, x, seconds),
        "deriv_second": gaussian_integral(fp**2, x, seconds),
    }
