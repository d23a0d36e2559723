"""Lowering: named SymPy outputs -> a straight-line program of (name, expression) assignments.

Two things happen here, once for all outputs together so they share work:

1. **Safe Piecewise.** ``Piecewise((e0, c0), (e1, c1), ...)`` becomes masks ``m_k`` (branch k is *selected*:
   c_k and no earlier condition), per-branch *safe inputs* ``xs_k = where(m_k, x, p_k)`` with ``p_k`` a point
   inside branch k's region where e_k is finite, and ``where(m0, e0(xs_0), where(m1, e1(xs_1), ...))``.
   The unselected branches are therefore evaluated only at harmless points and can put neither inf/NaN
   into the value nor (through ``0 * inf``) into any gradient -- including double backward through the
   generated backward. NaN inputs fail every condition, land in the last branch unmasked and stay NaN.
2. **CSE** over all outputs with deterministic temporary names ``t0, t1, ...``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from actsym.codegen.printer import Select, Where, torch_code
from actsym.derive import branches, effective_regions, safe_point


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


def lower(outputs: list[tuple[str, sp.Expr]], x: sp.Symbol, init_subs: dict) -> Program:
    """Lower the named outputs; ``init_subs`` maps parameter symbols to typical values (for safe points)."""
    prog = Program()
    masks: dict[sp.Basic, sp.Symbol] = {}
    safe_inputs: dict[tuple[sp.Symbol, float], sp.Symbol] = {}
    lowered = []

    def mask_symbol(cond: sp.Basic) -> sp.Symbol:
        if cond not in masks:
            sym = sp.Symbol(f"m{len(masks)}")
            masks[cond] = sym
            prog.assignments.append((sym.name, cond))
        return masks[cond]

    def safe_input(mask: sp.Symbol, point: float) -> sp.Symbol:
        key = (mask, point)
        if key not in safe_inputs:
            sym = sp.Symbol(f"xs{len(safe_inputs)}", real=True)
            safe_inputs[key] = sym
            prog.assignments.append((sym.name, Select(mask, x, sp.Float(point))))
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
        for (value, cond), region in zip(pairs, regions):
            if region is not None and region is sp.S.EmptySet:
                continue
            raw = sp.true if cond is sp.true else mask_symbol(cond)
            eff = sp.And(raw, *[sp.Not(c) for c in previous])
            m = eff if isinstance(eff, sp.Symbol) else mask_symbol(eff)
            if raw is not sp.true:
                previous.append(raw)
            needs_mask = value.has(x) and not safe_everywhere(value, x)
            p = safe_point(region, value, x, init_subs) if needs_mask else None
            if needs_mask and p is None:
                prog.notes.append(f"{name}: no safe point for branch {cond}; evaluated unmasked")
            v = value.subs(x, safe_input(m, p)) if p is not None else value
            pieces.append((m, v))
            selected.append(m)
        result = pieces[-1][1]
        for m, v in reversed(pieces[:-1]):
            result = Where(m, v, result)
        lowered.append((name, result))

    names = [n for n, _ in lowered]
    exprs = [e for _, e in lowered]
    reps, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("t"), order="canonical")
    prog.assignments += [(s.name, e) for s, e in reps]
    prog.outputs = list(zip(names, reduced))
    return prog


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
