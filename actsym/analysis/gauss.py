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

import contextlib
import functools
import signal
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import sympy as sp
import torch

from actsym.activation import Activation
from actsym.analysis.common import derivatives, param_values, pointwise
from actsym.derive import branches, effective_regions
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
        return self.second - self.mean**2


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
    from actsym.properties import boundaries

    return tuple(boundaries(act))


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
    given). ``breaks``: kinks of f (default: :func:`actsym.properties.boundaries`)."""
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
        terms = np.stack([f, f**2, fp**2])
        totals = terms @ w
        ends = np.abs(terms[:, [0, -1]] * w[[0, -1]]).max(axis=1)
        if half_range >= 96 or np.all(ends <= 1e-17 * np.maximum(np.abs(totals), 1e-300)) or not np.all(
            np.isfinite(totals)
        ):
            return Moments(*(float(v) for v in totals))
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


class _Timeout(Exception):
    pass


@contextlib.contextmanager
def _budget(seconds: float):
    """SIGALRM time limit in the main thread; elsewhere the allowlist above is the only guard."""
    if not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise _Timeout

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


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
        with _budget(seconds):
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
                        total += sp.integrate(term * density, (x, iv.start, iv.end))
            value = sp.simplify(total)
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
