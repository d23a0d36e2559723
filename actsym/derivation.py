"""Everything derived from a spec, computed once: derivatives, patches, hazards, numeric verification."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import mpmath
import sympy as sp

from actsym.derive import (
    branches,
    differentiate,
    effective_regions,
    find_hazards,
    guarded_simplify,
    interior_points,
    patch_removable,
)
from actsym.functions import mpmath_namespace
from actsym.rewrite import canonicalize
from actsym.spec import ActivationSpec


class DerivativeCheckFailed(AssertionError):
    pass


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

    @property
    def x(self) -> sp.Symbol:
        return self.spec.x

    def init_subs(self) -> dict:
        return {sp.Symbol(k, real=True): v.init for k, v in self.spec.params.items()}


def derive(spec: ActivationSpec, simplify: bool = True, verify: bool = True) -> Derivation:
    x = spec.x
    f = canonicalize(spec.expr)
    if simplify:
        f = guarded_simplify(f)
    grads = {"x": differentiate(f, x, simplify)}
    for p in spec.param_symbols:
        grads[p.name] = differentiate(f, p, simplify)
    patched, removable = {}, {}
    for key, e in [("f", f), *grads.items()]:
        patched[key], pts = patch_removable(e, x)
        if pts:
            removable[key] = pts
    d = Derivation(spec, f, grads, patched, removable, find_hazards(f, x))
    if verify:
        d.checks = verify_derivatives(d)
    return d


def _mp_callable(expr: sp.Expr, symbols: list[sp.Symbol]):
    return sp.lambdify(symbols, expr, modules=[mpmath_namespace(), "mpmath"])


def verify_derivatives(d: Derivation, points_per_branch: int = 3, seed: int = 0) -> list[str]:
    """Compare every symbolic derivative with a 30-digit finite difference of f (mpmath).

    Points are taken well inside each branch (never on a boundary). Parameters are checked at their
    initial values and at a deterministic perturbation of them. Raises DerivativeCheckFailed on mismatch.
    """
    rng = random.Random(seed)
    x = d.x
    params = d.spec.param_symbols
    symbols = [x, *params]
    f_mp = _mp_callable(d.f, symbols)
    conds = [c for _, c in branches(d.f)]
    regions = effective_regions(conds, x)
    xs: list[float] = []
    for region in regions:
        if region is None:
            xs += [0.7, -0.9, 2.3, -2.1]
        else:
            xs += interior_points(region, points_per_branch)
    param_sets = [[v.init for v in d.spec.params.values()]]
    if params:
        param_sets.append([v.init + rng.choice([0.25, -0.2, 0.5]) for v in d.spec.params.values()])
    report = []
    with mpmath.workdps(30):
        for key, g in d.patched.items():
            if key == "f":
                continue
            g_mp = _mp_callable(g, symbols)
            idx = 0 if key == "x" else 1 + [p.name for p in params].index(key)
            worst = 0.0
            for pv in param_sets:
                for x0 in xs:
                    args = [mpmath.mpf(x0), *[mpmath.mpf(v) for v in pv]]

                    def along(t, args=args, idx=idx):
                        a = list(args)
                        a[idx] = t
                        return f_mp(*a)

                    try:
                        numeric = mpmath.diff(along, args[idx])
                        symbolic = g_mp(*args)
                    except (ZeroDivisionError, ValueError):
                        continue  # a pole of f itself at this parameter value: nothing to compare
                    if not (mpmath.isfinite(numeric) and mpmath.isfinite(symbolic)):
                        continue
                    err = abs(numeric - symbolic) / max(1, abs(numeric))
                    worst = max(worst, float(err))
            if worst > 1e-12:
                raise DerivativeCheckFailed(
                    f"{d.spec.name}: d/d{key} disagrees with finite differences (rel. error {worst:.2e})"
                )
            report.append(f"d/d{key}: max rel. error {worst:.1e} vs 30-digit finite differences")
    return report
