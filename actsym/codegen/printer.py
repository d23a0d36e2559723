"""SymPy -> PyTorch expression printer (one ``_print_<Node>`` per node type, strict about the rest).

Unlike SymPy's stock torch printer this one prints integer powers as products/``torch.square``, constants as
float literals, the stable primitives as their fused torch ops, and the masked selections produced by
:mod:`actsym.codegen.lower` (``Where``/``Select``) as ``torch.where``.
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.str import StrPrinter

from actsym.functions import StableFunction


class Where(sp.Function):
    """``Where(mask, a, b)``: elementwise a where mask else b (mask is a boolean tensor symbol)."""

    nargs = 3


class Select(sp.Function):
    """``Select(mask, x, p)``: x where mask else the constant p -- the *safe input* of a branch."""

    nargs = 3


class UnsupportedNode(TypeError):
    pass


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


class TorchPrinter(StrPrinter):
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

    # -- logic -------------------------------------------------------------------------------------
    def _print_Relational(self, e):
        op = {"==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}[e.rel_op]
        return f"({self._print(e.lhs)} {op} {self._print(e.rhs)})"

    def _print_And(self, e):
        return " & ".join(f"({self._print(a)})" for a in e.args)

    def _print_Or(self, e):
        return " | ".join(f"({self._print(a)})" for a in e.args)

    def _print_Not(self, e):
        return f"~({self._print(e.args[0])})"

    def emptyPrinter(self, e):
        raise UnsupportedNode(f"cannot print {type(e).__name__} as torch code")


def torch_code(expr: sp.Basic, like: str = "x") -> str:
    return TorchPrinter(like=like).doprint(expr)
