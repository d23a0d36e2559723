"""Everything derived from a spec, computed once: derivatives, patches, hazards, numeric verification."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import mpmath
import sympy as sp

from actsym.budget import BudgetExceeded, cpu_clock, run_hard, stage
from actsym.derive import (
    branches,
    differentiate,
    effective_regions,
    find_hazards,
    guarded_simplify,
    interior_points,
    patch_parameter_singularities,
    patch_removable,
)
from actsym.functions import mpmath_namespace
from actsym.parse import ExpressionError
from actsym.regimes import REGIME_SECONDS, describe, improve
from actsym.rewrite import canonicalize
from actsym.spec import ActivationSpec

#: Seconds for the accuracy-regime searches of all of one activation's functions together (each also has
#: its own limit, regimes.REGIME_SECONDS; a function left without time keeps its form).
REGIME_TOTAL_SECONDS = 12
#: Seconds past its own deadline after which one function's regime search is killed (it runs in a forked
#: child: actsym.budget.run_hard) and the function keeps its form.
REGIME_GRACE_SECONDS = 2


class DerivativeCheckFailed(ExpressionError):
    """A symbolic derivative disagrees with high-precision finite differences of f (a refusal, one line)."""


@dataclass
class Derivation:
    """f and its first derivatives (wrt x and every parameter), ready for code generation."""

    spec: ActivationSpec
    f: sp.Expr  # canonical, stabilized
    grads: dict[str, sp.Expr]  # 'x' and parameter names -> derivative (before singularity patches)
    patched: dict[str, sp.Expr]  # same keys plus 'f' -> expression with removable singularities patched
    removable: dict[str, list[float]] = field(default_factory=dict)
    hazards: list[dict] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    #: key -> parameter values where it is 0/0 and takes its limit (['a = 0'])
    param_removable: dict[str, list[str]] = field(default_factory=dict)
    #: key -> what the accuracy-regime search did (actsym.regimes.describe)
    regimes: dict[str, str] = field(default_factory=dict)

    @property
    def x(self) -> sp.Symbol:
        return self.spec.x

    def init_subs(self) -> dict:
        return {sp.Symbol(k, real=True): v.init for k, v in self.spec.params.items()}


def _label(key: str) -> str:
    return "f" if key == "f" else f"df/d{key}"


def _require_defined(f: sp.Expr) -> None:
    """Refuse an f that divides by zero on a whole branch once Max/Min/Heaviside are Piecewise
    (``x/Heaviside(x)`` is x/0 for every x < 0)."""
    for value, cond in branches(f):
        if value.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
            where = "" if cond is sp.true else f" where {sp.sstr(cond)}"
            raise ExpressionError(f"expression is undefined{where}: it is {sp.sstr(value)} there (a division by zero)")


def derive(spec: ActivationSpec, simplify: bool = True, verify: bool = True, accurate: bool = True) -> Derivation:
    """Derive everything code generation needs (``accurate``: with the accuracy regimes of
    :mod:`actsym.regimes` where measurement finds them worth it). Each step runs as a named :func:`actsym.budget.stage`: an
    unexpected exception becomes a one-line refusal naming the step, and under
    :func:`actsym.budget.run_budgeted` a timeout names it too."""
    x = spec.x
    with stage("simplification of f"):
        f = f_raw = canonicalize(spec.expr)
        _require_defined(f)
        if simplify:
            f = guarded_simplify(f)
    grads = {}
    for key, sym in [("x", x), *((p.name, p) for p in spec.param_symbols)]:
        with stage(f"derivation of {_label(key)}"):
            grads[key] = differentiate(f, sym, simplify)
    patched, removable = {}, {}
    init = {p: spec.params[p.name].init for p in spec.param_symbols}
    param_removable: dict[str, list[str]] = {}
    regimes: dict[str, str] = {}
    taylor_f: dict = {}  # removable point of f -> its Taylor polynomial (one term more than the patch)
    symbols = {"x": x, **{p.name: p for p in spec.param_symbols}}
    for key, e in [("f", f), *grads.items()]:
        with stage(f"removable-singularity search in {_label(key)}"):
            if key == "f":
                patched[key], pts = patch_removable(e, x, record=taylor_f, subs=init)
            else:  # f's polynomial differentiated: the derivative's own series can take a minute
                known = {r: (sp.diff(t, symbols[key]) if t is not None else None) for r, t in taylor_f.items()}
                patched[key], pts = patch_removable(e, x, known=known, subs=init)
        if pts:
            removable[key] = pts
        with stage(f"parameter singularities of {_label(key)}"):
            patched[key], at = patch_parameter_singularities(patched[key], x, spec.param_symbols)
        if at:
            param_removable[key] = at
    if accurate:
        pvals = [v.init for v in spec.params.values()]
        end = cpu_clock() + REGIME_TOTAL_SECONDS  # CPU seconds, the searches' children included
        for key in list(patched):
            with stage(f"accuracy regimes of {_label(key)}"):
                old = patched[key]
                seconds = min(REGIME_SECONDS, end - cpu_clock())
                alternatives = lambda key=key: _unsimplified(key, f_raw, symbols, taylor_f, init)  # noqa: E731
                if seconds < 0.05:
                    continue
                try:  # its own deadline is soft (checked between steps): a hard one on top, with a grace
                    patched[key] = run_hard(improve, old, x, spec.param_symbols, pvals, alternatives, seconds,
                                            seconds=seconds + REGIME_GRACE_SECONDS,
                                            stage_name=f"accuracy regimes of {_label(key)}")
                except BudgetExceeded:
                    patched[key] = old  # the search overran: the function keeps its form
                note = describe(old, patched[key], x)
                if note:
                    regimes[key] = note
    with stage("hazard search"):
        hazards = find_hazards(f, x)
    d = Derivation(spec, f, grads, patched, removable, hazards, param_removable=param_removable, regimes=regimes)
    if verify:
        d.checks = verify_derivatives(d)
    return d


def _unsimplified(key: str, f_raw: sp.Expr, symbols: dict, taylor_f: dict, init: dict) -> list[sp.Expr]:
    """The function ``key`` derived from the unsimplified f, without simplification, patched: an alternative
    for the regime search (simplification is kept only where it loses no accuracy)."""
    x = symbols["x"]
    if key == "f":
        e = f_raw
        known = {r: t for r, t in taylor_f.items()}
    else:
        e = differentiate(f_raw, symbols[key], simplify=False)
        known = {r: (sp.diff(t, symbols[key]) if t is not None else None) for r, t in taylor_f.items()}
    patched, _ = patch_removable(e, x, known=known, subs=init)
    return [patched]


def _mp_callable(expr: sp.Expr, symbols: list[sp.Symbol]):
    # zoo/oo have no mpmath spelling in lambdify; as nan/inf the check skips the points where they are selected
    expr = expr.xreplace({sp.zoo: sp.nan, sp.oo: sp.Float("inf"), -sp.oo: sp.Float("-inf")})
    return sp.lambdify(symbols, expr, modules=[mpmath_namespace(), "mpmath"])


#: Digits of the check; raised by the magnitude of f at a point (``x + exp(800)``: 347 more digits), up to
#: MAX_CHECK_DIGITS (beyond that the point is skipped).
CHECK_DIGITS = 30
MAX_CHECK_DIGITS = 2000
_UNDEFINED = (ArithmeticError, ValueError, TypeError)  # a pole, a domain error, a non-real comparison


def check_points(d: Derivation, param_values: list[float], points_per_branch: int = 3) -> list[float]:
    """Points well inside every branch region that has an interior, with the parameters at ``param_values``
    (conditions on parameters are resolved at those values). One-point regions ({x = 0} after merging two
    Piecewise) are never sampled: a finite difference there crosses the neighbouring branches."""
    x = d.x
    subs = dict(zip(d.spec.param_symbols, [sp.Float(v, 30) for v in param_values]))
    conds = [c.subs(subs) if subs else c for _, c in branches(d.f)]
    xs: list[float] = []
    for region in effective_regions(conds, x):
        if region is None:
            xs += [0.7, -0.9, 2.3, -2.1]
        else:
            xs += interior_points(region, points_per_branch, isolated=False)
    return xs


def verify_derivatives(d: Derivation, points_per_branch: int = 3, seed: int = 0) -> list[str]:
    """Compare every symbolic derivative with a finite difference of f at 30 significant digits (mpmath).

    Points are taken well inside each branch (never on a boundary or in a one-point branch). Parameters are
    checked at their initial values and at a deterministic perturbation of them. Points where f is undefined
    or too large to evaluate are skipped. Raises DerivativeCheckFailed on mismatch."""
    rng = random.Random(seed)
    x = d.x
    params = d.spec.param_symbols
    symbols = [x, *params]
    f_mp = _mp_callable(d.f, symbols)
    param_sets = [[v.init for v in d.spec.params.values()]]
    if params:
        param_sets.append([v.init + rng.choice([0.25, -0.2, 0.5]) for v in d.spec.params.values()])
    with stage("derivative check (sample points)"):
        samples = [(pv, check_points(d, pv, points_per_branch)) for pv in param_sets]
    report = []
    for key, g in d.patched.items():
        if key == "f":
            continue
        with stage(f"derivative check of {_label(key)}"):
            g_mp = _mp_callable(g, symbols)
            idx = 0 if key == "x" else 1 + [p.name for p in params].index(key)
            worst, compared = 0.0, 0
            for pv, xs in samples:
                for x0 in xs:
                    err = _point_error(f_mp, g_mp, [x0, *pv], idx)
                    if err is not None:
                        worst, compared = max(worst, err), compared + 1
            if worst > 1e-12:
                raise DerivativeCheckFailed(
                    f"{d.spec.name}: d/d{key} disagrees with finite differences (rel. error {worst:.2e})"
                )
            if compared:
                report.append(f"d/d{key}: max rel. error {worst:.1e} vs 30-digit finite differences")
            else:
                report.append(f"d/d{key}: not checked (f is undefined or too large at every sample point)")
    return report


def _point_error(f_mp, g_mp, values: list[float], idx: int) -> float | None:
    """Relative error of the symbolic derivative at one point, or None where nothing can be compared."""
    with mpmath.workdps(CHECK_DIGITS):
        try:
            scale = abs(f_mp(*[mpmath.mpf(v) for v in values]))
        except _UNDEFINED:
            return None
        if not mpmath.isfinite(scale):
            return None
        digits = CHECK_DIGITS + max(0, int(mpmath.log10(scale)) + 1 if scale > 1 else 0)
    if digits > MAX_CHECK_DIGITS:
        return None
    with mpmath.workdps(digits):
        args = [mpmath.mpf(v) for v in values]

        def along(t):
            a = list(args)
            a[idx] = t
            return f_mp(*a)

        try:
            numeric = mpmath.diff(along, args[idx])
            symbolic = g_mp(*args)
        except _UNDEFINED:
            return None  # a pole of f itself at this parameter value: nothing to compare
        if not (mpmath.isfinite(numeric) and mpmath.isfinite(symbolic)):
            return None
        return float(abs(numeric - symbolic) / max(1, abs(numeric)))
