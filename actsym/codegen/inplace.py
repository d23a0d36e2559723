"""In-place emission of a lowered :class:`~actsym.codegen.lower.Program` (the fast path when autograd is off).

Every full-size intermediate costs a fresh allocation (page faults on first touch dominate an elementwise op
on CPU), so the in-place variant allocates a buffer once per independent value and then mutates it:
``b = torch.sigmoid(x); b.mul_(x)``. Rules:

- Inputs (``x``, ``grad``, parameters), masks and parameter-only values are never mutated. A temporary is
  mutated only by the operation that reads it for the last time (liveness counts over the whole program).
- Operations and their order are exactly those of the out-of-place printer (:func:`mul_plan`/:func:`add_plan`
  fix the association order; only the destination differs), so results are bit-identical. When the mutable
  operand is the right-hand one, commutative ops swap (``a*b == b*a`` exactly in IEEE arithmetic) and the
  others write to it with ``out=`` (elementwise kernels allow an output that is exactly an input).
- Parameter-only subexpressions are small: they are printed out of place, inline.

The result reads like the out-of-place code, one statement per value, with chains of in-place calls.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sympy as sp

from actsym.codegen.printer import (
    TORCH_FUNCTIONS,
    Clamp,
    Select,
    TorchPrinter,
    Where,
    add_plan,
    mul_plan,
    num,
)
from actsym.functions import StableFunction

#: torch function -> in-place Tensor method (ops without one, e.g. softplus, always allocate).
INPLACE = {f: f.rsplit(".", 1)[1] + "_" for f in TORCH_FUNCTIONS.values()}
INPLACE.update({f"torch.{f}": f"{f}_" for f in ("sigmoid", "log1p", "expm1", "square", "reciprocal", "sqrt", "rsqrt")})

_BINARY = {"mul": "*", "add": "+", "sub": "-", "div": "/"}


@dataclass
class Val:
    """An operand: Python code (a name, a literal or an inline expression), its kind, and -- when this value
    lives in a buffer the function owns and nothing else reads -- that buffer's id."""

    code: str
    kind: str  # "num" | "param" | "full" | "mask"
    buf: int | None = None
    ref: str | None = None  # the temporary's name when this is a reference to one
    rename: bool = False  # a temporary's buffer taken over: the first mutation names it anew


