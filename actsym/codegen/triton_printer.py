"""SymPy -> Triton (``tl.*``) expression printer: one ``_print_<Node>`` per node type, strict about the rest.

Same contract as the torch printer (:mod:`actsym.codegen.printer`): it prints the output of the safe-Piecewise
lowering (``Where``/``Select``/``Clamp``), integer powers as products, constants as literals, and the stable
primitives stably. Only ``triton.language`` core ops are used -- no libdevice ``extern_elementwise`` calls --
so the code that runs on the GPU is exactly the code the CPU interpreter (``TRITON_INTERPRET=1``) tests.
Functions without a core op are small ``@triton.jit`` helpers (:data:`HELPERS`), emitted into the generated
module when used; functions with neither (``atan``, ``erfc`` ...) raise :class:`UnsupportedNode`.

The printed code assumes two names in scope: ``tl`` (``triton.language``) and ``COMPUTE`` (the compute dtype,
a ``tl.constexpr``: float32 for float16/bfloat16/float32 inputs, float64 for float64).
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.str import StrPrinter

from actsym.codegen.printer import Clamp, LogicPrinting, Select, UnsupportedNode, Where
from actsym.numerics import add_plan, mul_plan

#: Largest integer power printed as a product (``x*x*...*x``); larger ones are unsupported.
MAX_INT_POWER = 16

#: Helper name -> (math as a comment, Triton source). Each is written with core ops only and keeps the
#: accuracy of the torch op it replaces: no cancellation near 0, no inf/inf or 0*inf at large |u|, NaN in ->
#: NaN out. Kahan's tricks (expm1/log1p) need an accurate ``tl.log`` near 1 (``__nv_logf`` on NVIDIA) and no
#: reassociation (Triton does not reassociate floating point).
HELPERS: dict[str, tuple[str, str]] = {
    "_expm1": (
        "expm1(u) = e^u - 1; |u| < 1: Kahan (e - 1)*u/log(e) with e = e^u (exact u where e rounds to 1)",
        """\
@triton.jit
def _expm1(u):
    e = tl.exp(u)
    small = tl.where(e == 1.0, u, (e - 1.0) * u / tl.log(e))
    return tl.where(tl.abs(u) < 1.0, small, e - 1.0)
""",
    ),
    "_log1p": (
        "log1p(v) = log(1 + v); |v| < 0.5: Kahan log(w)*v/(w - 1) with w = 1 + v (exact v where w rounds to 1)",
        """\
@triton.jit
def _log1p(v):
    w = 1.0 + v
    small = tl.where(w == 1.0, v, tl.log(w) * v / (w - 1.0))
    return tl.where(tl.abs(v) < 0.5, small, tl.log(w))
""",
    ),
    "_softplus": (
        "softplus(u) = log(1 + e^u) = max(u, 0) + log1p(e^-|u|)  (never overflows; NaN stays NaN)",
        """\
@triton.jit
def _softplus(u):
    return tl.where(u > 0.0, u, 0.0) + _log1p(tl.exp(-tl.abs(u)))
""",
    ),
    "_tanh": (
        "tanh(u) = sign(u) * -expm1(-2|u|)/(2 + expm1(-2|u|))  (accurate near 0, exactly +-1 at large |u|)",
        """\
@triton.jit
def _tanh(u):
    e = _expm1(-2.0 * tl.abs(u))
    t = -e / (2.0 + e)
    return tl.where(u < 0.0, -t, t)
""",
    ),
    "_sign": (
        "sign(u) in {-1, 0, 1} (0 at NaN, like torch.sign)",
        """\
@triton.jit
def _sign(u):
    return tl.where(u > 0.0, 1.0, 0.0) - tl.where(u < 0.0, 1.0, 0.0)
""",
    ),
    "_sinh": (
        "sinh(u) = (expm1(u) - expm1(-u))/2  (accurate near 0)",
        """\
@triton.jit
def _sinh(u):
    return (_expm1(u) - _expm1(-u)) * 0.5
""",
    ),
    "_cosh": (
        "cosh(u) = (e^u + e^-u)/2",
        """\
@triton.jit
def _cosh(u):
    return (tl.exp(u) + tl.exp(-u)) * 0.5
""",
    ),
}

#: Helpers a helper calls (emitted first).
HELPERS["_ndtr"] = (
    "ndtr(u) = (1 + erf(u/sqrt(2)))/2  (Triton has no erfc: accurate to absolute, not relative, error for u < -4)",
    """\
@triton.jit
def _ndtr(u):
    return 0.5 + 0.5 * tl.erf(u * 0.7071067811865476)
""",
)

HELPERS["_logabs"] = (
    "logabs(u) = log|u|",
    """\
@triton.jit
def _logabs(u):
    return tl.log(tl.abs(u))
