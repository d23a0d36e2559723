"""Safe parsing of user expressions into SymPy.

The string is parsed with :func:`ast.parse` (which only builds a syntax tree, it executes nothing) and the
tree is translated node by node into SymPy objects. Only arithmetic, comparisons, ``&``/``|``/``and``/``or``,
numeric literals, plain names and calls of whitelisted functions are accepted. There is no ``eval``, no
``exec`` and no SymPy ``parse_expr`` anywhere on this path, so attribute access, lambdas, subscripts,
dunder names, keyword tricks and the like are rejected before anything runs. Size limits (length, node count,
nesting depth, exponent size) keep hostile inputs from hanging the simplifier.
"""

from __future__ import annotations

import ast
import math

import sympy as sp

from actsym.functions import expm1, log1p, sigmoid, softplus

MAX_CHARS = 2000
MAX_NODES = 400
MAX_DEPTH = 40
MAX_EXPONENT = 64
MAX_LITERAL = 1e12

X = sp.Symbol("x", real=True)


class ExpressionError(ValueError):
    """A user expression was rejected; the message is one line and names the problem."""


def _relu(u):
    return sp.Piecewise((u, u > 0), (0, True))


def _logsigmoid(u):
    return -softplus(-u)


def _piecewise(*pairs):
    if not pairs:
        raise ExpressionError("Piecewise needs at least one (value, condition) pair")
    for p in pairs:
        if not isinstance(p, tuple) or len(p) != 2:
            raise ExpressionError("Piecewise arguments must be (value, condition) pairs")
        _require_values(p[0])
        _require_conditions(p[1])
    return sp.Piecewise(*pairs)


def _unary(f):
    def call(*args):
        if len(args) != 1:
            raise ExpressionError(f"{f.__name__}() takes exactly one argument")
        return f(*args)

    call.__name__ = getattr(f, "__name__", "f")
    return call


def _variadic(f, minimum=2):
    def call(*args):
        if len(args) < minimum:
            raise ExpressionError(f"{f.__name__}() takes at least {minimum} arguments")
        return f(*args)

    return call


#: Whitelisted functions: the name a user writes -> how it is built in SymPy.
FUNCTIONS = {
    "exp": _unary(sp.exp),
    "log": _unary(sp.log),
    "log1p": _unary(log1p),
    "expm1": _unary(expm1),
    "sqrt": _unary(sp.sqrt),
    "sin": _unary(sp.sin),
    "cos": _unary(sp.cos),
    "tan": _unary(sp.tan),
    "tanh": _unary(sp.tanh),
    "sinh": _unary(sp.sinh),
    "cosh": _unary(sp.cosh),
    "atan": _unary(sp.atan),
    "asinh": _unary(sp.asinh),
    "erf": _unary(sp.erf),
    "erfc": _unary(sp.erfc),
    "Abs": _unary(sp.Abs),
    "abs": _unary(sp.Abs),
    "sign": _unary(sp.sign),
    "Heaviside": _variadic(sp.Heaviside, 1),
    "Max": _variadic(sp.Max),
    "max": _variadic(sp.Max),
    "Min": _variadic(sp.Min),
    "min": _variadic(sp.Min),
    "Piecewise": _piecewise,
    "sigmoid": _unary(sigmoid),
    "softplus": _unary(softplus),
    "logsigmoid": _unary(_logsigmoid),
    "relu": _unary(_relu),
}

CONSTANTS = {"pi": sp.pi, "E": sp.E, "e": sp.E, "True": sp.true, "true": sp.true}

_BINOPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}
_COMPARE = {ast.Lt: sp.Lt, ast.LtE: sp.Le, ast.Gt: sp.Gt, ast.GtE: sp.Ge}


def reserved_names() -> set[str]:
    """Names that cannot be used for parameters."""
    return set(FUNCTIONS) | set(CONSTANTS) | {"x", "I", "oo", "nan", "zoo", "S", "N", "Q", "O"}


def check_param_name(name: str) -> None:
    if not name.isidentifier() or name.startswith("_"):
        raise ExpressionError(f"invalid parameter name {name!r}: use a plain identifier")
    if name in reserved_names():
        raise ExpressionError(f"parameter name {name!r} clashes with a function or reserved name")


def parse_expression(text: str, params: set[str] | frozenset[str] = frozenset()) -> sp.Expr:
    """Parse ``text`` into a SymPy expression in the real symbol ``x`` and the given parameter names."""
    if not isinstance(text, str):
        raise ExpressionError("expression must be a string")
    if len(text) > MAX_CHARS:
        raise ExpressionError(f"expression too long ({len(text)} > {MAX_CHARS} characters)")
    for p in params:
        check_param_name(p)
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        hint = "; write Abs(x) for |x|" if text.count("|") >= 2 else ""
        raise ExpressionError(f"syntax error in expression at column {e.offset}: {e.msg}{hint}") from None
    except (RecursionError, MemoryError, ValueError):
        raise ExpressionError("expression is nested too deeply") from None
    count = sum(1 for _ in ast.walk(tree))
    if count > MAX_NODES:
        raise ExpressionError(f"expression too large ({count} syntax nodes > {MAX_NODES})")
    symbols = {p: sp.Symbol(p, real=True) for p in params}
    symbols["x"] = X
    builder = _Builder(symbols)
    result = builder.build(tree.body, 0)
    if isinstance(result, tuple) or not isinstance(result, sp.Expr):
        raise ExpressionError("expression must be a value, not a condition or a tuple")
    return result


