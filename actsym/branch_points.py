"""Branch points of a derived expression: the x values where a Piecewise condition changes.

Part of the derivation layer (it reads the derived f, never an Activation), so the property suite
(:func:`actsym.properties.boundaries`) and the analysis (:mod:`actsym.analysis.gauss`, which splits its
quadrature there) share it without importing each other.
"""

from __future__ import annotations

import sympy as sp

from actsym.derive import branches


def branch_points(f: sp.Expr, x: sp.Symbol, expr: sp.Expr | None = None) -> list[float]:
    """Parameter-free branch points of ``f`` in ``x``, sorted; 0 too when ``expr`` (the source expression,
    default ``f``) has ``Abs`` or ``sign`` (a kink even where the derivation wrote no Piecewise)."""
    pts: set[float] = set()
    for _, cond in branches(f):
        for rel in cond.atoms(sp.core.relational.Relational):
            if rel.free_symbols == {x}:
                try:
                    for r in sp.solve(sp.Eq(rel.lhs, rel.rhs), x):
                        if r.is_real:
                            pts.add(float(r))
                except NotImplementedError:
                    pass
    source = f if expr is None else expr
    if source.has(sp.Abs) or source.has(sp.sign):
        pts.add(0.0)
    return sorted(pts)
