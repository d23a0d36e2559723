"""Grammar fuzzer for actsym: Hypothesis strategies for random activation *strings*, and one runner.

Used by ``tests/test_fuzz.py`` (a bounded, derandomized CI run and the regression corpus replay) and by
``tools/fuzz.py`` (long runs). Expressions use the whole parser whitelist (:data:`actsym.parse.FUNCTIONS`),
nest up to ``max_depth`` (6), have Piecewise with 1-5 branches whose conditions involve x and parameters,
0-5 parameters with arbitrary legal names (hostile ones included: names the generator might use for its own
temporaries, Python builtins, nn.Module words), removable singularities (``sin(u)/u``, ``expm1(u)/u``), and
mostly valid domains (``log``/``sqrt`` of ``softplus(.) + c`` or ``Abs(.) + c``), so most are ordinary.

:func:`run_case` classifies one case: ``ok`` (every path agrees with the oracle of :mod:`actsym.verify`),
``refused`` (a clean :class:`~actsym.parse.ExpressionError`, with the stage that refused it), ``wrong``
(a path disagrees with the oracle) or ``crashed`` (any other exception, anywhere).
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from hypothesis import strategies as st

CORPUS = Path(__file__).parent / "corpus" / "regressions.json"

#: Parameter names: ordinary ones and hostile ones (generator temporaries, Python builtins, module words).
PARAM_NAMES = [
    "a", "b", "c", "k", "alpha", "beta", "gamma", "lam", "s", "w",
    "out", "b0", "b1", "b2", "b3", "t0", "t1", "m1", "xs0", "g2", "i0", "buf", "grad", "value", "len", "any",
    "float", "extra", "y", "gx", "result", "self", "ctx", "backend", "learnable", "num_parameters", "torch",
    "math", "super", "tail", "up", "needs", "saved", "p_a", "x_", "mask", "where",
]
ACT_NAMES = ["fz", "act", "my_act", "f", "value", "grad", "out", "torch", "math", "apply", "t0"]

CONSTANTS = ["1", "2", "3", "5", "1/2", "3/2", "1/3", "0.5", "0.1", "0.01", "1.702", "0.044715", "pi", "E",
             "sqrt(2/pi)", "sqrt(2)", "log(2)", "2.5", "10"]
UNARY = ["exp", "log1p", "expm1", "sin", "cos", "tanh", "sinh", "cosh", "atan", "asinh", "erf", "erfc",
         "Abs", "sign", "sigmoid", "softplus", "logsigmoid", "relu", "Heaviside"]
COMPARE = ["<", "<=", ">", ">="]


@st.composite
def _leaf(draw, params):
    choice = draw(st.integers(0, 9))
    if choice < 5 or not params:
        if choice < 7:
            return "x"
        return draw(st.sampled_from(CONSTANTS))
    if choice < 8:
        return draw(st.sampled_from(params))
    return draw(st.sampled_from(CONSTANTS))


def _u(draw, params, depth):
    return draw(_expr(params, depth - 1))


@st.composite
def _condition(draw, params, depth):
    left = draw(st.sampled_from(["x", "x", "x"] + ([f"x - {p}" for p in params] + [f"{p}*x" for p in params])))
    if depth > 1 and draw(st.integers(0, 5)) == 0:
        left = draw(_expr(params, min(depth - 1, 2)))
    right = draw(st.sampled_from(["0", "0", "1", "-1", "2", "-2", "1/2", "-0.5", "3", "pi"] + list(params)))
    cond = f"{left} {draw(st.sampled_from(COMPARE))} {right}"
    if draw(st.integers(0, 7)) == 0:
        other = f"x {draw(st.sampled_from(COMPARE))} {draw(st.sampled_from(['-3', '4', '5/2']))}"
        cond = f"({cond}) {draw(st.sampled_from(['&', '|']))} ({other})"
    return cond


@st.composite
def _expr(draw, params, depth):
    if depth <= 0:
        return draw(_leaf(params))
    kind = draw(st.integers(0, 17))
    if kind < 3:
        return draw(_leaf(params))
    if kind < 7:
        op = draw(st.sampled_from(["+", "-", "*", "*", "+"]))
        return f"({_u(draw, params, depth)} {op} {_u(draw, params, depth)})"
    if kind < 10:
        f = draw(st.sampled_from(UNARY))
        arg = _u(draw, params, depth)
        if f in ("exp", "sinh", "cosh", "expm1"):  # keep magnitudes sane: a bounded argument most of the time
            if draw(st.booleans()):
                arg = f"tanh({arg})"
        if f == "Heaviside" and draw(st.booleans()):
            return f"Heaviside({arg}, {draw(st.sampled_from(['0', '1', '1/2']))})"
        return f"{f}({arg})"
    if kind == 10:  # safe domains
        g = draw(st.sampled_from(["log", "sqrt"]))
        inner = draw(st.sampled_from(["softplus", "Abs"]))
        c = draw(st.sampled_from(["1", "1/2", "0.1", "2"]))
        return f"{g}({inner}({_u(draw, params, depth)}) + {c})"
    if kind == 11:  # division by something positive
        return f"({_u(draw, params, depth)})/({draw(st.sampled_from(['Abs', 'softplus']))}({_u(draw, params, depth)}) + 1)"
    if kind == 12:  # removable singularity
        u = draw(st.sampled_from(["x", "2*x", "(x - 1)", "(x + 1/2)"] + [f"({p}*x)" for p in params]))
        f = draw(st.sampled_from(["sin({0})/{0}", "expm1({0})/{0}", "(1 - cos({0}))/{0}**2", "tanh({0})/{0}",
                                  "atan({0})/{0}", "asinh({0})/{0}"]))
        return f.format(u)
    if kind == 13:
        f = draw(st.sampled_from(["Max", "Min"]))
        n = draw(st.integers(2, 3))
        return f"{f}({', '.join(_u(draw, params, depth) for _ in range(n))})"
    if kind == 14:  # small integer powers, or a fractional power of something positive
        if draw(st.booleans()):
            return f"({_u(draw, params, depth)})**{draw(st.sampled_from(['2', '3', '2']))}"
        return f"(Abs({_u(draw, params, depth)}) + 1)**({draw(st.sampled_from(['1/2', '3/2', '-1', '0.3333']))})"
    if kind == 15:
        return f"tan(tanh({_u(draw, params, depth)}))"
    # Piecewise with 1-5 branches (branch values one level shallower: keeps the size within the parser's limits)
    n = draw(st.integers(1, 5))
    branches = []
    for _ in range(n - 1):
        branches.append(f"({_u(draw, params, depth - 1)}, {draw(_condition(params, depth))})")
    if not branches or draw(st.integers(0, 12)) > 0:  # else no True branch: undefined somewhere
        branches.append(f"({_u(draw, params, depth - 1)}, True)")
    return f"Piecewise({', '.join(branches)})"


@st.composite
def activations(draw, max_depth: int = 6, max_params: int = 5):
    """A case: {"name", "expr", "params"}; every parameter appears in the expression and so does x."""
    names = draw(st.lists(st.sampled_from(PARAM_NAMES), max_size=max_params, unique=True))
    depth = draw(st.integers(1, max_depth))
    text = draw(_expr(names, depth))
    for p in names:
        if not _mentions(text, p):
            text = f"{text} + {draw(st.sampled_from([f'{p}*x', f'{p}*sin(x)', f'relu(x - {p})', f'x*{p}**2']))}"
    if not _mentions(text, "x"):
        text = f"{text} + x"
    inits = {p: draw(st.sampled_from([0.5, 1.0, 1.5, 2.0, -0.5, 0.25, 0.1, 3.0, -1.0,
                                      round(draw(st.floats(-3, 3)), 3)])) for p in names}
    name = draw(st.sampled_from(ACT_NAMES)) if draw(st.integers(0, 5)) == 0 else "fz"
    return {"name": name, "expr": text, "params": inits}


def _mentions(text: str, name: str) -> bool:
    import re

    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_(])", text) is not None


# ------------------------------------------------------------------------------------------------------
# running one case
# ------------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    status: str  # ok | refused | wrong | crashed
    stage: str  # define | code | verify | extra (vmap/gradcheck) | ...
    message: str = ""
    seconds: float = 0.0

    def line(self) -> str:
        return f"{self.status} [{self.stage}] {self.message}"


def _first_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:300]}"


def run_case(case: dict, *, budget: float = 20.0, extra: bool = True) -> Outcome:
    """define (verify=False) -> build the code -> self_check -> extra paths (vmap(grad), gradcheck)."""
    import actsym
    from actsym import verify
    from actsym.parse import ExpressionError

    start = time.perf_counter()
    stage = "define"

    def done(status, message=""):
        return Outcome(status, stage, message, time.perf_counter() - start)

    try:
        act = actsym.define(case.get("name", "fz"), case["expr"], case.get("params") or {}, budget=budget,
                            verify=False)
        stage = "code"
        code = act.code
        stage = "verify"
        verify.self_check(act.spec, code)
        if extra:
            stage = "extra"
            extra_paths(act.spec, code)
    except verify.VerificationFailed as e:
        return done("wrong", _first_line(e))
    except ExpressionError as e:
        return done("refused", _first_line(e))
    except Exception as e:  # noqa: BLE001 - the fuzzer's job is to find these
        tb = traceback.extract_tb(e.__traceback__)
        where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
        return done("crashed", _first_line(e) + where)
    return done("ok")


def extra_paths(spec, module) -> None:
    """torch.func ``vmap(grad(f))`` against the oracle (float64) and ``gradcheck`` at a few ordinary points."""
    from actsym import verify

    case = verify.oracle(spec).case(torch.float64)
    checker = verify._Checker(spec, module, case)
    fn = getattr(module, spec.name)
    pvals = [case.params[p] for p in spec.params]
    path = "torch.func.vmap(torch.func.grad(f))"

    def vg():
        return torch.func.vmap(torch.func.grad(lambda t: fn(t, *pvals)))(checker.x.clone())

    checker.compare(path, "x", checker.run(path, vg))
    second_derivative(spec, module, case, checker)

    # gradcheck (x and every parameter) where f is smooth: away from switch points, moderate values
    idx = case.clean(["x", *spec.params])
    far = [i for i in idx if 0.05 <= abs(case.xs[i]) <= 4
           and all(abs(case.xs[i] - r) > 1e-2 for r in case.switch_points)
           and all(abs(case.exact[k][i]) < 1e4 for k in [None, "x", *spec.params])]
    pick = far[:: max(1, len(far) // 4)][:4]
    if not pick:
        return
    x = torch.tensor(case.xs[pick], dtype=torch.float64, requires_grad=True)
    ps = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in pvals]
    path = "torch.autograd.gradcheck"
    try:
        ok = torch.autograd.gradcheck(lambda t, *p: fn(t, *p), (x, *ps), eps=1e-7, atol=1e-5, rtol=1e-4,
                                      raise_exception=True)
    except torch.autograd.gradcheck.GradcheckError as e:
        raise verify.VerificationFailed(f"self-check failed: {path} (float64) at x={case.xs[pick].tolist()}: "
                                        f"{(str(e).strip().splitlines() or [''])[0]}") from None
    except Exception as e:  # noqa: BLE001
        checker.fail(path, f"raised {_first_line(e)}")
    assert ok


def second_derivative(spec, module, case, checker) -> None:
    """d2f/dx2 by double backward (float64) against mpmath on the plain second derivative, away from switch
    points (where it may not exist); a non-finite result where the exact one is finite is wrong."""
    import mpmath
    import sympy as sp

    from actsym import verify
    from actsym.parse import X

    expr = sp.diff(spec.expr, X, 2)
    if expr.has(sp.Derivative, sp.Subs):
        return
    o = verify.oracle(spec)
    f2 = verify._MpFunction(expr, o.args, None)
    pm = [mpmath.mpf(case.params[p]) for p in spec.params]
    idx = [i for i in range(len(case.xs))
           if all(abs(case.xs[i] - r) > 1e-6 * max(1.0, abs(r)) for r in case.switch_points)]
    if not idx:
        return
    with mpmath.workdps(verify.DPS):
        exact = np.array([float(v) if (v := f2((mpmath.mpf(float(case.xs[i])), *pm))) is not None else np.nan
                          for i in idx])
    fn = getattr(module, spec.name)
    pvals = [case.params[p] for p in spec.params]
    path = "d2f/dx2 (double backward)"

    def go():
        x = torch.tensor(case.xs[idx], dtype=torch.float64, requires_grad=True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(fn(x, *pvals).sum(), x, create_graph=True)
            if not g.requires_grad:  # df/dx does not depend on anything: d2f/dx2 = 0
                return torch.zeros_like(x)
            (h,) = torch.autograd.grad(g.sum(), x, allow_unused=True)
        return torch.zeros_like(x) if h is None else h

    got = checker.run(path, go).detach().numpy()
    # tolerance as in actsym.verify: relative 1e-8 plus C*eps times the naive error bound of d2f/dx2 (its
    # cancellation near removable singularities is real), or the local scale where the naive form is 0/0
    xs = case.xs[idx]
    env = {X: xs, **{sym: np.full(len(idx), case.params[p]) for sym, p in zip(o.psyms, spec.params)}}
    try:
        _, err, _ = verify._Bound(env, len(idx))(expr)
    except (verify._Unsupported, TypeError, ValueError):
        err = np.abs(exact) * 1e3
    with np.errstate(all="ignore"):
        mag = np.where(np.isfinite(exact), np.abs(exact), 0.0)
        local = np.array([mag[np.abs(xs - xv) <= 1].max(initial=0.0) for xv in xs])
        err = np.where(np.isfinite(err), err, np.maximum(np.abs(exact) * 1e3, local))
        tol = 1e-8 * np.abs(exact) + verify.C_BOUND * np.finfo(np.float64).eps * err + 1e-12
        fine = np.isfinite(exact) & (np.abs(exact) < 1e8)
        bad = fine & ~(np.abs(got - exact) <= tol)
    if bad.any():
        j = int(np.nonzero(bad)[0][0])
        checker.fail(path, f"at {checker.where(idx[j])}: got {got[j]:.10g}, expected {exact[j]:.10g} "
                           f"({int(bad.sum())} of {len(idx)} points wrong)")


# ------------------------------------------------------------------------------------------------------
# the regression corpus
# ------------------------------------------------------------------------------------------------------


def load_corpus(path: Path = CORPUS) -> list[dict]:
    return json.loads(path.read_text()) if path.exists() else []


def append_corpus(entries: list[dict], path: Path = CORPUS) -> int:
    """Append entries not already there (by name, expr and params); returns how many were added."""
    have = load_corpus(path)
    keys = {(e.get("name", "fz"), e["expr"], json.dumps(e.get("params") or {}, sort_keys=True)) for e in have}
    added = 0
    for e in entries:
        k = (e.get("name", "fz"), e["expr"], json.dumps(e.get("params") or {}, sort_keys=True))
        if k not in keys:
            keys.add(k)
            have.append(e)
            added += 1
    if added:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(have, indent=1) + "\n")
    return added


def summarize(outcomes: list[Outcome]) -> str:
    counts: dict[str, int] = {}
    for o in outcomes:
        key = o.status if o.status in ("ok", "wrong", "crashed") else f"refused at {o.stage}"
        counts[key] = counts.get(key, 0) + 1
    secs = np.array([o.seconds for o in outcomes]) if outcomes else np.zeros(1)
    parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    return f"{len(outcomes)} expressions: {parts}; median {np.median(secs):.2f} s, max {secs.max():.1f} s each"
