"""Eager emitters over the IR (:mod:`actsym.codegen.ir`): one out-of-place (differentiable) and one in-place
(autograd off) Python function body per kernel, printed from the *same* instructions.

Names. Every identifier a generated body introduces comes from one :class:`Namer` that knows every name the
body cannot use (the user's symbols, ``torch``, ``math``, Python keywords), so a parameter called ``out``,
``b1``, ``t0`` or ``grad`` can never collide with a temporary or a buffer.

In-place buffer assignment. Only ``full`` values (float tensors of the input's shape) live in buffers. An
instruction writes into the buffer of an operand whose last read it is (``a.mul_(b)``, ``torch.sub(c, b,
out=b)``), else into a buffer freed earlier (``out=``), else it allocates. Inputs and parameter values are
never written. Values that read full buffers (masks) are evaluated at their own position, never inlined
later, so a buffer is only reused after every reader of its value has run.
"""

from __future__ import annotations

import keyword
import math
from dataclasses import dataclass, field

import sympy as sp

from actsym.codegen.ir import UNARY, UNARY_KWARGS, Builder, Graph, Instr, last_uses, select_blends
from actsym.codegen.printer import num
from actsym.numerics import Temporary

#: names a generated function body may read besides its own locals
GLOBALS_USED = ("torch", "math")

# precedence of printed expressions (Python's)
ATOM, UNARY_P, MUL, ADD, AND, OR = 100, 60, 50, 40, 20, 10
_BIN = {"add": ("+", ADD), "sub": ("-", ADD), "mul": ("*", MUL), "div": ("/", MUL)}
_CMP = {"gt": ">", "ge": ">=", "lt": "<", "le": "<=", "eq": "==", "ne": "!="}


class Namer:
    """Fresh identifiers that avoid every reserved name and each other."""

    def __init__(self, reserved=()):
        self.taken = set(reserved) | set(keyword.kwlist) | set(GLOBALS_USED)
        self._count: dict[str, int] = {}

    def exact(self, want: str) -> str:
        """``want`` if free, else ``want_``, ``want_2``, ..."""
        cand, k = want, 1
        while cand in self.taken:
            cand = f"{want}_" if k == 1 else f"{want}_{k}"
            k += 1
        self.taken.add(cand)
        return cand

    def fresh(self, prefix: str) -> str:
        """``prefix0``, ``prefix1``, ... skipping taken names."""
        while True:
            k = self._count.get(prefix, 0)
            self._count[prefix] = k + 1
            cand = f"{prefix}{k}"
            if cand not in self.taken:
                self.taken.add(cand)
                return cand


@dataclass
class Kernel:
    """A graph with named inputs (in signature order) and outputs; ``hints`` name prefixes for values."""

    graph: Graph
    args: list[tuple[str, int]]
    outputs: list[int]
    hints: dict[int, str] = field(default_factory=dict)
    like: str = "x"


def kernel_from_program(prog, inputs: list[tuple[sp.Symbol, str, str]]) -> Kernel:
    """``inputs``: (symbol, local name, kind) for x, grad and the parameters, in signature order."""
    g = Graph()
    env: dict[sp.Symbol, int] = {}
    args = []
    for sym, local, kind in inputs:
        vid = g.input(local, kind)
        env[sym] = vid
        args.append((local, vid))
    build = Builder(g, env)
    hints: dict[int, str] = {}
    for name, expr in prog.assignments:
        vid = build(expr)
        for sym in (sp.Symbol(name), sp.Symbol(name, real=True), Temporary(name)):
            env[sym] = vid
        if g.instrs[vid].op not in ("input", "const"):
            hints.setdefault(vid, name.rstrip("0123456789") or "t")
    outputs = [build(e) for _, e in prog.outputs]
    like = next(local for sym, local, kind in inputs if sym.name == "x")
    g2, outputs2 = select_blends(g, outputs)
    remap = _remap_by_structure(g, g2)
    hints2 = {remap[v]: h for v, h in hints.items() if v in remap}
    args2 = [(local, remap[v]) for local, v in args]
    return Kernel(g2, args2, outputs2, hints2, like)


