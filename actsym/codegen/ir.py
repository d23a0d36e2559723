"""Typed straight-line IR shared by the eager emitters (out-of-place and in-place).

A lowered :class:`~actsym.codegen.lower.Program` (SymPy assignments after safe-Piecewise lowering and CSE) is
translated once into a :class:`Graph` of single-operation instructions over *typed values*:

========  ======================================================================================
kind      what the value is at run time
========  ======================================================================================
const     a Python number (folded at generation time; no torch op ever receives only numbers)
param     a tensor computed from parameters only (0-dim or a per-channel view; never mutated)
full      a float tensor of the input's shape (the only kind the in-place emitter writes into)
pmask     a boolean tensor computed from parameters only
mask      a boolean tensor of the input's shape
========  ======================================================================================

Passes, each separate and individually tested (tests/test_codegen_ir.py):

* **construction** (:func:`build`) fixes the order of every floating-point operation -- both emitters print
  the same instructions, so the in-place code is bit-identical to the out-of-place code by construction;
* **constant folding** (inside :meth:`Graph.op`, 50-digit mpmath, non-real results become NaN like torch);
* **CSE** by hash-consing (an instruction with the same op, operands and attributes is created once);
* **dead-code elimination** (:meth:`Graph.live`), **use counts** and **liveness** (:func:`last_uses`) --
  buffer assignment lives in :mod:`actsym.codegen.emit`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import mpmath
import sympy as sp

from actsym.codegen.printer import TORCH_FUNCTIONS, Clamp, Select, UnsupportedNode, Where
from actsym.functions import StableFunction, logabs, ndtr
from actsym.numerics import add_plan, mul_plan

FLOAT_KINDS = ("const", "param", "full")
MASK_KINDS = ("pmask", "mask")

#: unary op -> (torch function, in-place Tensor method or None, mpmath function for folding)
UNARY: dict[str, tuple[str, str | None, object]] = {
    "exp": ("torch.exp", "exp_", mpmath.exp),
    "log": ("torch.log", "log_", mpmath.log),
    "sin": ("torch.sin", "sin_", mpmath.sin),
    "cos": ("torch.cos", "cos_", mpmath.cos),
    "tan": ("torch.tan", "tan_", mpmath.tan),
    "tanh": ("torch.tanh", "tanh_", mpmath.tanh),
    "sinh": ("torch.sinh", "sinh_", mpmath.sinh),
    "cosh": ("torch.cosh", "cosh_", mpmath.cosh),
    "atan": ("torch.atan", "atan_", mpmath.atan),
    "asinh": ("torch.asinh", "asinh_", mpmath.asinh),
    "erf": ("torch.erf", "erf_", mpmath.erf),
    "erfc": ("torch.erfc", "erfc_", mpmath.erfc),
    "abs": ("torch.abs", "abs_", abs),
    "sign": ("torch.sign", "sign_", mpmath.sign),
    "sigmoid": ("torch.sigmoid", "sigmoid_", lambda u: 1 / (1 + mpmath.exp(-u))),
    "log1p": ("torch.log1p", "log1p_", mpmath.log1p),
    "expm1": ("torch.expm1", "expm1_", mpmath.expm1),
    "softplus": ("torch.nn.functional.softplus", None, lambda u: mpmath.log1p(mpmath.exp(u))),
    "square": ("torch.square", "square_", lambda u: u * u),
    "reciprocal": ("torch.reciprocal", "reciprocal_", lambda u: 1 / u),
    "sqrt": ("torch.sqrt", "sqrt_", mpmath.sqrt),
    "rsqrt": ("torch.rsqrt", "rsqrt_", lambda u: 1 / mpmath.sqrt(u)),
    "neg": ("torch.neg", "neg_", lambda u: -u),
}
#: extra keyword arguments printed after the operand
UNARY_KWARGS = {"softplus": ", threshold=40.0"}
_SYMPY_UNARY = {type_name: op for op, (fn, _, _) in UNARY.items() for type_name, f in TORCH_FUNCTIONS.items() if f == fn}

COMPARE = {">": "gt", ">=": "ge", "<": "lt", "<=": "le", "==": "eq", "!=": "ne"}
LOGIC = ("and", "or", "not")


@dataclass(frozen=True)
class Instr:
    """One operation. ``args`` are value ids; ``attr`` holds literal attributes (clamp bounds, constants)."""

    op: str
    args: tuple[int, ...] = ()
    attr: tuple = ()
    kind: str = "full"
    hint: str = ""


@dataclass
class Graph:
    instrs: list[Instr] = field(default_factory=list)
    _memo: dict = field(default_factory=dict)

    # -- construction ------------------------------------------------------------------------------
    def _add(self, ins: Instr) -> int:
        key = (ins.op, ins.args, _attr_key(ins.attr), ins.kind)
        if ins.op != "input" and key in self._memo:
            return self._memo[key]
        self.instrs.append(ins)
        vid = len(self.instrs) - 1
        if ins.op != "input":
            self._memo[key] = vid
        return vid

    def input(self, name: str, kind: str) -> int:
        return self._add(Instr("input", (), (name,), kind, name))

    def const(self, value) -> int:
        if isinstance(value, bool):
            return self._add(Instr("const", (), (value,), "const"))
        return self._add(Instr("const", (), (float(value),), "const"))

    def kind(self, vid: int) -> str:
        return self.instrs[vid].kind

    def value(self, vid: int):
        """The Python value of a const."""
        return self.instrs[vid].attr[0]

    def is_const(self, vid: int, value=None) -> bool:
        ins = self.instrs[vid]
        if ins.op != "const":
            return False
        return value is None or (not isinstance(ins.attr[0], bool) and ins.attr[0] == value)

    def op(self, op: str, *args: int, attr: tuple = ()) -> int:
        """Add ``op(args)``: folded when every operand is a constant, simplified for neutral constants."""
        kinds = [self.kind(a) for a in args]
        if all(k == "const" for k in kinds):
            return self.const(_fold(op, [self.value(a) for a in args], attr))
        simplified = self._simplify(op, args, attr)
        if simplified is not None:
            return simplified
        return self._add(Instr(op, tuple(args), tuple(attr), _result_kind(op, kinds)))

    def _simplify(self, op: str, args, attr) -> int | None:
        """Exact identities only (IEEE-exact for every input, NaN included)."""
        if op == "where":
            m, a, b = args
            if self.is_const(m):
                return a if self.value(m) else b
            if a == b:
                return a
        if op in ("and", "or"):
            a, b = args
            for c, other in ((a, b), (b, a)):
                if self.is_const(c):
                    v = bool(self.value(c))
                    if op == "and":
                        return other if v else self.const(False)
                    return self.const(True) if v else other
        if op == "clamp" and all(math.isinf(b) for b in attr):
            return args[0]
        if op == "mul":
            a, b = args
            if self.is_const(b, 1.0):
                return a
            if self.is_const(a, 1.0):
                return b
        if op in ("add", "sub"):
            a, b = args
            if self.is_const(b, 0.0):
                return a  # a + 0 and a - 0 are exact except for the sign of a zero
            if op == "add" and self.is_const(a, 0.0):
                return b
        return None

    # -- analysis ------------------------------------------------------------------------------------
    def live(self, outputs: list[int]) -> list[int]:
        """Ids of the instructions the outputs need, in program order (dead-code elimination)."""
        need = set()
        stack = list(outputs)
        while stack:
            v = stack.pop()
            if v in need:
                continue
            need.add(v)
            stack.extend(self.instrs[v].args)
        return sorted(need)

    def uses(self, order: list[int], outputs: list[int]) -> dict[int, int]:
        count = {v: 0 for v in order}
        for v in order:
            for a in self.instrs[v].args:
                count[a] += 1
        for o in outputs:
            count[o] += 1
        return count


def last_uses(g: Graph, order: list[int], outputs: list[int]) -> dict[int, int]:
    """Value id -> position (index in ``order``) of its last reader; outputs are read at ``len(order)``."""
    last = {}
    for i, v in enumerate(order):
        for a in g.instrs[v].args:
            last[a] = i
    for o in outputs:
        last[o] = len(order)
    return last


def _attr_key(attr: tuple):
    return tuple((type(a).__name__, repr(a)) for a in attr)


def _result_kind(op: str, kinds: list[str]) -> str:
    full = "full" in kinds or "mask" in kinds
    if op in COMPARE.values() or op in LOGIC:
        return "mask" if full else "pmask"
    if full:
        return "full"
    return "param"


# ------------------------------------------------------------------------------------------------------
# constant folding
# ------------------------------------------------------------------------------------------------------


def _to_float(v) -> float:
    if isinstance(v, mpmath.mpc):
        return math.nan if v.imag != 0 else float(v.real)
    try:
        return float(v)
    except (TypeError, ValueError, OverflowError):
        return math.nan


def _fold(op: str, vals: list, attr: tuple):
    """Evaluate an operation on constants at 50 digits, rounded once to a double (as torch rounds ops)."""
    if op in COMPARE.values():
        a, b = vals
        if any(isinstance(v, float) and math.isnan(v) for v in (a, b)):
            return op == "ne"
        return {"gt": a > b, "ge": a >= b, "lt": a < b, "le": a <= b, "eq": a == b, "ne": a != b}[op]
    if op == "and":
        return bool(vals[0]) and bool(vals[1])
    if op == "or":
        return bool(vals[0]) or bool(vals[1])
    if op == "not":
        return not bool(vals[0])
    if op == "where":
        return vals[1] if vals[0] else vals[2]
    if any(math.isnan(v) for v in vals):
        return math.nan
    with mpmath.workdps(50):
        try:
            if op in UNARY:
                return _to_float(UNARY[op][2](mpmath.mpf(vals[0])))
            a = [mpmath.mpf(v) for v in vals]
            if op == "add":
                return _to_float(a[0] + a[1])
            if op == "sub":
                return _to_float(a[0] - a[1])
            if op == "mul":
                return _to_float(a[0] * a[1])
            if op == "div":
                if a[1] == 0:
                    return math.nan if a[0] == 0 else math.copysign(math.inf, vals[0]) * math.copysign(1.0, vals[1])
                return _to_float(a[0] / a[1])
            if op == "pow":
                return _to_float(mpmath.power(a[0], a[1]))
            if op == "powc":
                return _to_float(mpmath.power(a[0], mpmath.mpf(attr[0])))
            if op == "maximum":
                return float(max(vals))
            if op == "minimum":
                return float(min(vals))
            if op == "clamp":
                lo, hi = attr
                return float(min(max(vals[0], lo), hi))
        except (ZeroDivisionError, ValueError, OverflowError):
            return math.nan
    raise UnsupportedNode(f"cannot fold {op}")


# ------------------------------------------------------------------------------------------------------
# SymPy -> IR
# ------------------------------------------------------------------------------------------------------


def number(e: sp.Basic) -> float | bool:
    """A SymPy number (or boolean atom) as a Python value; non-real values are NaN."""
    if e is sp.true or e is sp.false:
        return bool(e)
    if e in (sp.oo, -sp.oo):
        return math.inf if e is sp.oo else -math.inf
    if e is sp.nan or e is sp.zoo:
        return math.nan
    try:
        c = complex(e.evalf(30))
    except (TypeError, ValueError, OverflowError):
        return math.nan
    return c.real if c.imag == 0 else math.nan


class Builder:
    """Translates SymPy expressions into instructions of one :class:`Graph`; ``env`` maps symbols to ids."""

    def __init__(self, g: Graph, env: dict[sp.Symbol, int]):
        self.g = g
        self.env = env
        self._cache: dict[sp.Basic, int] = {}

    def __call__(self, e: sp.Basic) -> int:
        if e in self._cache:
            return self._cache[e]
        vid = self._build(e)
        self._cache[e] = vid
        return vid

    def _build(self, e: sp.Basic) -> int:
        g = self.g
        if e.is_Symbol:
            if e not in self.env:
                raise UnsupportedNode(f"unknown symbol {e}")
            return self.env[e]
        if isinstance(e, sp.logic.boolalg.BooleanAtom):
            return g.const(bool(e))
        if isinstance(e, sp.Expr) and e.is_number and not e.has(Where, Select, Clamp):
            return g.const(number(e))
        if e.is_Add:
            return self._add(e)
        if e.is_Mul:
            return self._mul(e)
        if e.is_Pow:
            return self._pow(e)
        if e.is_Relational:
            op = COMPARE.get(e.rel_op)
            if op is None:
                raise UnsupportedNode(f"unsupported comparison {e.rel_op}")
            return g.op(op, self(e.lhs), self(e.rhs))
        if isinstance(e, sp.And) or isinstance(e, sp.Or):
            op = "and" if isinstance(e, sp.And) else "or"
            args = [self(a) for a in e.args]
            v = args[0]
            for a in args[1:]:
                v = g.op(op, v, a)
            return v
        if isinstance(e, sp.Not):
            return g.op("not", self(e.args[0]))
        if isinstance(e, sp.logic.boolalg.BooleanFunction):
            return self(e.to_nnf())  # ITE, Xor, Implies, Equivalent -> And/Or/Not
        if isinstance(e, Where):
            m, a, b = e.args
            return g.op("where", self(m), self(a), self(b))
        if isinstance(e, Select):
            m, v, p = e.args
            return g.op("where", self(m), self(v), self(p))
        if isinstance(e, Clamp):
            v, lo, hi = e.args
            return g.op("clamp", self(v), attr=(number(lo), number(hi)))
        if isinstance(e, sp.Piecewise):
            *pairs, (last, _) = e.args
            v = self(last)
            for value, cond in reversed(pairs):
                v = g.op("where", self(cond), self(value), v)
            return v
        if isinstance(e, (sp.Max, sp.Min)):
            op = "maximum" if isinstance(e, sp.Max) else "minimum"
            args = [self(a) for a in e.args]
            v = args[0]
            for a in args[1:]:
                v = self._extremum(op, v, a)
            return v
        if isinstance(e, sp.Heaviside):
            u = self(e.args[0])
            h0 = number(e.args[1]) if len(e.args) > 1 else 0.5
            zero, one = g.const(0.0), g.const(1.0)
            # 1 above 0, 0 below, h0 at 0, NaN for NaN (as the mpmath/SymPy reference)
            at0 = g.op("where", g.op("eq", u, zero), g.const(h0), g.const(math.nan))
            return g.op("where", g.op("gt", u, zero), one, g.op("where", g.op("lt", u, zero), zero, at0))
        if isinstance(e, sp.DiracDelta):
            return g.const(0.0)
        if isinstance(e, sp.exp):
            return g.op("exp", self(e.args[0]))
        if isinstance(e, logabs):
            return g.op("log", g.op("abs", self(e.args[0])))
        if isinstance(e, ndtr):  # torch.special.ndtr is 1 + erf on CPU (0 below -9 in float64)
            u = g.op("mul", self(e.args[0]), g.const(-0.7071067811865476))
            return g.op("mul", g.op("erfc", u), g.const(0.5))
        if isinstance(e, StableFunction):
            return g.op(type(e).__name__, self(e.args[0]))
        name = type(e).__name__
        if name in _SYMPY_UNARY and len(e.args) == 1:
            return g.op(_SYMPY_UNARY[name], self(e.args[0]))
        raise UnsupportedNode(f"no torch translation for {name}()")

    def _extremum(self, op: str, a: int, b: int) -> int:
        g = self.g
        for t, c in ((a, b), (b, a)):
            if g.kind(c) == "const" and g.kind(t) != "const":
                bound = g.value(c)
                return g.op("clamp", t, attr=(bound, math.inf) if op == "maximum" else (-math.inf, bound))
        return g.op(op, a, b)

    def _add(self, e: sp.Add) -> int:
        g = self.g
        plan = add_plan(e)  # the order every printer and the regime scorer use (actsym.numerics)
        c = plan.const
        (sign, first), *rest = plan.terms
        if plan.const_first:  # every term negative: c - t0 - t1 ...
            v = g.op("sub", g.const(c), self(first))
            c = None
        else:
            v = self(first) if sign > 0 else g.op("neg", self(first))
        for sign, t in rest:
            v = g.op("add" if sign > 0 else "sub", v, self(t))
        if c is not None:
            v = g.op("sub", v, g.const(-c)) if c < 0 else g.op("add", v, g.const(c))
        return v

    def _mul(self, e: sp.Mul) -> int:
        g = self.g
        plan = mul_plan(e)  # the order every printer and the regime scorer use (actsym.numerics)
        v = None
        for i, f in enumerate(plan.factors):
            w = self(f)
            v = w if v is None else g.op("mul", v, w)
            if i == 0 and plan.leading:  # a bounded first factor takes the coefficient at once
                v = g.op("mul", v, g.const(plan.coef))
        if plan.denominators:
            d = None
            for f in plan.denominators:
                w = self(f)
                d = w if d is None else g.op("mul", d, w)
            # as torch's c/t: reciprocal, then the coefficient; a/d before the coefficient (a tiny a times
            # 1/24 underflows where a/d does not)
            v = g.op("reciprocal", d) if v is None else g.op("div", v, d)
        if plan.coef is not None and not plan.leading and v is not None:
            v = g.op("mul", v, g.const(plan.coef))
        if v is None:
            v = g.const(-1.0 if plan.negate else 1.0 if plan.coef is None else plan.coef)
            return v
        return g.op("neg", v) if plan.negate else v

    def _pow(self, e: sp.Pow) -> int:
        g = self.g
        base, exp = e.args
        if base == sp.E:
            return g.op("exp", self(exp))
        if exp.is_number and not base.is_number:
            b = self(base)
            if exp == 2:
                return g.op("square", b)
            if exp == 3:
                return g.op("mul", g.op("mul", b, b), b)
            if exp == -1:
                return g.op("reciprocal", b)
            if exp == -2:
                return g.op("reciprocal", g.op("square", b))
            if exp == sp.S.Half:
                return g.op("sqrt", b)
            if exp == -sp.S.Half:
                return g.op("rsqrt", b)
            p = int(exp) if exp.is_Integer else number(exp)
            return g.op("powc", b, attr=(p,))
        return g.op("pow", self(base), self(exp))


# ------------------------------------------------------------------------------------------------------
# selection without boolean torch.where (a pass: a new graph, exact for finite parameter values)
# ------------------------------------------------------------------------------------------------------

_NAN_PROPAGATING = set(UNARY) | {"add", "sub", "mul", "div", "pow", "powc", "maximum", "minimum"}
_FINITE = object()  # "a finite number not known at generation time" (a parameter expression)
#: ops that map finite numbers to finite numbers (overflow of sums and products of parameters aside)
_FINITE_OPS = {"add", "sub", "mul", "neg", "abs", "sign", "sigmoid", "tanh", "sin", "cos", "erf", "erfc", "atan",
               "asinh", "clamp", "maximum", "minimum", "softplus", "square"}


def _restrict(g: Graph, vid: int, x: int, cmp: Instr, value: bool, memo: dict):
    """The value of ``vid`` for every x where the mask ``cmp`` (x OP c) equals ``value``: a number when it is
    the same number there, ``_FINITE`` for a finite parameter expression, None when unknown. Only clamps of
    x, constants, parameters and NaN-propagating elementwise ops are followed (so a result that is a
    number also means: NaN in x gives NaN)."""
    if vid in memo:
        return memo[vid]
    ins = g.instrs[vid]
    out = None
    if ins.op == "const":
        out = ins.attr[0] if not isinstance(ins.attr[0], bool) and math.isfinite(ins.attr[0]) else None
    elif ins.op == "input" and ins.kind == "param":
        out = _FINITE  # parameters are assumed finite
    elif ins.kind == "param" and ins.op in _FINITE_OPS:
        vals = [_restrict(g, a, x, cmp, value, memo) for a in ins.args]
        out = _FINITE if all(v is not None for v in vals) else None
    elif ins.op == "clamp" and ins.args[0] == x:
        lo, hi = ins.attr
        c = g.value(cmp.args[1])
        # region: OP true/false rewritten as "x <= c" (below) or "x >= c" (above)
        below = (cmp.op in ("gt", "ge")) != value
        if below and c <= lo:
            out = lo
        elif not below and c >= hi:
            out = hi
    elif ins.op in _NAN_PROPAGATING:
        vals = [_restrict(g, a, x, cmp, value, memo) for a in ins.args]
        if all(isinstance(v, float) for v in vals):
            out = _fold(ins.op, vals, ins.attr)
            out = out if math.isfinite(out) else None
        elif ins.op == "mul" and any(v == 0.0 and isinstance(v, float) for v in vals) and all(
            v is not None for v in vals
        ):
            out = 0.0  # 0 * finite parameter expression
        elif ins.op in _FINITE_OPS and all(v is not None for v in vals):
            out = _FINITE
    memo[vid] = out
    return out


def _finite_outside(g: Graph, v: int, cmp: Instr, value: bool) -> bool:
    """``v`` is finite (for finite parameters) wherever the mask equals ``value``."""
    if g.kind(v) == "const":
        return math.isfinite(g.value(v))
    r = _restrict(g, v, cmp.args[0], cmp, value, {})
    return r is _FINITE or (isinstance(r, float) and math.isfinite(r))


def _simple_mask(g: Graph, m: int) -> Instr | None:
    """``x OP c`` with x the (only) full input and c a constant, else None."""
    ins = g.instrs[m]
    if ins.op in ("gt", "ge", "lt", "le") and g.instrs[ins.args[0]].op == "input" and g.kind(ins.args[0]) == "full":
        if g.kind(ins.args[1]) == "const":
            return ins
    return None


def select_blends(g: Graph, outputs: list[int]) -> tuple[Graph, list[int]]:
    """Rewrite selections that need no boolean ``torch.where`` (3x the cost of an add on CPU):

    * ``where(m, 1, 0)`` -> ``ind(m)`` (the mask as 0/1 floats; NaN -> 0 exactly like where);
      ``where(m, 0, 1)`` -> ``1 - ind(m)``;
    * ``where(m, a, b)`` -> ``a + b`` when m is ``x OP c`` and a is exactly 0 wherever m is false and b exactly
      0 wherever m is true (their clamped inputs sit at the bound there, e.g. ELU's
      ``clamp(x, min=0) + alpha*expm1(clamp(x, max=0))``), both propagate NaN, and parameters are finite.

    Both eager emitters print the rewritten graph, so they stay bit-identical (up to the sign of zeros)."""
    new = Graph()
    remap: dict[int, int] = {}
    for vid, ins in enumerate(g.instrs):  # every input, used or not (they are the signature)
        if ins.op == "input":
            remap[vid] = new.input(ins.attr[0], ins.kind)
    for vid in g.live(outputs):
        ins = g.instrs[vid]
        if ins.op == "input":
            continue
        if ins.op == "const":
            remap[vid] = new.const(ins.attr[0])
            continue
        args = [remap[a] for a in ins.args]
        if ins.op == "where" and g.kind(ins.args[0]) == "mask":
            m, a, b = ins.args
            if g.is_const(a, 1.0) and g.is_const(b, 0.0):
                remap[vid] = new.op("ind", args[0])
                continue
            if g.is_const(a, 0.0) and g.is_const(b, 1.0):
                remap[vid] = new.op("sub", new.const(1.0), new.op("ind", args[0]))
                continue
            cmp = _simple_mask(g, m)
            if cmp is not None and g.kind(a) in ("full", "const") and g.kind(b) in ("full", "const"):
                x = cmp.args[0]
                za = _restrict(g, a, x, cmp, False, {})
                zb = _restrict(g, b, x, cmp, True, {})
                if isinstance(za, float) and za == 0.0 and isinstance(zb, float) and zb == 0.0:
                    remap[vid] = new.op("add", args[1], args[2])
                    continue
            if cmp is not None and _finite_outside(g, a, cmp, False) and _finite_outside(g, b, cmp, True):
                # a*I + b*(1 - I) with 0/1 float indicators: exact where the unselected value is finite
                ind = new.op("ind", args[0])
                rest = new.op("sub", new.const(1.0), ind)
                remap[vid] = new.op("add", new.op("mul", args[1], ind), new.op("mul", args[2], rest))
                continue
        remap[vid] = new.op(ins.op, *args, attr=ins.attr)
    return new, [remap[o] for o in outputs]
