"""Lowering: named SymPy outputs -> a straight-line program of (name, expression) assignments.

Two things happen here, once for all outputs together so they share work:

1. **Safe Piecewise.** ``Piecewise((e0, c0), (e1, c1), ...)`` becomes masks ``m_k`` (branch k is *selected*:
   c_k and no earlier condition), per-branch *safe inputs* ``xs_k`` and
   ``where(m0, e0(xs_0), where(m1, e1(xs_1), ...))``. The unselected branches are therefore evaluated only at
   harmless points and can put neither inf/NaN into the value nor (through ``0 * inf``) into any gradient --
   including double backward through the generated backward. A safe input is ``clamp(x, lo, hi)`` when the
   branch region is an interval and e_k and de_k/dx are finite at its finite ends for any parameter values
   (no mask, cheap, NaN stays NaN); otherwise ``where(m_k, x, p_k)`` with ``p_k`` a point inside the region
   where e_k is finite. NaN inputs fail every condition, land in the last branch and stay NaN.
2. **CSE** over all outputs with deterministic temporary names ``t0, t1, ...``; temporaries that cost one
   scalar operation (``x/2``, ``-xs0``) are substituted back (recomputing them in place is cheaper than a
   buffer), and assignments nothing uses are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp
from sympy.simplify.cse_main import tree_cse

from actsym.codegen.printer import Clamp, Select, Where, torch_code
from actsym.derive import branches, effective_regions, safe_point
from actsym.numerics import Temporary


@dataclass
class Program:
    """Assignments in order, then the outputs (each name -> expression over the assigned names)."""

    assignments: list[tuple[str, sp.Basic]] = field(default_factory=list)
    outputs: list[tuple[str, sp.Basic]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def lines(self, like: str = "x") -> list[str]:
        out = [f"{name} = {torch_code(e, like)}" for name, e in self.assignments]
        return out

    def output_code(self, like: str = "x") -> dict[str, str]:
        return {name: torch_code(e, like) for name, e in self.outputs}

    def op_count(self) -> int:
        exprs = [e for _, e in self.assignments] + [e for _, e in self.outputs]
        return int(sum(sp.count_ops(e) for e in exprs if isinstance(e, sp.Expr)))


def lower(
    outputs: list[tuple[str, sp.Expr]],
    x: sp.Symbol,
    init_subs: dict,
    scale: sp.Symbol | None = None,
    reserved: set[str] | frozenset[str] = frozenset(),
) -> Program:
    """Lower the named outputs; ``init_subs`` maps parameter symbols to typical values (for safe points);
    ``scale`` (the incoming gradient) multiplies every output. Temporaries (``m0``, ``xs0``, ``t0``) are named
    so that they never coincide with a name in ``reserved`` or with any symbol of the outputs."""
    prog = Program()
    taken = set(reserved) | {s.name for _, e in outputs for s in e.free_symbols} | {x.name}
    if scale is not None:
        taken.add(scale.name)

    def fresh(prefix: str):
        k = 0
        while True:
            if f"{prefix}{k}" not in taken:
                taken.add(f"{prefix}{k}")
                yield f"{prefix}{k}"
            k += 1

    mask_names, safe_names = fresh("m"), fresh("xs")
    masks: dict[sp.Basic, sp.Symbol] = {}
    safe_inputs: dict[tuple[sp.Symbol, float], sp.Symbol] = {}
    lowered = []

    def mask_symbol(cond: sp.Basic) -> sp.Symbol:
        if cond not in masks:
            sym = sp.Symbol(next(mask_names))
            masks[cond] = sym
            prog.assignments.append((sym.name, cond))
        return masks[cond]

    def safe_input(key, expr: sp.Basic) -> sp.Symbol:
        if key not in safe_inputs:
            sym = sp.Symbol(next(safe_names), real=True)
            safe_inputs[key] = sym
            prog.assignments.append((sym.name, expr))
        return safe_inputs[key]

    for name, expr in outputs:
        pairs = branches(expr)
        if len(pairs) == 1:
            lowered.append((name, expr))
            continue
        regions = effective_regions([c for _, c in pairs], x)
        selected: list[sp.Symbol] = []
        pieces = []
        previous: list[sp.Basic] = []
        # When every non-constant branch can take a clamp as its input, all of them do (even those that are
        # finite everywhere): then no branch is inf/NaN outside its region, even at x = +-inf, and the
        # in-place code could select with float indicators instead of torch.where.
        clampable = all(
            not v.has(x) or (r is not None and r is not sp.S.EmptySet and clamp_input(r, v, x, init_subs) is not None)
            for (v, _), r in zip(pairs, regions)
            if r is not sp.S.EmptySet
        )
        for (value, cond), region in zip(pairs, regions):
            if region is not None and region is sp.S.EmptySet:
                continue
            raw = sp.true if cond is sp.true else mask_symbol(cond)
            eff = sp.And(raw, *[sp.Not(c) for c in previous])
            m = eff if isinstance(eff, sp.Symbol) else mask_symbol(eff)
            if raw is not sp.true:
                previous.append(raw)
            needs_mask = value.has(x) and (clampable or not safe_everywhere(value, x))
            clamp = clamp_input(region, value, x, init_subs) if needs_mask else None
            p = safe_point(region, value, x, init_subs) if needs_mask and clamp is None else None
            if needs_mask and clamp is None and p is None and region is None:
                p = parametric_safe_point(eff.xreplace({s: c for c, s in masks.items()}), value, x, init_subs)
            if needs_mask and clamp is None and p is None:
                p = finite_point(value, x, init_subs)
            if needs_mask and clamp is None and p is None:
                prog.notes.append(f"{name}: no safe point for branch {cond}; evaluated unmasked")
            if clamp is not None:
                v = value.subs(x, safe_input(clamp, clamp))
            elif p is not None:
                point = sp.Float(p) if isinstance(p, float) else p
                v = value.subs(x, safe_input((m, point), Select(m, x, point)))
            else:
                v = value
            pieces.append((m, v))
            selected.append(m)
        result = pieces[-1][1]
        for m, v in reversed(pieces[:-1]):
            result = Where(m, v, result)
        lowered.append((name, result))

    names = [n for n, _ in lowered]
    exprs = [_absorb_signs(e if scale is None else scale * e) for _, e in lowered]
    # Whole subexpressions only (no common sub-products or partial sums, which sp.cse's opt_cse would
    # extract: 4*b*x taken out of 4*b*x*exp(-2*b*x) reorders the product the regime scorer measured, and
    # (4*b*x)*exp(...) is inf*0 where (exp(...)*b*x)*4 is 0); temporaries order as compound values.
    reps, reduced = tree_cse(exprs, (Temporary(n) for n in fresh("t")), opt_subs={}, order="canonical")
    reps, reduced = _inline_cheap(reps, reduced)
    prog.assignments += [(s.name, e) for s, e in reps]
    prog.outputs = list(zip(names, reduced))
    _drop_unused(prog)
    return prog


def finite_point(value: sp.Expr, x: sp.Symbol, init_subs: dict) -> float | None:
    """Any point where the branch value and its first two x-derivatives are finite (initial parameters and
    two perturbations). The safe input ``where(mask, x, p)`` only uses p where the branch is *not* selected,
    so p need not lie in the branch's region -- it must only keep the discarded evaluation (and, through
    double backward, its derivatives) finite."""
    from actsym.functions import mpmath_namespace

    params = sorted(init_subs, key=lambda s: s.name)
    modules = [mpmath_namespace(), "mpmath"]
    try:
        d1 = sp.diff(value, x)
        fns = [sp.lambdify([x, *params], e, modules=modules) for e in (value, d1, sp.diff(d1, x))]
    except Exception:  # noqa: BLE001 - nothing printable: no point
        return None
    trials = [[init_subs[q] + d for q in params] for d in (0.0, 0.25, -0.2)]
    for p in (0.5, -0.5, 1.5, -1.5, 0.25, -0.25, 2.5, -2.5, 0.1, -0.1, 4.0, -4.0):
        ok = True
        for pv in trials:
            for fn in fns:
                try:
                    v = complex(fn(p, *pv))
                except (TypeError, ValueError, ZeroDivisionError, OverflowError, MemoryError):
                    ok = False
                    break
                if not (abs(v) < 1e30 and v.imag == 0):
                    ok = False
                    break
            if not ok:
                break
        if ok:
            return p
    return None


def parametric_safe_point(cond: sp.Basic, value: sp.Expr, x: sp.Symbol, init_subs: dict) -> sp.Expr | None:
    """A safe point for a branch whose condition involves parameters: an expression in the parameters, one
    unit inside a boundary ``x = r(params)`` of a relational that is linear in x (``x > b`` -> ``b + 1``), that
    satisfies the condition and keeps the branch and its x-derivative finite at the initial parameter values
    and at two perturbations of them. None when no such point is found. Numeric checks run on lambdified
    functions (``subs`` on large conditions costs seconds per candidate)."""
    from actsym.functions import mpmath_namespace

    roots = []
    for r in dict.fromkeys(r for r in sp.preorder_traversal(cond) if isinstance(r, sp.core.relational.Relational)):
        u = sp.expand(r.lhs - r.rhs)
        if not (u.has(x) and u.is_polynomial(x) and sp.degree(u, x) == 1):
            continue
        slope, rest = u.coeff(x, 1), u.coeff(x, 0)
        if slope.has(x) or slope == 0:
            continue
        root = sp.simplify(-rest / slope) if sp.count_ops(rest) < 20 else -rest / slope
        if root not in roots:
            roots.append(root)
        if len(roots) >= 4:
            break
    if not roots:
        return None
    params = sorted(init_subs, key=lambda s: s.name)
    syms = [x, *params]
    modules = [mpmath_namespace(), "mpmath"]
    try:
        cond_fn = sp.lambdify(syms, cond, modules=modules)
        val_fn = sp.lambdify(syms, value, modules=modules)
        dval_fn = sp.lambdify(syms, sp.diff(value, x), modules=modules)
    except Exception:  # noqa: BLE001 - an unprintable condition: no parametric point
        return None
    trials = [[init_subs[p] + d for p in params] for d in (0.0, 0.25, -0.2)]

    def finite(fn, args) -> bool:
        try:
            v = complex(fn(*args))
        except (TypeError, ValueError, ZeroDivisionError, OverflowError):
            return False
        return abs(v) < 1e30 and v.imag == 0

    for root in roots:
        try:
            root_fn = sp.lambdify(params, root, modules=modules)
        except Exception:  # noqa: BLE001
            continue
        for d in (1, -1, sp.Rational(1, 2), -sp.Rational(1, 2), 2, -2):
            ok = True
            for pv in trials:
                try:
                    p0 = complex(root_fn(*pv)) + float(d)
                    if p0.imag or not bool(cond_fn(p0.real, *pv)):
                        ok = False
                        break
                except (TypeError, ValueError, ZeroDivisionError, OverflowError, MemoryError):
                    ok = False
                    break
                args = [p0.real, *pv]
                if not (finite(val_fn, args) and finite(dval_fn, args)):
                    ok = False
                    break
            if ok:
                return root + d
    return None


def _absorb_signs(e: sp.Basic) -> sp.Basic:
    """``-x*(t - 1)`` -> ``x*(1 - t)``: a negative product with a mostly-negative sum factor takes the sign
    into the sum (exact: negation distributes exactly), saving a negation pass."""

    def mostly_negative(a):
        return a.is_Add and 2 * sum(t.could_extract_minus_sign() for t in a.args) >= len(a.args)

    def flip(m):
        c, rest = m.as_coeff_Mul()
        args = list(sp.Mul.make_args(rest))
        i = next(i for i, a in enumerate(args) if mostly_negative(a))
        args[i] = sp.Add(*[-t for t in args[i].args])
        return sp.Mul(-c, *args, evaluate=False) if -c != 1 else sp.Mul(*args, evaluate=False)

    return e.replace(
        lambda m: m.is_Mul and m.as_coeff_Mul()[0].is_negative and any(mostly_negative(a) for a in m.args), flip
    )


def _is_cheap(e: sp.Basic) -> bool:
    """One scalar operation on one symbol: ``c*s``, ``s + c``, ``-s``."""
    return (e.is_Mul or e.is_Add) and len(e.args) == 2 and sum(a.is_Symbol for a in e.args) == 1 and any(
        a.is_number for a in e.args
    )


def _inline_cheap(reps, reduced):
    subs: dict = {}
    kept = []
    for sym, e in reps:
        e = e.xreplace(subs)
        if _is_cheap(e):
            subs[sym] = e
        else:
            kept.append((sym, e))
    return kept, [e.xreplace(subs) for e in reduced]


def _drop_unused(prog: Program) -> None:
    """Remove assignments (masks, safe inputs, temporaries) that no output needs."""
    needed = {s.name for _, e in prog.outputs for s in e.free_symbols}
    kept = []
    for name, e in reversed(prog.assignments):
        if name in needed:
            kept.append((name, e))
            needed |= {s.name for s in e.free_symbols}
    prog.assignments = kept[::-1]


#: Functions that are finite at every finite argument: parameters may appear inside them freely.
_ENTIRE = (sp.exp, sp.sin, sp.cos, sp.tanh, sp.sinh, sp.cosh, sp.atan, sp.erf, sp.erfc, sp.Abs, sp.sign)


def _entire_in(e: sp.Basic, params: set) -> bool:
    """True if ``e`` is finite for all finite values of ``params`` wherever its parameter-free parts are: the
    parameters enter only through sums, products, non-negative integer powers and entire functions."""
    from actsym.functions import expm1, sigmoid, softplus

    if not (e.free_symbols & params):
        return True
    if e.is_Pow:
        base, exp = e.args
        if exp.free_symbols & params or not (exp.is_Integer and exp >= 0):
            return False
    elif isinstance(e, sp.Function) and not isinstance(e, (*_ENTIRE, expm1, sigmoid, softplus)):
        return False
    elif not (e.is_Add or e.is_Mul or e.is_Pow or isinstance(e, sp.Function) or e.is_Symbol):
        return False
    return all(_entire_in(a, params) for a in e.args)


def clamp_input(region: sp.Set | None, value: sp.Expr, x: sp.Symbol, init_subs: dict) -> Clamp | None:
    """``Clamp(x, lo, hi)`` as the safe input of a branch selected on the interval ``region``, or None.

    Requires the branch value and its x-derivative to be finite at every finite end of the interval, for the
    initial parameter values and two perturbations of them, and the parameters to enter only through entire
    operations (so no parameter value can create a pole at the end). Otherwise the caller falls back to
    ``where(mask, x, p)``."""
    if not isinstance(region, sp.Interval):
        return None
    ends = [b for b in (region.inf, region.sup) if b.is_finite]
    if not ends or not _entire_in(value, set(init_subs)):
        return None
    samples = [init_subs] + [{k: v + d for k, v in init_subs.items()} for d in (0.37, -1.3)] if init_subs else [{}]
    import mpmath

    from actsym.numerics import guarded_lambdify

    syms = list(init_subs)
    try:
        # evaluated with guarded mpmath (SymPy's evalf of exp(-c*x**3) at x = -1000 inside a sigmoid ran for
        # minutes: it raises the working precision until it has 30 digits of a number below 1e-1e8)
        checks = [guarded_lambdify([x, *syms], e) for e in (value, sp.diff(value, x))]
        for end in ends:
            for subs in samples:
                for fn in checks:
                    with mpmath.workdps(30):
                        v = complex(fn(mpmath.mpf(str(sp.Float(end, 30))), *[subs[k] for k in syms]))
                    if not (abs(v) < 1e30 and abs(v.imag) < 1e-12):
                        return None
    except (TypeError, ValueError, ZeroDivisionError, RecursionError, OverflowError, MemoryError, NameError):
        return None  # cannot tell: no clamp (the caller masks with where(mask, x, p) instead)
    return Clamp(x, region.inf, region.sup)


#: Functions that are finite for every finite real input (so a branch built from them needs no masking).
_BOUNDED = (sp.sin, sp.cos, sp.tanh, sp.atan, sp.erf, sp.erfc, sp.Abs, sp.sign)


def safe_everywhere(e: sp.Basic, x: sp.Symbol) -> bool:
    """True if ``e`` is finite for every finite x (with at most quadratic growth), so it can be evaluated
    unmasked: polynomials of degree <= 2 in x wrapped in bounded functions. Conservative: False if unsure."""
    from actsym.functions import sigmoid

    if not e.has(x) or e.is_Atom:
        return True
    if e.is_Add or (e.is_Mul and sum(1 for a in e.args if a.has(x)) <= 2 and all(a.is_Atom or a.is_Pow or isinstance(a, (*_BOUNDED, sigmoid)) for a in e.args if a.has(x))):
        return all(safe_everywhere(a, x) for a in e.args)
    if e.is_Pow:
        base, exp = e.args
        return exp.is_Integer and 0 < exp <= 2 and base.is_Symbol
    if isinstance(e, (*_BOUNDED, sigmoid)):
        return True
    return False