def _remap_by_structure(old: Graph, new: Graph) -> dict[int, int]:
    """Old value id -> new id for instructions the pass kept (same op, same remapped operands)."""
    out: dict[int, int] = {}
    index = {}
    for i, ins in enumerate(new.instrs):
        index.setdefault((ins.op, ins.args, ins.attr, ins.attr and ins.op == "input"), i)
    for i, ins in enumerate(old.instrs):
        if all(a in out for a in ins.args):
            key = (ins.op, tuple(out[a] for a in ins.args), ins.attr, ins.attr and ins.op == "input")
            if key in index:
                out[i] = index[key]
    return out


# ------------------------------------------------------------------------------------------------------
# printing one instruction from the text of its operands
# ------------------------------------------------------------------------------------------------------


def literal(v) -> tuple[str, int]:
    if isinstance(v, bool):
        return ("True" if v else "False"), ATOM
    if math.isnan(v):
        return "math.nan", ATOM
    if math.isinf(v):
        return ("math.inf", ATOM) if v > 0 else ("-math.inf", UNARY_P)
    s = num(v)
    return s, (UNARY_P if s.startswith("-") else ATOM)


def _wrap(t: tuple[str, int], minimum: int) -> str:
    code, prec = t
    return code if prec >= minimum else f"({code})"


def _clamp_bounds(attr) -> str:
    lo, hi = attr
    parts = ([f"min={literal(lo)[0]}"] if not math.isinf(lo) else []) + ([f"max={literal(hi)[0]}"] if not math.isinf(hi) else [])
    return ", ".join(parts)


def _full_const(g: Graph, vid: int, mask: int, like: str, text) -> str:
    """A constant operand of a selection as a tensor of the right dtype (two Python numbers would give
    torch's default dtype)."""
    v = literal(g.value(vid))[0]
    if g.kind(mask) == "mask":
        return f"torch.full_like({like}, {v})"
    return f"torch.full_like({text(mask)[0]}, {v}, dtype={like}.dtype)"


def render(g: Graph, ins: Instr, text, like: str) -> tuple[str, int]:
    """Out-of-place code of ``ins``; ``text(vid)`` gives (code, precedence) of an operand."""
    op, a = ins.op, ins.args
    if op in UNARY:
        if op == "neg":
            return "-" + _wrap(text(a[0]), UNARY_P + 1), UNARY_P
        return f"{UNARY[op][0]}({text(a[0])[0]}{UNARY_KWARGS.get(op, '')})", ATOM
    if op in _BIN:
        sym, prec = _BIN[op]
        return f"{_wrap(text(a[0]), prec)} {sym} {_wrap(text(a[1]), prec + 1)}", prec
    if op == "powc":
        return f"torch.pow({text(a[0])[0]}, {literal(ins.attr[0])[0]})", ATOM
    if op == "pow":
        return f"torch.pow({text(a[0])[0]}, {text(a[1])[0]})", ATOM
    if op in ("maximum", "minimum"):
        return f"torch.{op}({text(a[0])[0]}, {text(a[1])[0]})", ATOM
    if op == "clamp":
        return f"torch.clamp({text(a[0])[0]}, {_clamp_bounds(ins.attr)})", ATOM
    if op == "where":
        m, x, y = a
        xs = text(x)[0]
        if g.kind(x) == "const" and g.kind(y) == "const":
            xs = _full_const(g, x, m, like, text)
        return f"torch.where({text(m)[0]}, {xs}, {text(y)[0]})", ATOM
    if op in _CMP:
        return f"({_wrap(text(a[0]), ADD)} {_CMP[op]} {_wrap(text(a[1]), ADD)})", ATOM
    if op == "and":
        return f"{_wrap(text(a[0]), AND)} & {_wrap(text(a[1]), AND + 1)}", AND
    if op == "or":
        return f"{_wrap(text(a[0]), OR)} | {_wrap(text(a[1]), OR + 1)}", OR
    if op == "not":
        return "~" + _wrap(text(a[0]), ATOM), UNARY_P
    if op == "ind":
        return f"{_wrap(text(a[0]), ATOM)}.to({like}.dtype)", ATOM
    raise TypeError(f"no torch code for IR op {op}")


