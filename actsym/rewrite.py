"""Expression rewrites that run before differentiation and printing.

* :func:`canonicalize` turns ``Max``/``Min``/``Heaviside`` into ``Piecewise`` (whose derivative SymPy knows
  branch by branch, with PyTorch's convention f'(kink) = derivative of the selected branch) and applies
  :func:`stabilize`.
* :func:`stabilize` replaces overflow-prone idioms by the stable primitives of :mod:`actsym.functions`:

  ====================================  =====================
  ``exp(u) - 1``  /  ``1 - exp(u)``     ``expm1(u)`` / ``-expm1(u)``
  ``log(1 + u)``                        ``log1p(u)``
  ``log(1 + exp(u))``                   ``softplus(u)``
  ``1/(1 + exp(u))``                    ``sigmoid(-u)``
  ``exp(u) * sigmoid(-u)``              ``sigmoid(u)``
  ``log(sigmoid(u))``                   ``-softplus(-u)``
  ====================================  =====================
"""

from __future__ import annotations

import sympy as sp

from actsym.functions import expm1, log1p, sigmoid, softplus


def canonicalize(expr: sp.Expr) -> sp.Expr:
    """Rewrite kinks as Piecewise, apply the stable rewrites and fold Piecewise to the top level."""
    expr = expr.replace(
        lambda e: isinstance(e, (sp.Max, sp.Min, sp.Heaviside)),
        lambda e: e.rewrite(sp.Piecewise),
    )
    expr = stabilize(expr)
    if expr.has(sp.Piecewise):
        expr = nan_propagating_order(sp.piecewise_fold(expr))
    return expr


def nan_propagating_order(expr: sp.Expr) -> sp.Expr:
    """Put an x-dependent branch last in a two-branch Piecewise.

    NaN fails every comparison, so it always lands in the final branch; if that branch is a constant
    (``relu``'s 0) NaN would silently become a number. ``Piecewise((0, x <= 0), (x, True))`` keeps
    NaN in -> NaN out, like PyTorch's native ops.
    """
    if not isinstance(expr, sp.Piecewise) or len(expr.args) != 2:
        return expr
    (a, c), (b, last) = expr.args
    if last is not sp.true or not isinstance(c, sp.core.relational.Relational):
        return expr
    x = next((s for s in c.free_symbols if s.name == "x"), None)
    if x is None or x in b.free_symbols or x not in a.free_symbols:
        return expr
    return sp.Piecewise((b, c.negated), (a, True))


def stabilize(expr: sp.Basic) -> sp.Basic:
    """Bottom-up application of the stable rewrites listed in the module docstring."""
    if expr.is_Atom or not expr.args:
        return expr
    args = [stabilize(a) for a in expr.args]
    if any(a is not b for a, b in zip(args, expr.args)):
        expr = expr.func(*args)
    return _rewrite_node(expr)


def _rewrite_node(e: sp.Basic) -> sp.Basic:
    if isinstance(e, sp.log):
        return _rewrite_log(e.args[0]) or e
    if e.is_Add:
        return _rewrite_expm1(e) or e
    if e.is_Pow:
        return _rewrite_sigmoid_pow(e) or e
    if e.is_Mul:
        return _rewrite_exp_times_sigmoid(e) or e
    return e


def _rewrite_log(arg: sp.Expr):
    if isinstance(arg, sigmoid):
        return -softplus(-arg.args[0])
    if arg.is_Add:
        const, rest = arg.as_coeff_Add()
        if const == 1:
            if isinstance(rest, sp.exp):
                return softplus(rest.args[0])
            return log1p(rest)
    return None


def _rewrite_expm1(add: sp.Expr):
    const, rest = add.as_coeff_Add()
    if const == 0:
        return None
    terms = sp.Add.make_args(rest)
    for i, term in enumerate(terms):
        coeff, factor = term.as_coeff_Mul()
        if isinstance(factor, sp.exp) and coeff == -const:
            others = terms[:i] + terms[i + 1 :]
            return coeff * expm1(factor.args[0]) + sp.Add(*others)
    return None


def _rewrite_sigmoid_pow(p: sp.Pow):
    base, exponent = p.args
    if not (exponent.is_Integer and exponent < 0 and base.is_Add):
        return None
    const, rest = base.as_coeff_Add()
    if const == 1 and isinstance(rest, sp.exp):
        return sigmoid(-rest.args[0]) ** (-exponent)
    return None


def _rewrite_exp_times_sigmoid(m: sp.Mul):
    factors = list(m.args)
    for i, f in enumerate(factors):
        if not isinstance(f, sp.exp):
            continue
        for j, g in enumerate(factors):
            if isinstance(g, sigmoid) and sp.expand(f.args[0] + g.args[0]) == 0:
                rest = [h for k, h in enumerate(factors) if k not in (i, j)]
                return sp.Mul(*rest) * sigmoid(f.args[0])
    return None
