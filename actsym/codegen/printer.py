"""SymPy -> PyTorch expression printer (one ``_print_<Node>`` per node type, strict about the rest).

Unlike SymPy's stock torch printer this one prints integer powers as products/``torch.square``, constants as
float literals, the stable primitives as their fused torch ops, and the masked selections produced by
:mod:`actsym.codegen.lower` (``Where``/``Select``) as ``torch.where``.
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.str import StrPrinter

from actsym.functions import StableFunction, logabs, ndtr
from actsym.numerics import AddPlan, MulPlan, add_plan, mul_plan  # noqa: F401 - re-exported


class Where(sp.Function):
    """``Where(mask, a, b)``: elementwise a where mask else b (mask is a boolean tensor symbol)."""

    nargs = 3


class Select(sp.Function):
    """``Select(mask, x, p)``: x where mask else the constant p -- the *safe input* of a branch."""

    nargs = 3


class Clamp(sp.Function):
    """``Clamp(x, lo, hi)``: x clamped to [lo, hi] (``-oo``/``oo`` for no bound) -- a mask-free *safe input*
    for a branch whose region is that interval (NaN stays NaN)."""

    nargs = 3


class UnsupportedNode(TypeError):
    pass


# Sums and products are evaluated as actsym.numerics.add_plan / mul_plan say, in every printer and in the
# regime scorer: the out-of-place and the in-place code perform the same floating-point operations in the
# same order (bit-identical), and that order is the one whose accuracy was measured.

def _plan(make, e):
    """``make(e)`` (a sum's or product's evaluation plan); a non-real constant is unsupported."""
    try:
        return make(e)
    except TypeError:
        raise UnsupportedNode(f"non-real constant in {e}") from None


def num(v: float) -> str:
    """A float literal; integral values print as integers (``x*2``, ``t0 - 1``)."""
    return str(int(v)) if float(v).is_integer() and abs(v) < 2**53 else repr(float(v))


TORCH_FUNCTIONS = {
    "exp": "torch.exp",
    "log": "torch.log",
    "sin": "torch.sin",
    "cos": "torch.cos",
    "tan": "torch.tan",
    "tanh": "torch.tanh",
    "sinh": "torch.sinh",
    "cosh": "torch.cosh",
    "atan": "torch.atan",
    "asinh": "torch.asinh",
    "erf": "torch.erf",
    "erfc": "torch.erfc",
    "Abs": "torch.abs",
    "sign": "torch.sign",
}


class LogicPrinting:
    """Comparisons and boolean masks, printed the same way for torch and Triton tensors."""

    def _print_Relational(self, e):
        op = {"==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}[e.rel_op]
        return f"({self._print(e.lhs)} {op} {self._print(e.rhs)})"

    def _print_And(self, e):
        return " & ".join(f"({self._print(a)})" for a in e.args)

    def _print_Or(self, e):
        return " | ".join(f"({self._print(a)})" for a in e.args)

    def _print_Not(self, e):
        return f"~({self._print(e.args[0])})"


class TorchPrinter(LogicPrinting, StrPrinter):
    """Prints one expression as PyTorch code. ``like`` names a tensor used to give constants a dtype."""

    printmethod = "_torchcode"

    def __init__(self, like: str = "x", settings=None):
        super().__init__(settings or {})
        self.like = like

    # -- atoms -------------------------------------------------------------------------------------
    def _print_Integer(self, e):
        return str(int(e))

    def _print_Rational(self, e):
        return repr(float(e))

    def _print_Float(self, e):
        return repr(float(e))

    def _print_Half(self, e):
        return "0.5"

    def _print_NumberSymbol(self, e):
        return repr(float(e))

    def _print_Exp1(self, e):
        return "math.e"

    def _print_Pi(self, e):
        return "math.pi"

    def _print_BooleanTrue(self, e):
        return "True"

    def _print_BooleanFalse(self, e):
        return "False"

    def _print_Infinity(self, e):
        return "math.inf"

    def _print_NegativeInfinity(self, e):
        return "-math.inf"

    def _print_NaN(self, e):
        return "math.nan"

    def _print_ImaginaryUnit(self, e):
        raise UnsupportedNode("complex numbers are not supported")

    # -- arithmetic --------------------------------------------------------------------------------
    def _factor(self, f) -> str:
        code = self._print(f)
        return f"({code})" if f.is_Add or (f.is_Pow and f.exp == 3 and f.base.is_Symbol) else code

    def _print_Mul(self, e):
        plan = _plan(mul_plan, e)  # the order the regime scorer measured (actsym.numerics.split_product)
        dens = [self._factor(d) for d in plan.denominators]
        if plan.factors:
            parts = [self._factor(f) for f in plan.factors]
            if plan.leading:
                parts.insert(1, num(plan.coef))
            code = "*".join(parts)
            if dens:
                code += "/" + (dens[0] if len(dens) == 1 else f"({'*'.join(dens)})")
            if plan.coef is not None and not plan.leading:
                code += f"*{num(plan.coef)}"
        else:  # only a coefficient over denominators: reciprocal, then the coefficient (as torch's 2/x does)
            code = f"torch.reciprocal({'*'.join(dens)})" + (f"*{num(plan.coef)}" if plan.coef is not None else "")
        return f"-{code}" if plan.negate else code

    def _print_Add(self, e, order=None):
        plan = _plan(add_plan, e)
        (sign, first), *rest = plan.terms
        if plan.const_first:
            code = f"{num(plan.const)} - {self._print(first)}"
        else:
            code = ("-" if sign < 0 else "") + self._print(first)
        for sign, t in rest:
            code += (" - " if sign < 0 else " + ") + self._print(t)
        if plan.const is not None and not plan.const_first:
            code += f" - {num(-plan.const)}" if plan.const < 0 else f" + {num(plan.const)}"
        return code

    def _print_Pow(self, e, rational=False):
        base, exp = e.args
        if exp.is_Number and not base.is_number:
            b = self.parenthesize(base, 100)
            if exp == 2:
                return f"torch.square({self._print(base)})"
            if exp == 3:
                return f"{b} * {b} * {b}" if base.is_Symbol else f"torch.pow({self._print(base)}, 3)"
            if exp == -1:
                return f"torch.reciprocal({self._print(base)})"
            if exp == -2:
                return f"torch.reciprocal(torch.square({self._print(base)}))"
            if exp == sp.S.Half:
                return f"torch.sqrt({self._print(base)})"
            if exp == -sp.S.Half:
                return f"torch.rsqrt({self._print(base)})"
            if exp.is_Integer:
                return f"torch.pow({self._print(base)}, {int(exp)})"
            return f"torch.pow({self._print(base)}, {float(exp)!r})"
        if base.is_number and not exp.is_number:
            if base == sp.E:
                return f"torch.exp({self._print(exp)})"
            return f"torch.pow({float(base)!r}, {self._print(exp)})"
        if e.is_number:
            return repr(float(e))
        return f"torch.pow({self._print(base)}, {self._print(exp)})"

    # -- functions ---------------------------------------------------------------------------------
    def _print_Function(self, e):
        if e.is_number and not isinstance(e, (Where, Select)):
            return repr(float(e.evalf(17)))
        if isinstance(e, logabs):
            return f"torch.log(torch.abs({self._print(e.args[0])}))"
        if isinstance(e, ndtr):  # torch.special.ndtr is 1 + erf on CPU: no digits in the left tail
            return f"(0.5 * torch.erfc(-0.7071067811865476 * {self._print(e.args[0])}))"
        if isinstance(e, StableFunction):
            return f"{e.torch_op}({self._print(e.args[0])}{e.torch_kwargs})"
        name = type(e).__name__
        if name in TORCH_FUNCTIONS:
            return f"{TORCH_FUNCTIONS[name]}({', '.join(self._print(a) for a in e.args)})"
        raise UnsupportedNode(f"no torch translation for {name}()")

    _print_exp = _print_Function
    _print_log = _print_Function
    _print_Abs = _print_Function
    _print_sign = _print_Function
    _print_erf = _print_Function

    def _print_Where(self, e):
        mask, a, b = e.args
        if a.is_number and b.is_number:
            return f"torch.where({self._print(mask)}, {self._print(a)}, {self._print(b)}).to({self.like}.dtype)"
        return f"torch.where({self._print(mask)}, {self._print(a)}, {self._print(b)})"

    def _print_Clamp(self, e):
        v, lo, hi = e.args
        bounds = ([f"min={num(float(lo))}"] if lo.is_finite else []) + ([f"max={num(float(hi))}"] if hi.is_finite else [])
        return f"torch.clamp({self._print(v)}, {', '.join(bounds)})"

    def _print_Select(self, e):
        mask, x, p = e.args
        return f"torch.where({self._print(mask)}, {self._print(x)}, {self._print(p)})"

    def _print_Piecewise(self, e):
        # Only reached for Piecewise that could not be lowered to a safe selection (see lower.py).
        *pairs, (last, last_cond) = e.args
        out = self._print(last)
        for value, cond in reversed(pairs):
            out = f"torch.where({self._print(cond)}, {self._print(value)}, {out})"
        return out

    def emptyPrinter(self, e):
        raise UnsupportedNode(f"cannot print {type(e).__name__} as torch code")


def torch_code(expr: sp.Basic, like: str = "x") -> str:
    return TorchPrinter(like=like).doprint(expr)