def _output_code(g: Graph, vid: int, code: str, like: str, seen: set) -> str:
    """An output as a fresh tensor of the input's shape and dtype."""
    kind, op = g.kind(vid), g.instrs[vid].op
    if kind == "const":
        return f"torch.full_like({like}, {literal(g.value(vid))[0]})"
    if kind == "param":
        return f"{_wrap((code, ATOM if code.isidentifier() else 0), ATOM)}.expand_as({like}).clone()"
    if op == "input" or vid in seen:
        return f"{code}.clone()"
    seen.add(vid)
    return code


# ------------------------------------------------------------------------------------------------------
# out of place
# ------------------------------------------------------------------------------------------------------


def emit_out_of_place(k: Kernel, namer: Namer) -> list[str]:
    g = k.graph
    order = g.live(k.outputs)
    uses = g.uses(order, k.outputs)
    texts: dict[int, tuple[str, int]] = {}
    lines: list[str] = []
    for v in order:
        ins = g.instrs[v]
        if ins.op == "input":
            texts[v] = (ins.attr[0], ATOM)
            continue
        if ins.op == "const":
            texts[v] = literal(ins.attr[0])
            continue
        code = render(g, ins, texts.__getitem__, k.like)
        if uses[v] > 1 or v in k.hints:
            name = namer.fresh(k.hints.get(v, "t"))
            lines.append(f"{name} = {code[0]}")
            texts[v] = (name, ATOM)
        else:
            texts[v] = code
    return lines + [_return(g, k, texts)]


def _return(g: Graph, k: Kernel, texts) -> str:
    seen: set = set()
    outs = [_output_code(g, o, texts[o][0], k.like, seen) for o in k.outputs]
    return f"return {outs[0]}" if len(outs) == 1 else f"return ({', '.join(outs)})"


# ------------------------------------------------------------------------------------------------------
# in place
# ------------------------------------------------------------------------------------------------------


def _ref(vid: int) -> str:
    return f"\0{vid}\0"


@dataclass
class _Line:
    target: int  # the value this line defines
    rhs: str  # with \0vid\0 references
    chain: bool  # rhs is an atom (a call or a name): ``.method_()`` can follow without parentheses
    base: int | None = None  # the dying operand whose buffer this line writes into
    method: bool = False  # rhs is ``<base>.method_(...)``


def emit_inplace(k: Kernel, namer: Namer) -> list[str]:
    g = k.graph
    order = g.live(k.outputs)
    uses = g.uses(order, k.outputs)
    last = last_uses(g, order, k.outputs)
    texts: dict[int, tuple[str, int]] = {}
    owned: set[int] = set()  # values living in a buffer this function allocated
    pool: list[int] = []  # dead owned values whose buffers may be written with out=
    lines: list[_Line] = []

    def text(vid):
        return texts[vid]

    consumers: dict[int, list[int]] = {}
    for v in order:
        for a in g.instrs[v].args:
            consumers.setdefault(a, []).append(v)
    for i, v in enumerate(order):
        ins = g.instrs[v]
        if ins.op == "input":
            texts[v] = (ins.attr[0], ATOM)
            continue
        if ins.op == "const":
            texts[v] = literal(ins.attr[0])
            continue
        if ins.kind in ("param", "pmask"):  # small, never mutated: inline unless shared
            code = render(g, ins, text, k.like)
            if uses[v] > 1:
                lines.append(_Line(v, code[0], code[1] == ATOM))
                texts[v] = (_ref(v), ATOM)
            else:
                texts[v] = code
            continue
        if ins.kind == "mask":  # reads buffers: evaluated here, named
            if _indicator_only(g, v, ins, uses, consumers):
                continue  # written straight into floats by its ind (below): no boolean tensor
            code = render(g, ins, text, k.like)
            lines.append(_Line(v, code[0], code[1] == ATOM))
            texts[v] = (_ref(v), ATOM)
            continue
        dying = [a for a in dict.fromkeys(ins.args) if a in owned and last[a] == i]
        if ins.op == "ind" and ins.args[0] not in texts:  # its comparison, as 0/1 floats: torch.gt(x, 0, out=...)
            cmp = g.instrs[ins.args[0]]
            dest = pool.pop() if pool else None
            line = _Line(v, _compare_into(g, cmp, text, _ref(dest) if dest is not None else f"torch.empty_like({k.like})"),
                         True, base=dest)
            lines.append(line)
            owned.add(v)
            texts[v] = (_ref(v), ATOM)
            pool.extend(dying)
            continue
        line = _write_into(g, ins, v, dying, text)
        if line is None and pool:
            form = _out_form(g, ins, text, _ref(pool[-1]))
            if form is not None:
                line = _Line(v, form, True, base=pool.pop())
        if line is None:
            code = render(g, ins, text, k.like)
            line = _Line(v, code[0], code[1] == ATOM)
        lines.append(line)
        owned.add(v)
        texts[v] = (_ref(v), ATOM)
        pool.extend(a for a in dying if a != line.base)
    return _render_inplace(g, k, lines, texts, uses, namer)