""",
)

HELPER_DEPS: dict[str, tuple[str, ...]] = {"_softplus": ("_log1p",), "_tanh": ("_expm1",), "_sinh": ("_expm1",)}

#: SymPy function name -> Triton core op (a table, not code).
CORE_FUNCTIONS = {
    "exp": "tl.exp",
    "log": "tl.log",
    "sin": "tl.sin",
    "cos": "tl.cos",
    "erf": "tl.erf",
    "Abs": "tl.abs",
    "sigmoid": "tl.sigmoid",
}

#: SymPy function name -> helper in :data:`HELPERS`.
HELPER_FUNCTIONS = {
    "expm1": "_expm1",
    "log1p": "_log1p",
    "softplus": "_softplus",
    "tanh": "_tanh",
    "sign": "_sign",
    "sinh": "_sinh",
    "cosh": "_cosh",
    "ndtr": "_ndtr",
    "logabs": "_logabs",
}

#: Functions with neither a core op nor an accurate core-op formula: printing them raises.
UNSUPPORTED_REASONS = {
    "atan": "no Triton core op (libdevice atan cannot run in the interpreter)",
    "asinh": "no Triton core op (libdevice asinh cannot run in the interpreter)",
    "erfc": "1 - erf(x) loses all digits for large x and libdevice erfc cannot run in the interpreter",
    "tan": "no Triton core op with torch.tan's accuracy near the poles",
}


def _plan(make, e):
    """``make(e)`` (a sum's or product's evaluation plan); a non-real constant is unsupported."""
    try:
        return make(e)
    except TypeError:
        raise UnsupportedNode(f"non-real constant in {e}") from None


def num(v) -> str:
    """A literal: integral values as integers (``x*2``), others as the shortest round-trip float repr."""
    f = float(v)
    if f != f or f in (float("inf"), float("-inf")):
        raise UnsupportedNode(f"non-finite constant {v} in Triton code")
    return str(int(f)) if f.is_integer() and abs(f) < 2**53 else repr(f)


def helper_closure(names) -> list[str]:
    """The helpers ``names`` need, dependencies first, in a deterministic order."""
    out: list[str] = []

    def visit(n: str) -> None:
        for d in HELPER_DEPS.get(n, ()):
            visit(d)
        if n not in out:
            out.append(n)

    for n in sorted(names):
        visit(n)
    return out


class TritonPrinter(LogicPrinting, StrPrinter):
    """Prints one expression as Triton code; records the helpers it used in ``self.helpers``."""

    printmethod = "_tritoncode"

    def __init__(self, settings=None):
        super().__init__(settings or {})
        self.helpers: set[str] = set()

    # -- atoms -------------------------------------------------------------------------------------
    def _print_Integer(self, e):
        # Triton's integer literals are at most 64-bit (int32 unless larger): a big one is a float literal
        return str(int(e)) if abs(int(e)) < 2**31 else num(e)

    def _print_Rational(self, e):
        return num(e)

    def _print_Float(self, e):
        return num(e)

    _print_Half = _print_Rational
    _print_NumberSymbol = _print_Float
    _print_Exp1 = _print_Float
    _print_Pi = _print_Float

    def _print_Infinity(self, e):
        raise UnsupportedNode("infinity as a value in Triton code")

    _print_NegativeInfinity = _print_Infinity
    _print_NaN = _print_Infinity

    def _print_ImaginaryUnit(self, e):
        raise UnsupportedNode("complex numbers are not supported")

    def _print_BooleanTrue(self, e):
        return "True"

    def _print_BooleanFalse(self, e):
        return "False"

    # -- arithmetic --------------------------------------------------------------------------------
    def _wrap(self, e, code: str) -> str:
        """Parenthesize ``code`` (printed from ``e``) unless it is one name, number or call."""
        if e.is_Symbol or (e.is_number and not code.startswith("-")) or isinstance(e, sp.Function):
            return code
        return f"({code})"

    def _print_Mul(self, e):
        plan = _plan(mul_plan, e)  # the order every printer and the regime scorer use (actsym.numerics)
        parts = [self._wrap(f, self._print(f)) for f in plan.factors]
        coef = None if plan.coef is None else num(plan.coef)
        if plan.leading:
            parts.insert(1, coef)
        code = "*".join(parts) if parts else ""
        if plan.denominators:
            dens = [self._wrap(d, self._print(d)) for d in plan.denominators]
            den = dens[0] if len(dens) == 1 else "(" + "*".join(dens) + ")"
            code = f"{code}/{den}" if code else f"1.0/{den}"
        if coef is not None and not plan.leading:
            code = f"{code}*{coef}" if code else coef
        return f"-{code}" if plan.negate else (code or "1.0")

    def _print_Add(self, e, order=None):
        plan = _plan(add_plan, e)  # the order every printer and the regime scorer use (actsym.numerics)

        def term(t):
            code = self._print(t)
            return f"({code})" if code.startswith("-") else code

        (sign, first), *rest = plan.terms
        if plan.const_first:
            code = f"{num(plan.const)} - {term(first)}"
        else:
            code = ("-" if sign < 0 else "") + term(first)
        for sign, t in rest:
            code += (" - " if sign < 0 else " + ") + term(t)
        if plan.const is not None and not plan.const_first:
            code += f" - {num(-plan.const)}" if plan.const < 0 else f" + {num(plan.const)}"
        return code

    def _print_Pow(self, e, rational=False):
        base, exp = e.args
        if e.is_number:
            return num(e.evalf(17))
        if exp.is_Integer:
            n = int(exp)
            if abs(n) > MAX_INT_POWER:
                raise UnsupportedNode(f"integer power {n} (more than {MAX_INT_POWER} multiplications)")
            b = self._wrap(base, self._print(base))
            prod = "*".join([b] * abs(n))
            return prod if n > 0 else f"1.0/{prod}" if abs(n) == 1 else f"1.0/({prod})"
        if exp == sp.S.Half:
            return f"tl.sqrt({self._print(base)})"
        if exp == -sp.S.Half:
            return f"tl.rsqrt({self._print(base)})"
        if exp.is_Rational and exp.q == 2:  # b**(k + 1/2) = b*...*b*sqrt(b); negative: 1/that
            k = int(abs(exp) - sp.S.Half)
            if k > MAX_INT_POWER:
                raise UnsupportedNode(f"power {exp} (more than {MAX_INT_POWER} multiplications)")
            b = self._wrap(base, self._print(base))
            prod = "*".join([b] * k + [f"tl.sqrt({self._print(base)})"])
            return prod if exp > 0 else f"1.0/({prod})"
        if base == sp.E:
            return f"tl.exp({self._print(exp)})"
        if base.is_number:
            if not base.is_positive:
                raise UnsupportedNode(f"power of a non-positive constant {base}")
            return f"tl.exp({self.parenthesize(exp, PRECEDENCE['Mul'])}*{num(sp.log(base).evalf(17))})"
        # general real power b**e = exp(e*log(b)): NaN for b < 0 like torch.pow with a non-integer exponent
        return f"tl.exp({self.parenthesize(exp, PRECEDENCE['Mul'])}*tl.log({self._print(base)}))"

    # -- functions ---------------------------------------------------------------------------------
    def _print_Function(self, e):
        if e.is_number and not isinstance(e, (Where, Select, Clamp)):
            return num(e.evalf(17))
        name = type(e).__name__
        args = ", ".join(self._print(a) for a in e.args)
        if name in CORE_FUNCTIONS:
            return f"{CORE_FUNCTIONS[name]}({args})"
        if name in HELPER_FUNCTIONS:
            helper = HELPER_FUNCTIONS[name]
            self.helpers.update(helper_closure([helper]))
            return f"{helper}({args})"
        reason = UNSUPPORTED_REASONS.get(name, "no Triton translation")
        raise UnsupportedNode(f"{name}(): {reason}")

    _print_exp = _print_Function
    _print_log = _print_Function
    _print_Abs = _print_Function
    _print_sign = _print_Function
    _print_erf = _print_Function
    _print_tanh = _print_Function
    _print_sin = _print_Function
    _print_cos = _print_Function

    def _branch(self, v) -> str:
        """A Where branch; a number becomes a COMPUTE-typed scalar (a bare float literal would be float32)."""
        return f"tl.full((), {num(v)}, COMPUTE)" if v.is_number else self._print(v)

    def _print_Where(self, e):
        mask, a, b = e.args
        return f"tl.where({self._print(mask)}, {self._branch(a)}, {self._branch(b)})"

    def _print_Select(self, e):
        mask, x, p = e.args
        return f"tl.where({self._print(mask)}, {self._print(x)}, {self._branch(p)})"

    def _print_Clamp(self, e):
        v, lo, hi = e.args
        code = self._print(v)
        # PropagateNan.ALL: a NaN input stays NaN (the default max/min would return the bound)
        if lo.is_finite:
            code = f"tl.maximum({code}, {num(lo)}, propagate_nan=tl.PropagateNan.ALL)"
        if hi.is_finite:
            code = f"tl.minimum({code}, {num(hi)}, propagate_nan=tl.PropagateNan.ALL)"
        return code

    def _print_Piecewise(self, e):
        # Only reached for a Piecewise the lowering left in place (no safe point): plain nested selection.
        *pairs, (last, _) = e.args
        out = self._branch(last)
        for value, cond in reversed(pairs):
            out = f"tl.where({self._print(cond)}, {self._branch(value)}, {out})"
        return out

    def emptyPrinter(self, e):
        raise UnsupportedNode(f"cannot print {type(e).__name__} as Triton code")


def triton_code(expr: sp.Basic, printer: TritonPrinter | None = None) -> str:
    """Triton source for one expression (pass a printer to collect the helpers of several)."""
    return (printer or TritonPrinter()).doprint(expr)


__all__ = ["HELPERS", "TritonPrinter", "UnsupportedNode", "helper_closure", "triton_code"]