class _Builder:
    def __init__(self, symbols: dict[str, sp.Symbol]):
        self.symbols = symbols

    def build(self, node: ast.AST, depth: int):
        if depth > MAX_DEPTH:
            raise ExpressionError(f"expression nested too deeply (> {MAX_DEPTH} levels)")
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            raise ExpressionError(f"unsupported syntax: {_describe(node)}")
        return method(node, depth + 1)

    def _Constant(self, node, depth):
        v = node.value
        if isinstance(v, bool):
            return sp.true if v else sp.false
        if not isinstance(v, (int, float)):
            raise ExpressionError(f"unsupported literal {v!r}: only real numbers are allowed")
        if not math.isfinite(v) or abs(v) > MAX_LITERAL:
            raise ExpressionError(f"numeric literal {v!r} is out of range (|v| <= {MAX_LITERAL:g})")
        if isinstance(v, int):
            return sp.Integer(v)
        return sp.Rational(str(v)) if len(repr(v)) <= 20 else sp.Float(v)

    def _Name(self, node, depth):
        name = node.id
        if name in self.symbols:
            return self.symbols[name]
        if name in CONSTANTS:
            return CONSTANTS[name]
        if name in FUNCTIONS:
            raise ExpressionError(f"{name!r} is a function; call it, e.g. {name}(x)")
        guess = _did_you_mean(name, [*self.symbols, *CONSTANTS, *FUNCTIONS])
        if guess:
            call = f"{guess}(x)" if guess in FUNCTIONS else guess
            raise ExpressionError(f"unknown name {name!r}; did you mean {call}?")
        raise ExpressionError(f"unknown name {name!r} (declare parameters, e.g. --param {name}=1.0)")

    def _IfExp(self, node, depth):
        raise ExpressionError(f"'{_text(node.body)} if {_text(node.test)} else {_text(node.orelse)}' is Python; "
                              f"write Piecewise(({_text(node.body)}, {_text(node.test)}), ({_text(node.orelse)}, True))")

    def _Attribute(self, node, depth):
        raise ExpressionError(_prefix_hint(node) or f"unsupported syntax: {_describe(node)}")

    def _BinOp(self, node, depth):
        if isinstance(node.op, ast.BitXor):
            raise ExpressionError("'^' is not a power: write x**2")
        left = self.build(node.left, depth)
        right = self.build(node.right, depth)
        if isinstance(node.op, (ast.BitAnd, ast.BitOr)):
            _require_conditions(left, right)
            return sp.And(left, right) if isinstance(node.op, ast.BitAnd) else sp.Or(left, right)
        _require_values(left, right)
        if isinstance(node.op, ast.Pow):
            return _power(left, right)
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise ExpressionError(f"unsupported operator {type(node.op).__name__}")
        return op(left, right)

    def _UnaryOp(self, node, depth):
        operand = self.build(node.operand, depth)
        if isinstance(node.op, (ast.Not, ast.Invert)):
            _require_conditions(operand)
            return sp.Not(operand)
        _require_values(operand)
        if isinstance(node.op, ast.USub):
            return -operand
        if isinstance(node.op, ast.UAdd):
            return operand
        raise ExpressionError(f"unsupported operator {type(node.op).__name__}")

    def _BoolOp(self, node, depth):
        values = [self.build(v, depth) for v in node.values]
        _require_conditions(*values)
        return sp.And(*values) if isinstance(node.op, ast.And) else sp.Or(*values)

    def _Compare(self, node, depth):
        terms = [self.build(node.left, depth)] + [self.build(c, depth) for c in node.comparators]
        _require_values(*terms)
        parts = []
        for op, a, b in zip(node.ops, terms, terms[1:]):
            rel = _COMPARE.get(type(op))
            if rel is None:
                raise ExpressionError(f"unsupported comparison {type(op).__name__} (use <, <=, >, >=)")
            parts.append(rel(a, b))
        return sp.And(*parts) if len(parts) > 1 else parts[0]

    def _Tuple(self, node, depth):
        return tuple(self.build(e, depth) for e in node.elts)

    def _Call(self, node, depth):
        if not isinstance(node.func, ast.Name):
            raise ExpressionError(_prefix_hint(node.func, call=True) or f"unsupported call: {_describe(node.func)}")
        name = node.func.id
        if node.keywords:
            raise ExpressionError(f"keyword arguments are not supported in {name}()")
        if name not in FUNCTIONS:
            if name in _ALIASES:
                raise ExpressionError(f"unknown function {name!r}; write {_ALIASES[name]}(...)")
            guess = _did_you_mean(name, list(FUNCTIONS))
            if guess:
                raise ExpressionError(f"unknown function {name!r}; did you mean {guess}(...)?")
            raise ExpressionError(f"unknown function {name!r}; allowed: {', '.join(sorted(FUNCTIONS))}")
        args = [self.build(a, depth) for a in node.args]
        if name != "Piecewise":
            _require_values(*args)
        try:
            return FUNCTIONS[name](*args)
        except ExpressionError:
            raise
        except (TypeError, ValueError) as e:
            raise ExpressionError(f"invalid arguments to {name}(): {str(e).splitlines()[0]}") from None