class InplacePrinter(TorchPrinter):
    """Emits statements for a Program; ``_print_<Node>`` returns a :class:`Val` (strict like its parent)."""

    def __init__(self, full_inputs: tuple[str, ...], params: tuple[str, ...], like: str = "x"):
        super().__init__(like=like)
        self.full_inputs = set(full_inputs)
        self.params = set(params)
        self.kinds: dict[str, str] = {}
        self.uses: dict[str, int] = {}
        self.owned: dict[str, int] = {}  # temporary name -> buffer id
        self.stmts: list[tuple[str, int | None, str]] = []  # ("assign"|"call"|"stmt", buffer, text)
        self.names: dict[int, str] = {}  # buffer id -> final name
        self.defs: dict[str, sp.Basic] = {}  # every assignment (to expand temporaries)
        self.clamps: dict[str, Clamp] = {}  # safe inputs that are clamps
        self.masks: dict[str, sp.Basic] = {}  # boolean masks not yet emitted
        self._next = 0

    # -- program level -----------------------------------------------------------------------------
    def emit(self, assignments, outputs) -> list[str]:
        for _, e in [*assignments, *outputs]:
            for node in sp.preorder_traversal(e):
                if node.is_Symbol:
                    self.uses[node.name] = self.uses.get(node.name, 0) + 1
        for name, e in assignments:
            kind = self.kind(e)
            self.kinds[name] = kind
            self.defs[name] = e
            if isinstance(e, Clamp):
                self.clamps[name] = e
            if kind == "mask":  # emitted on first use: a blended selection needs no boolean mask
                self.masks[name] = e
                continue
            if kind in ("full",):
                v = self._print(e)
                if v.buf is not None:
                    self.names.setdefault(v.buf, name)
                    self.owned[name] = v.buf
                    continue
                self._assign_code(name, v.code)
            else:
                self._assign_code(name, TorchPrinter(like=self.like).doprint(e))
        results = []
        for _, e in outputs:
            v = self._print(e) if self.kind(e) == "full" else Val(TorchPrinter(like=self.like).doprint(e), "param")
            if v.buf is None and (v.ref in self.full_inputs or v.ref in self.params or v.ref is None):
                v = Val(f"{v.code}.clone()" if v.ref else v.code, v.kind)
            results.append(v)
        return self._render(results)

    @property
    def full_symbols(self) -> list[sp.Symbol]:
        names = [n for n in self.defs if self._symbol_kind(n) == "full"] + list(self.full_inputs)
        return [sp.Symbol(n, **a) for n in names for a in ({}, {"real": True})]

    def kind(self, e: sp.Basic) -> str:
        if _is_condition(e):
            return "mask"
        kinds = {self._symbol_kind(s.name) for s in e.free_symbols}
        for k in ("full", "mask", "param"):
            if k in kinds:
                return "full" if k == "mask" else k
        return "num"

    def _symbol_kind(self, name: str) -> str:
        if name in self.full_inputs:
            return "full"
        if name in self.params:
            return "param"
        return self.kinds.get(name, "full")

    # -- buffers and statements --------------------------------------------------------------------
    def _new(self, code: str, kind: str = "full") -> Val:
        buf = self._next
        self._next += 1
        self.stmts.append(("assign", buf, code))
        return Val(f"\0{buf}\0", kind, buf)

    def _assign_code(self, name: str, code: str) -> None:
        self.stmts.append(("stmt", None, f"{name} = {code}"))

    def _call(self, v: Val, method: str, *args: str) -> Val:
        if v.rename:
            return self._new(f"{v.code}.{method}({', '.join(args)})", v.kind)
        self.stmts.append(("call", v.buf, f".{method}({', '.join(args)})"))
        return v

    def _into(self, v: Val, text: str) -> Val:
        """A statement writing into v's buffer with ``out=`` (it returns that buffer)."""
        if v.rename:
            return self._new(text, v.kind)
        self.stmts.append(("stmt", v.buf, text))
        return v

    def _take(self, v: Val) -> Val | None:
        """``v`` as a mutable buffer if this is its last use (consumes the use), else None."""
        if v.buf is not None and v.ref is None:
            return v
        if v.ref is not None and v.ref in self.owned and self.uses[v.ref] == 1:
            self.uses[v.ref] -= 1
            return Val(f"\0{self.owned[v.ref]}\0", v.kind, self.owned[v.ref], rename=True)
        return None

    def _release(self, *vals: Val) -> None:
        for v in vals:
            if v.ref is not None and v.buf is None:
                self.uses[v.ref] -= 1

    def _unary(self, v: Val, torch_fn: str, kwargs: str = "") -> Val:
        method = INPLACE.get(torch_fn)
        mine = self._take(v) if method and not kwargs else None
        if mine is not None:
            return self._call(mine, method)
        self._release(v)
        return self._new(f"{torch_fn}({v.code}{kwargs})")

    def _binary(self, op: str, a: Val, b: Val) -> Val:
        mine = self._take(a)
        if mine is not None:
            self._release(b)
            return self._call(mine, f"{op}_", b.code)
        mine = self._take(b)
        if mine is not None:
            self._release(a)
            if op in ("mul", "add"):
                return self._call(mine, f"{op}_", a.code)
            if op == "sub" and a.kind == "num":
                return self._call(self._call(mine, "neg_"), "add_", a.code)
            return self._into(mine, f"torch.{op}({a.code}, {mine.code}, out={mine.code})")
        self._release(a, b)
        return self._new(f"{a.code} {_BINARY[op]} {b.code}")

    def _neg(self, v: Val) -> Val:
        mine = self._take(v)
        if mine is not None:
            return self._call(mine, "neg_")
        self._release(v)
        return self._new(f"-{v.code}")

    def _operand(self, e: sp.Basic) -> Val:
        kind = self.kind(e)
        if kind == "num":
            return Val(num(float(e.evalf(17))) if e.is_number else TorchPrinter(like=self.like).doprint(e), "num")
        if kind == "param":
            code = TorchPrinter(like=self.like).doprint(e)
            return Val(f"({code})" if _is_operator_expr(code) else code, "param")
        if e.is_Symbol and self._symbol_kind(e.name) == "mask":
            return Val(self._mask(e.name), "mask")
        if _is_condition(e):
            return Val(f"({TorchPrinter(like=self.like).doprint(e)})", "mask")
        return self._print(e)

    # -- nodes -------------------------------------------------------------------------------------
    def _print_Symbol(self, e):
        code = f"\0{self.owned[e.name]}\0" if e.name in self.owned else e.name
        return Val(code, self._symbol_kind(e.name), ref=e.name)

    def _print_Mul(self, e):
        plan = mul_plan(e)
        v = None
        for f in plan.factors:
            w = self._operand(f)
            v = w if v is None else self._binary("mul", v, w)
        if plan.coef is not None and v is not None:
            v = self._binary("mul", v, Val(num(plan.coef), "num"))
        if plan.denominators:
            d = None
            for f in plan.denominators:
                w = self._operand(f)
                d = w if d is None else self._binary("mul", d, w)
            if v is None:
                v = self._unary(d, "torch.reciprocal")
                if plan.coef is not None:
                    v = self._binary("mul", v, Val(num(plan.coef), "num"))
            else:
                v = self._binary("div", v, d)
        return self._neg(v) if plan.negate else v

    def _print_Add(self, e, order=None):
        plan = add_plan(e)
        (sign, first), *rest = plan.terms
        v = self._operand(first)
        if plan.const_first:
            v = self._binary("sub", Val(num(plan.const), "num"), v)
        elif sign < 0:
            v = self._neg(v)
        for sign, t in rest:
            v = self._binary("sub" if sign < 0 else "add", v, self._operand(t))
        if plan.const is not None and not plan.const_first:
            v = self._binary("sub" if plan.const < 0 else "add", v, Val(num(abs(plan.const)), "num"))
        return v

    def _print_Pow(self, e, rational=False):
        base, exp = e.args
        if not (exp.is_Number and not base.is_number):
            if base == sp.E:
                return self._unary(self._operand(exp), "torch.exp")
            return self._new(TorchPrinter(like=self.like).doprint(e))
        b = self._operand(base)
        if exp == 2:
            return self._unary(b, "torch.square")
        if exp == 3 and base.is_Symbol:
            if b.ref is not None and b.ref in self.uses:
                self.uses[b.ref] += 2  # x**3 reads x three times but was counted once
            return self._binary("mul", self._binary("mul", b, Val(b.code, b.kind, ref=b.ref)), b)
        if exp == -1:
            return self._unary(b, "torch.reciprocal")
        if exp == -2:
            return self._unary(self._unary(b, "torch.square"), "torch.reciprocal")
        if exp == sp.S.Half:
            return self._unary(b, "torch.sqrt")
        if exp == -sp.S.Half:
            return self._unary(b, "torch.rsqrt")
        p = str(int(exp)) if exp.is_Integer else repr(float(exp))
        mine = self._take(b)
        if mine is not None:
            return self._call(mine, "pow_", p)
        self._release(b)
        return self._new(f"torch.pow({b.code}, {p})")

    def _print_Function(self, e):
        if isinstance(e, StableFunction):
            return self._unary(self._operand(e.args[0]), e.torch_op, e.torch_kwargs)
        name = type(e).__name__
        if name in TORCH_FUNCTIONS:
            return self._unary(self._operand(e.args[0]), TORCH_FUNCTIONS[name])
        raise TypeError(f"no in-place translation for {name}()")

    _print_exp = _print_Function
    _print_log = _print_Function
    _print_Abs = _print_Function
    _print_sign = _print_Function
    _print_erf = _print_Function

    def _print_Clamp(self, e):
        v, lo, hi = e.args
        bounds = ([f"min={num(float(lo))}"] if lo.is_finite else []) + ([f"max={num(float(hi))}"] if hi.is_finite else [])
        a = self._operand(v)
        mine = self._take(a)
        if mine is not None:
            return self._call(mine, "clamp_", *bounds)
        self._release(a)
        return self._new(f"torch.clamp({a.code}, {', '.join(bounds)})")

    def _print_Select(self, e):
        mask, v, p = e.args
        a = self._operand(v)
        self._release(a)
        return self._new(f"torch.where({self._mask(mask.name)}, {a.code}, {num(float(p))})")

    def _mask(self, name: str) -> str:
        if name in self.masks:
            e = self.masks.pop(name)
            for s in sorted(e.free_symbols, key=lambda s: s.name):
                self._mask(s.name)
            self._assign_code(name, TorchPrinter(like=self.like).doprint(e))
        return name

    # -- selection with float indicators -----------------------------------------------------------
    def _expand(self, e: sp.Basic) -> sp.Basic:
        while True:
            new = e.xreplace(
                {s: self.defs[s.name] for s in e.free_symbols if s.name in self.defs and not isinstance(self.defs[s.name], Clamp)}
            )
            if new == e:
                return e
            e = new

    def _finite_outside(self, e: sp.Basic) -> bool:
        """Every full-size input of the branch is a clamp: it is finite wherever the branch is not selected."""
        return all(s.name in self.clamps or self._symbol_kind(s.name) == "param" for s in self._expand(e).free_symbols)

    def _zero_outside(self, e: sp.Basic) -> bool:
        """The branch is exactly 0 wherever it is not selected: its clamps map those points to the bound 0
        and the branch vanishes there symbolically (f(0) = 0 holds exactly in IEEE for the functions used)."""
        e = self._expand(e)
        subs = {}
        for s in e.free_symbols:
            if s.name in self.clamps:
                _, lo, hi = self.clamps[s.name].args
                bounds = [b for b in (lo, hi) if b.is_finite]
                if len(bounds) != 1 or bounds[0] != 0:
                    return False
                subs[s] = sp.S.Zero
        return bool(subs) and e.xreplace(subs) == 0

    def _indicator(self, cond: sp.Basic, negate: bool = False) -> str | None:
        """``torch.gt(x, 0, out=...)``: a 0/1 float tensor for ``x OP c`` (NaN gives 0), or None."""
        if not (cond.is_Relational and cond.lhs.is_Symbol and cond.lhs.name in self.full_inputs and cond.rhs.is_number):
            return None
        op = {">": "gt", ">=": "ge", "<": "lt", "<=": "le"}.get(cond.rel_op)
        if op is None:
            return None
        if negate:
            op = {"gt": "le", "ge": "lt", "lt": "ge", "le": "gt"}[op]
        x = cond.lhs.name
        return f"torch.{op}({x}, {num(float(cond.rhs))}, out=torch.empty_like({x}))"

    def _blend(self, cond: sp.Basic, a_e: sp.Basic, b_e: sp.Basic) -> Val:
        """``where(cond, a, b)`` as ``a*I + b*J`` with float indicators I = [cond], J = 1 - I (exact for 0/1
        indicators and finite unselected values, up to the sign of a zero result); a branch that is exactly 0
        where unselected needs no indicator. ~10x cheaper than torch.where with a bool mask on CPU."""
        terms = []
        shared = None
        if not self._zero_outside(a_e) and a_e != 0:
            name = f"i{sum(n.startswith('i') for n in self.owned)}"
            shared = self._new(self._indicator(cond))
            self.names[shared.buf] = name
            self.owned[name] = shared.buf
            self.kinds[name] = "full"
            self.uses[name] = 1 + (not self._zero_outside(b_e) and b_e != 0 and not b_e.has(*self.full_symbols))
        for e, true_side in ((a_e, True), (b_e, False)):
            if e == 0:
                continue
            v = self._operand(e)
            if not self._zero_outside(e):
                if true_side:
                    ind = Val(f"\0{shared.buf}\0", "full", ref=self._name_of(shared))
                elif shared is not None and not e.has(*self.full_symbols):
                    # a constant-in-x branch: J = 1 - I, so NaN (I = 0) selects it as torch.where would
                    ind = self._binary("sub", Val("1", "num"), Val(f"\0{shared.buf}\0", "full", ref=self._name_of(shared)))
                elif not e.has(*self.full_symbols):
                    ind = self._binary("sub", Val("1", "num"), self._new(self._indicator(cond)))
                else:  # the branch carries NaN itself, so the complementary comparison is enough
                    ind = self._new(self._indicator(cond, negate=True))
                v = ind if v.kind == "num" and v.code == "1" else self._binary("mul", v, ind)
            terms.append(v)
        if not terms:
            return self._new(f"torch.zeros_like({self.like})")
        return terms[0] if len(terms) == 1 else self._binary("add", terms[0], terms[1])

    def _name_of(self, v: Val) -> str:
        return next(n for n, b in self.owned.items() if b == v.buf)

    def _print_Where(self, e):
        mask, a_e, b_e = e.args
        cond = self.defs.get(mask.name)
        if (
            cond is not None
            and self._indicator(cond) is not None
            and all(self._finite_outside(b) for b in (a_e, b_e))
        ):
            return self._blend(cond, a_e, b_e)
        m = self._operand(mask)
        a, b = self._operand(a_e), self._operand(b_e)
        if a.kind == "num" and b.kind == "num":
            return self._new(f"torch.where({m.code}, {a.code}, {b.code}).to({self.like}.dtype)")
        if a.kind == "num":
            mine = self._take(b)
            if mine is not None:
                return self._call(mine, "masked_fill_", m.code, a.code)
        elif b.kind != "num":
            for mine in (self._take(a), self._take(b)):
                if mine is not None:
                    self._release(b if mine.buf == a.buf else a)
                    args = (mine.code, b.code) if mine.buf == a.buf else (a.code, mine.code)
                    return self._into(mine, f"torch.where({m.code}, {args[0]}, {args[1]}, out={mine.code})")
        self._release(a, b)
        return self._new(f"torch.where({m.code}, {a.code}, {b.code})")

    def _print_Piecewise(self, e):  # not lowered (see lower.py): evaluated out of place
        return self._new(TorchPrinter(like=self.like).doprint(e))

    def emptyPrinter(self, e):
        raise TypeError(f"cannot emit {type(e).__name__} in place")

    # -- rendering ---------------------------------------------------------------------------------
    def _render(self, results: list[Val]) -> list[str]:
        for v in results:
            if v.buf is not None and v.buf not in self.names:
                self.names[v.buf] = "out" if len(results) == 1 else f"out{results.index(v)}"
        k = 0
        for buf in range(self._next):
            if buf not in self.names:
                self.names[buf] = f"b{k}"
                k += 1

        def name(text: str) -> str:
            return re.sub("\0(\\d+)\0", lambda m: self.names[int(m.group(1))], text)

        lines: list[str] = []
        last_buf = None
        for kind, buf, text in self.stmts:
            text = name(text)
            if kind == "call" and buf == last_buf and len(lines[-1]) + len(text) <= 110:
                lines[-1] += text
                continue
            if kind == "assign":
                chain_ready = not _is_operator_expr(text)
                lines.append(f"{self.names[buf]} = {text if chain_ready else f'({text})'}")
            elif kind == "call":
                lines.append(f"{self.names[buf]}{text}")
            else:
                lines.append(text)
            last_buf = buf if kind in ("assign", "call") else None
        lines = [re.sub(r"^(\w+) = \((.*)\)$", r"\1 = \2", ln) if _is_wrapped_operator(ln) else ln for ln in lines]
        rets = [name(v.code) for v in results]
        if len(rets) == 1 and lines and lines[-1].startswith(f"{rets[0]} = "):
            lines[-1] = "return " + lines[-1][len(rets[0]) + 3 :]
        else:
            lines.append(f"return {rets[0]}" if len(rets) == 1 else f"return ({', '.join(rets)})")
        return lines


def _is_condition(e: sp.Basic) -> bool:
    return e.is_Relational or isinstance(e, (sp.And, sp.Or, sp.Not, sp.logic.boolalg.BooleanAtom))


def _is_operator_expr(code: str) -> bool:
    """True if ``code`` has an operator outside brackets (needs parentheses before ``.method_()``)."""
    depth = 0
    for i, ch in enumerate(code):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth == 0 and (ch in "+*/ " or (ch == "-" and (i == 0 or code[i - 1] == " "))):
            return True
    return False


def _is_wrapped_operator(line: str) -> bool:
    """``b = (x + 1)`` with nothing chained: the parentheses added for a chain are not needed."""
    m = re.match(r"^\w+ = \((.*)\)$", line)
    if not m:
        return False
    depth = 0
    for ch in m.group(1):
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            return False
    return True


def inplace_lines(prog, full_inputs: tuple[str, ...], params: tuple[str, ...], like: str = "x") -> list[str]:
    """The body (statements + return) of the in-place variant of ``prog``."""
    return InplacePrinter(full_inputs, params, like).emit(prog.assignments, prog.outputs)


__all__ = ["InplacePrinter", "inplace_lines", "Clamp", "Select", "Where"]