_FLIP = {"gt": "lt", "ge": "le", "lt": "gt", "le": "ge", "eq": "eq", "ne": "ne"}


def _indicator_only(g: Graph, v: int, ins: Instr, uses, consumers) -> bool:
    """A comparison read only by one ``ind`` and computed from inputs/constants/parameters (never mutated, so
    evaluating it later, where the ind is, reads the same values)."""
    users = consumers.get(v, [])
    return (ins.op in _CMP and uses[v] == 1 and len(users) == 1 and g.instrs[users[0]].op == "ind"
            and all(g.instrs[a].op in ("input", "const") or g.kind(a) in ("param", "const") for a in ins.args))


def _compare_into(g: Graph, cmp: Instr, text, dest: str) -> str:
    a, b = cmp.args
    op = cmp.op
    if g.kind(a) == "const":  # torch.gt(number, tensor) does not exist: c > x is x < c
        a, b, op = b, a, _FLIP[op]
    return f"torch.{op}({text(a)[0]}, {text(b)[0]}, out={dest})"


_FN = {"add": "torch.add", "sub": "torch.sub", "mul": "torch.mul", "div": "torch.div", "pow": "torch.pow",
       "maximum": "torch.maximum", "minimum": "torch.minimum"}


def _out_form(g: Graph, ins: Instr, text, dest: str) -> str | None:
    """``ins`` written with ``out=dest`` (same kernel as the out-of-place code), or None."""
    op, args = ins.op, ins.args
    t = [text(a)[0] for a in args]
    if op in UNARY and op not in UNARY_KWARGS:
        return f"{UNARY[op][0]}({t[0]}, out={dest})"
    if op in _FN and g.kind(args[0]) != "const":
        return f"{_FN[op]}({t[0]}, {t[1]}, out={dest})"
    if op == "powc":
        return f"torch.pow({t[0]}, {literal(ins.attr[0])[0]}, out={dest})"
    if op == "clamp":
        return f"torch.clamp({t[0]}, {_clamp_bounds(ins.attr)}, out={dest})"
    if op == "where" and all(g.kind(a) != "const" for a in args[1:]):
        return f"torch.where({t[0]}, {t[1]}, {t[2]}, out={dest})"
    return None


def _write_into(g: Graph, ins: Instr, v: int, dying: list[int], text) -> _Line | None:
    """The instruction written into the buffer of a dying operand, or None."""
    if not dying:
        return None
    op, args = ins.op, ins.args

    def method(base, call):
        return _Line(v, f"{_ref(base)}{call}", True, base=base, method=True)

    def into(base, code):
        return _Line(v, code, True, base=base)

    t = [text(a)[0] for a in args]
    first = args[0]
    if op in UNARY:
        inplace = UNARY[op][1]
        if first in dying and inplace is not None and op not in UNARY_KWARGS:
            return method(first, f".{inplace}()")
        return None
    if op == "powc" and first in dying:
        return method(first, f".pow_({literal(ins.attr[0])[0]})")
    if op == "clamp" and first in dying:
        return method(first, f".clamp_({_clamp_bounds(ins.attr)})")
    if op in _FN:
        a, b = args
        if a in dying and op not in ("maximum", "minimum"):
            return method(a, f".{op}_({t[1]})")
        if b in dying:
            if op in ("add", "mul"):  # IEEE addition and multiplication commute exactly
                return method(b, f".{op}_({t[0]})")
            if g.kind(a) == "const" and op == "sub":  # c - b == (-b) + c exactly
                return method(b, f".neg_().add_({t[0]})")
            if g.kind(a) == "const" and op == "div":  # torch computes c / b as reciprocal(b) * c
                return method(b, f".reciprocal_().mul_({t[0]})")
            return into(b, f"{_FN[op]}({t[0]}, {t[1]}, out={t[1]})")
        if a in dying:
            return into(a, f"{_FN[op]}({t[0]}, {t[1]}, out={t[0]})")
        return None
    if op == "where":
        m, a, b = args
        if a in dying:
            if g.kind(b) == "const":
                return method(a, f".masked_fill_(~{_wrap(text(m), ATOM)}, {t[2]})")
            return into(a, f"torch.where({t[0]}, {t[1]}, {t[2]}, out={t[1]})")
        if b in dying:
            if g.kind(a) == "const":
                return method(b, f".masked_fill_({t[0]}, {t[1]})")
            return into(b, f"torch.where({t[0]}, {t[1]}, {t[2]}, out={t[2]})")
    return None


