"""The declarative spec of an activation: name, expression in ``x``, parameters. Validation lives here."""

from __future__ import annotations

import hashlib
import keyword
import math
import re
from dataclasses import dataclass, field

import sympy as sp

from actsym.parse import ExpressionError, X, check_param_name, parse_expression

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
#: Parameter names that are options of the generated API (module constructor / functional keywords). Every
#: other legal identifier is usable: generated bodies name their own temporaries around the user's names.
API_NAMES = {"x", "self", "backend", "learnable", "num_parameters", "inplace"}
#: Activation names that would shadow what a generated module reads at module level: its imports and the
#: builtins its runtime helpers call (tests/test_codegen_ir.py checks this list against the generated code).
MODULE_NAMES = {"torch", "math", "bool", "isinstance", "len", "all", "any", "zip", "set", "sorted", "list", "float", "type",
                "tuple", "staticmethod", "super", "ValueError", "TypeError", "KeyError"}


@dataclass(frozen=True)
class Param:
    """A scalar parameter of an activation: initial value and whether it is trained."""

    init: float
    learnable: bool = True


@dataclass(frozen=True)
class ActivationSpec:
    name: str
    expr: sp.Expr
    params: dict[str, Param] = field(default_factory=dict)
    class_name: str = ""
    title: str = ""
    reference: str = ""
    source: str = ""

    @property
    def x(self) -> sp.Symbol:
        return X

    @property
    def param_symbols(self) -> list[sp.Symbol]:
        return [sp.Symbol(p, real=True) for p in self.params]

    def source_hash(self, generator_version: str) -> str:
        """Hash of everything the generated code depends on (stable across runs and machines)."""
        payload = "|".join(
            [
                generator_version,
                self.name,
                self.class_name,
                sp.srepr(self.expr),
                repr(sorted((k, v.init, v.learnable) for k, v in self.params.items())),
                self.title,
                self.reference,
            ]
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def camel_case(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part) or "Activation"


def _normalize_params(params) -> dict[str, Param]:
    out: dict[str, Param] = {}
    for key, value in (params or {}).items():
        check_param_name(key)
        if keyword.iskeyword(key) or keyword.issoftkeyword(key):
            raise ExpressionError(f"parameter name {key!r} is a Python keyword")
        if key in API_NAMES:
            raise ExpressionError(
                f"parameter name {key!r} is an option of generated modules ({', '.join(sorted(API_NAMES - {'x'}))}); "
                "choose another name"
            )
        if isinstance(value, Param):
            p = value
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            p = Param(float(value))
        elif isinstance(value, dict):
            p = Param(float(value.get("init", 0.0)), bool(value.get("learnable", True)))
        elif isinstance(value, (tuple, list)) and len(value) == 2:
            p = Param(float(value[0]), bool(value[1]))
        else:
            raise ExpressionError(f"parameter {key!r}: expected a number or Param, got {value!r}")
        if not math.isfinite(p.init):
            raise ExpressionError(f"parameter {key!r}: initial value must be finite")
        out[key] = p
    return out


def make_spec(
    name: str,
    expr,
    params=None,
    *,
    fixed=(),
    class_name: str | None = None,
    title: str = "",
    reference: str = "",
    budget: float | None = None,
) -> ActivationSpec:
    """Validate and build a spec. ``expr`` is a SymPy expression or a string (parsed safely).

    ``budget``: seconds the numeric validation probe may take (default: ``actsym.budget.budget_seconds()``)."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ExpressionError(
            f"invalid activation name {name!r}: start with a lowercase letter, then lowercase letters, digits and _"
        )
    if keyword.iskeyword(name) or keyword.issoftkeyword(name) or name in MODULE_NAMES:
        raise ExpressionError(f"invalid activation name {name!r}: it is a Python keyword or builtin name")
    ps = _normalize_params(params)
    for f in fixed:
        if f not in ps:
            raise ExpressionError(f"fixed parameter {f!r} is not a declared parameter")
        ps[f] = Param(ps[f].init, learnable=False)
    if isinstance(expr, str):
        source = expr.strip()
        e = parse_expression(source, frozenset(ps))
    elif isinstance(expr, sp.Basic):
        e = _adopt_sympy(expr, ps)
        source = str(e)
    else:
        raise ExpressionError(f"expression must be a string or a SymPy expression, got {type(expr).__name__}")
    _validate(e, ps, budget)
    cname = class_name or camel_case(name)
    if not cname.isidentifier() or keyword.iskeyword(cname) or cname.startswith("_") or cname in MODULE_NAMES:
        raise ExpressionError(f"invalid class name {cname!r}")
    return ActivationSpec(name, e, ps, cname, title or name, reference, source)


def _adopt_sympy(expr: sp.Basic, ps: dict[str, Param]) -> sp.Expr:
    """Replace plain symbols by the real symbols used everywhere else (x and parameters)."""
    mapping = {}
    for s in expr.free_symbols:
        if s.name == "x":
            mapping[s] = X
        elif s.name in ps:
            mapping[s] = sp.Symbol(s.name, real=True)
        else:
            raise ExpressionError(f"unknown name {s.name!r} (declare it as a parameter)")
    return expr.xreplace(mapping)


def _validate(e: sp.Basic, ps: dict[str, Param], seconds: float | None = None) -> None:
    if not isinstance(e, sp.Expr):
        raise ExpressionError("expression must be a value, not a condition")
    if X not in e.free_symbols:
        raise ExpressionError("expression does not depend on x")
    if e.has(sp.I) or e.has(sp.zoo) or e.has(sp.nan) or e.has(sp.oo) or e.has(-sp.oo):
        raise ExpressionError("expression is not real-valued (contains I, infinity or nan)")
    unused = [p for p in ps if sp.Symbol(p, real=True) not in e.free_symbols]
    if unused:
        raise ExpressionError(f"parameter(s) {', '.join(unused)} do not appear in the expression")
    from actsym.budget import run_budgeted

    values, _ = run_budgeted(_probe, e, ps, stage_name="validation of the expression (numeric probe)", seconds=seconds)
    if values and all(abs(v.imag) > 1e-9 * max(1.0, abs(v.real)) for _, v in values):
        raise ExpressionError(f"expression is not real-valued (f({values[0][0]}) = {values[0][1]:.4g})")


#: Where the probe looks for a non-real expression, and the largest exp argument it evaluates.
PROBE_POINTS = (0.5, -0.5, 1.5, -1.5, 3.0, -3.0)
_PROBE_EXP_LIMIT = 1e4


def _probe(e: sp.Expr, ps: dict[str, Param]) -> list[tuple[float, complex]]:
    """(x, f(x)) at PROBE_POINTS with parameters at their initial values: 20-digit mpmath at a fixed precision
    (SymPy's evalf raises the precision until it has 20 correct digits: minutes on exp(exp(exp(exp(x))))).
    Points where f overflows or is undefined are skipped."""
    import mpmath

    from actsym.functions import mpmath_namespace

    def guarded(fn):
        def call(u):
            if abs(mpmath.re(u)) > _PROBE_EXP_LIMIT:
                raise OverflowError("exp argument too large for the probe")
            return fn(u)

        return call

    guards = {name: guarded(getattr(mpmath, name)) for name in ("exp", "sinh", "cosh", "expm1")}
    symbols = [X, *(sp.Symbol(k, real=True) for k in ps)]
    try:
        f = sp.lambdify(symbols, e, modules=[guards, mpmath_namespace(), "mpmath"])
    except Exception:  # noqa: BLE001 - a form lambdify cannot print: the probe has nothing to say
        return []
    inits = [mpmath.mpf(v.init) for v in ps.values()]
    values = []
    with mpmath.workdps(20):
        for x0 in PROBE_POINTS:
            try:
                values.append((x0, complex(f(mpmath.mpf(x0), *inits))))
            except Exception:  # noqa: BLE001 - undefined or overflowing here: try the next point
                continue
    return values
