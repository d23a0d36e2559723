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
  ``1 - tanh(u)**2``                    ``4*sigmoid(2*u)*sigmoid(-2*u)``
  ``1 + erf(u)`` / ``1 - erf(u)``       ``2*ndtr(sqrt(2)*u)`` / ``2*ndtr(-sqrt(2)*u)``
  ``2*ndtr(u) - 1``                     ``erf(u/sqrt(2))``
  ``cosh(u) - 1`` / ``1 - cos(u)``      ``2*sinh(u/2)**2`` / ``2*sin(u/2)**2``
  ``sinh(u)**p * cosh(u)**q`` (q < 0)   ``tanh(u)**p * cosh(u)**(p + q)``
  ``u*sign(u)``                         ``Abs(u)``
  ``a > b`` (a - b shorter expanded)    ``expand(a - b) > 0``
  ====================================  =====================

Each replaces a difference of nearly equal numbers (or inf/inf) by a form without it; where no fixed rewrite
is right everywhere, :mod:`actsym.regimes` chooses between forms by measurement.
"""

from __future__ import annotations

import sympy as sp

from actsym.functions import expm1, log1p, ndtr, sigmoid, softplus


def canonicalize(expr: sp.Expr) -> sp.Expr:
    """Rewrite kinks as Piecewise, apply the stable rewrites and fold Piecewise to the top level."""
    expr = expr.replace(
        lambda e: isinstance(e, (sp.Max, sp.Min, sp.Heaviside)),
        lambda e: e.rewrite(sp.Piecewise),
    )
    expr = stabilize(expr)
    if expr.has(sp.Piecewise):
        expr = nan_propagating_order(simplify_conditions(sp.piecewise_fold(expr)))
    return expr


#: Seconds for turning one branch condition into intervals (see :func:`simplify_conditions`).
CONDITION_SECONDS = 1


#: condition -> its interval form (or itself), per process: f and each derivative share their conditions.
_CONDITIONS: dict = {}


def _as_intervals(cond, x, time_budget, timeout):
    try:
        with time_budget(CONDITION_SECONDS):
            new = cond.as_set().as_relational(x)
            new = new.replace(lambda c: isinstance(c, sp.Ne), lambda c: sp.Or(sp.Lt(*c.args), sp.Gt(*c.args)))
    except (timeout, NotImplementedError, TypeError, ValueError, AttributeError, RecursionError):
        return cond
    if new is not sp.false and new is not sp.true and sp.count_ops(new) >= sp.count_ops(cond):
        return cond  # already as simple: keep the user's spelling (x > 0, not 0 < x)
    return new


def simplify_conditions(expr: sp.Expr) -> sp.Expr:
    """Rewrite each condition on x of a top-level Piecewise as its set of intervals, and drop branches that
    are never selected.

    Folding sums and products of Piecewise nests conditions (``(x < 1) & ((x >= 1) | (x <= 0.54) | ...)``)
    until SymPy's Piecewise constructor, and everything after it, takes minutes; as intervals they are
    short (``(x > 0.54) & (x < 1)``). Conditions on parameters are left as they are. ``x != c`` is written
    ``(x < c) | (x > c)`` so that NaN still fails it (and lands in the last branch, like before).
    """
    if not isinstance(expr, sp.Piecewise):
        return expr
    from actsym.derive import _Timeout, time_budget

    xs = [s for s in expr.free_symbols if s.name == "x"]
    if not xs:
        return expr
    x = xs[0]
    out = []
    for value, cond in expr.args:
        new = cond
        if cond is not sp.true and cond.free_symbols == {x}:
            new = _CONDITIONS.get(cond)
            if new is None:
                new = _CONDITIONS[cond] = _as_intervals(cond, x, time_budget, _Timeout)
        if new is sp.false:
            continue
        out.append((value, new))
        if new is sp.true:
            break
    if len(out) == len(expr.args) and all(a == b for a, b in zip(out, expr.args)):
        return expr
    if not out:
        return expr
    if out[-1][1] is sp.true and len(out) == 1:
        return out[0][0]
    return sp.Piecewise(*out)


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


_ORDER = (sp.StrictLessThan, sp.LessThan, sp.StrictGreaterThan, sp.GreaterThan)


def _rewrite_relational(rel):
    """``a > b`` as ``expand(a - b) > 0`` when the difference is shorter: ``alpha*(x + c) - c >
    alpha*(x - c) + c`` (from a Max) compares two huge nearly equal numbers at x = 1e26 and picks a branch
    at random; ``2*alpha*c - 2*c > 0`` has no x left."""
    if not isinstance(rel, _ORDER) or rel.rhs == 0:
        return None
    d = sp.expand(rel.lhs - rel.rhs)
    if sp.count_ops(d) < sp.count_ops(rel.lhs) + sp.count_ops(rel.rhs):
        return rel.func(d, 0)
    return None


def _rewrite_sign_product(m: sp.Mul):
    """``u*sign(u)`` as ``|u|`` (what ``together`` needs to see that ``|x| + 1 - x*sign(x)`` is 1)."""
    for f in m.args:
        if isinstance(f, sp.sign) and f.args[0] in m.args:
            rest = list(m.args)
            rest.remove(f)
            rest.remove(f.args[0])
            return sp.Mul(*rest) * sp.Abs(f.args[0])
    return None


def _rewrite_node(e: sp.Basic) -> sp.Basic:
    if e.is_Relational:
        new = _rewrite_relational(e)
        return e if new is None else new
    if isinstance(e, sp.log):
        return _rewrite_log(e.args[0]) or e
    if e.is_Add:
        return _rewrite_constant_pair(e) or e
    if e.is_Pow:
        return _rewrite_sigmoid_pow(e) or e
    if e.is_Mul:
        return _rewrite_exp_times_sigmoid(e) or _rewrite_sinh_cosh(e) or _rewrite_sign_product(e) or e
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


def _pair_rules(const, coeff, factor):
    """c + k*factor (one term of a sum) as a cancellation-free expression, or None."""
    if isinstance(factor, sp.exp) and coeff == -const:  # c - c*exp(u) = -c*expm1(u)
        return coeff * expm1(factor.args[0])
    if factor.is_Pow and factor.exp == 2 and isinstance(factor.base, sp.tanh) and coeff == -const:
        u = factor.base.args[0]
        return 4 * const * sigmoid(2 * u) * sigmoid(-2 * u)  # c*(1 - tanh(u)**2) = c*sech(u)**2
    if isinstance(factor, sp.erf) and abs(coeff) == abs(const):
        u = factor.args[0]  # c*(1 + erf(u)) = 2*c*ndtr(sqrt(2)*u); SymPy would turn erfc(-u) into 2 - erfc(u)
        return 2 * const * ndtr(sp.sqrt(2) * (u if coeff == const else -u))
    if isinstance(factor, ndtr) and coeff == -2 * const:  # k*(2*ndtr(u) - 1) = k*erf(u/sqrt(2)): no cancellation
        return coeff / 2 * sp.erf(factor.args[0] / sp.sqrt(2))
    if isinstance(factor, sp.cosh) and coeff == -const:
        return 2 * coeff * sp.sinh(factor.args[0] / 2) ** 2
    if isinstance(factor, sp.cos) and coeff == -const:
        return 2 * const * sp.sin(factor.args[0] / 2) ** 2
    return None


def _rewrite_constant_pair(add: sp.Expr):
    const, rest = add.as_coeff_Add()
    if const == 0:
        return None
    terms = sp.Add.make_args(rest)
    for i, term in enumerate(terms):
        coeff, factor = term.as_coeff_Mul()
        new = _pair_rules(const, coeff, factor)
        if new is not None:
            return new + sp.Add(*(terms[:i] + terms[i + 1 :]))
    return None


def _rewrite_sinh_cosh(m: sp.Mul):
    powers = {}
    for f in m.args:
        base, e = f.as_base_exp()
        if isinstance(base, (sp.sinh, sp.cosh)) and e.is_number:
            powers[(type(base), base.args[0])] = (f, e)
    for (kind, u), (f, p) in powers.items():
        if kind is not sp.sinh or not p > 0:
            continue
        g = powers.get((sp.cosh, u))
        if g is None or not g[1] < 0:
            continue
        rest = [h for h in m.args if h is not f and h is not g[0]]
        return sp.Mul(*rest) * sp.tanh(u) ** p * sp.cosh(u) ** (p + g[1])
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