def _render_inplace(g: Graph, k: Kernel, lines: list[_Line], texts, uses, namer: Namer) -> list[str]:
    """Statements with names. Values that share a buffer form a *group* with one name: an unnamed value
    written into the buffer of the value before it continues that group (``out.mul_(b0).neg_()``); a value
    with a meaningful name of its own (a CSE temporary, a safe input) or a buffer taken from the free pool
    starts a new group (``b1 = xs0.neg_()``: Python names one tensor twice; ``xs0`` is dead from there on)."""
    group: dict[int, int] = {}  # value -> group id
    first: list[int] = []  # group id -> first value
    for ln in lines:
        b = ln.base
        continues = b is not None and b in group and ln.target not in k.hints and (ln.method or f"out={_ref(b)})" in ln.rhs)
        continues = continues and not _from_pool(ln, b) and first[group[b]] not in k.hints
        if continues:
            group[ln.target] = group[b]
        else:
            group[ln.target] = len(first)
            first.append(ln.target)
    names: dict[int, str] = {}
    for o in k.outputs:
        if o in group and group[o] not in names:
            names[group[o]] = namer.exact("out") if len(k.outputs) == 1 else namer.fresh("out")
    for gid, v in enumerate(first):
        if gid not in names:
            names[gid] = namer.fresh(k.hints.get(v, "b"))

    def resolve(s: str) -> str:
        parts = s.split("\0")
        return "".join(names[group[int(p)]] if i % 2 else p for i, p in enumerate(parts))

    out: list[list] = []  # [prefix ("name = " or ""), code, code is an atom (a call chain or a name)]
    last_gid = None
    for ln in lines:
        gid = group[ln.target]
        continuation = ln.base is not None and gid == group.get(ln.base, -1) and first[gid] != ln.target
        if continuation and ln.method:
            call = resolve(ln.rhs[len(_ref(ln.base)) :])
            if last_gid == gid and len(out[-1][1]) + len(call) <= 100:
                if not out[-1][2]:
                    out[-1][1] = f"({out[-1][1]})"
                out[-1][1] += call
                out[-1][2] = True
            else:
                out.append(["", names[gid] + call, True])
        elif continuation:
            out.append(["", resolve(ln.rhs), True])
        else:
            out.append([f"{names[gid]} = ", resolve(ln.rhs), ln.chain])
        last_gid = gid
    seen: set = set()
    rets = [_output_code(g, o, resolve(texts[o][0]), k.like, seen) for o in k.outputs]
    single = len(rets) == 1 and k.outputs[0] in group and rets[0] == names[group[k.outputs[0]]]
    body = [prefix + code for prefix, code, _ in out]
    if single and out and last_gid == group[k.outputs[0]]:
        body[-1] = "return " + out[-1][1]
    else:
        body.append(f"return {rets[0]}" if len(rets) == 1 else f"return ({', '.join(rets)})")
    return body


def _from_pool(ln: _Line, base: int) -> bool:
    """The line writes with ``out=`` into a buffer whose value died earlier (not an operand of this line)."""
    return not ln.method and ln.rhs.count(_ref(base)) == 1


__all__ = ["Kernel", "Namer", "emit_inplace", "emit_out_of_place", "kernel_from_program"]