def _require_values(*items):
    """Operands of arithmetic, comparisons and functions: numbers and expressions, not conditions."""
    for it in items:
        if isinstance(it, tuple):
            raise ExpressionError("tuples are only allowed as Piecewise arguments")
        if _is_condition(it):
            raise ExpressionError(
                f"the condition {sp.sstr(it)} is used as a number; write Piecewise((value, condition), ...) "
                "or Heaviside(...)"
            )


def _is_condition(item) -> bool:
    # SymPy's Symbol is also a Boolean (for logic): a condition is a Boolean that is not a value
    return isinstance(item, sp.logic.boolalg.Boolean) and not isinstance(item, sp.Expr)


def _require_conditions(*items):
    """Operands of &, |, not and Piecewise conditions: comparisons or True/False."""
    for it in items:
        if isinstance(it, tuple):
            raise ExpressionError("tuples are only allowed as Piecewise arguments")
        if not _is_condition(it):
            raise ExpressionError(f"{sp.sstr(it)} is used as a condition; write a comparison such as x > 0")


def _power(base, exponent):
    if exponent.is_Number:
        if abs(float(exponent)) > MAX_EXPONENT:
            raise ExpressionError(f"exponent {exponent} too large (|n| <= {MAX_EXPONENT})")
    elif base.is_Number and abs(float(base)) > MAX_EXPONENT:
        raise ExpressionError(f"base {base} too large for a symbolic exponent")
    if base.is_Number and exponent.is_Number:
        if abs(float(base)) > 1e6:
            raise ExpressionError(f"constant power {base}**{exponent} out of range")
    return sp.Pow(base, exponent)


#: other spellings of whitelisted functions (the hint names the whitelisted one)
_ALIASES = {"ln": "log", "abs": "Abs", "fabs": "Abs", "absolute": "Abs", "max": "Max", "min": "Min",
            "maximum": "Max", "minimum": "Min", "sign": "sign", "heaviside": "Heaviside", "where": "Piecewise"}

#: module prefixes people paste from NumPy / PyTorch / math / SymPy code
_PREFIXES = ("np", "numpy", "torch", "math", "F", "nn", "sp", "sympy", "special", "scipy")


def _did_you_mean(name: str, known: list[str]) -> str | None:
    """A known name equal to ``name`` but for case or an alias, else the closest one (difflib), else None."""
    import difflib

    if name in _ALIASES and _ALIASES[name] in known:
        return _ALIASES[name]
    folded = {k.lower(): k for k in known}
    if name.lower() in folded:
        return folded[name.lower()]
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
    return close[0] if close else None


def _prefix_hint(node: ast.AST, call: bool = False) -> str | None:
    """``np.exp`` / ``torch.tanh`` / ``math.pi`` / ``F.relu``: the whitelisted name to write instead."""
    if not isinstance(node, ast.Attribute):
        return None
    base = node.value
    parts = [node.attr]
    while isinstance(base, ast.Attribute):  # torch.nn.functional.relu
        parts.append(base.attr)
        base = base.value
    if not (isinstance(base, ast.Name) and base.id in _PREFIXES):
        return None
    prefix = ".".join([base.id, *reversed(parts[1:])]) + "."
    known = list(FUNCTIONS) if call else [*FUNCTIONS, *CONSTANTS]
    name = _did_you_mean(node.attr, known)
    if name is None:
        return f"{prefix}{node.attr} is not available: write plain names without {prefix!r}, e.g. exp(x)"
    if name in FUNCTIONS and not call:
        return f"write {name}(...) without the {prefix!r} prefix (not {prefix}{node.attr})"
    suffix = "(...)" if call else ""
    return f"write {name}{suffix} without the {prefix!r} prefix (not {prefix}{node.attr}{suffix})"


def _text(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except Exception:  # noqa: BLE001 - only for the error message
        return "..."


def _describe(node: ast.AST) -> str:
    try:
        text = ast.unparse(node)
    except Exception:  # noqa: BLE001 - only for the error message
        text = type(node).__name__
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(node).__name__} ({text})"
