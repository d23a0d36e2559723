"""The property suite: what every generated activation must satisfy. Used by ``actsym check`` and the tests.

Each property is a function ``(Activation, Settings) -> str`` that returns a short detail line on success and
raises :class:`PropertyFailed` (or any AssertionError) on failure. Properties drawing random inputs use
Hypothesis (shrinking gives the smallest failing input in the report).
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import mpmath
import sympy as sp
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actsym.activation import Activation
from actsym.branch_points import branch_points
from actsym.functions import mpmath_namespace

HALF_DTYPES = (torch.float16, torch.bfloat16)
EXTREME = [1e4, -1e4, 1e3, -1e3, 100.0, -100.0, 88.8, -88.8, 20.0, -20.0, 1e-30, -1e-30, 0.0]


class PropertyFailed(AssertionError):
    pass


@dataclass
class Settings:
    examples: int = 40
    derandomize: bool = True
    compile_backend: str = "aot_eager"
    channels: int = 3


@dataclass
class Result:
    name: str
    passed: bool
    detail: str
    seconds: float


@dataclass
class Report:
    activation: str
    results: list[Result] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def format(self) -> str:
        out = io.StringIO()
        out.write(f"property suite for {self.activation}\n")
        for r in self.results:
            out.write(f"  {'PASS' if r.passed else 'FAIL'}  {r.name:<22} {r.seconds:5.2f}s  {r.detail}\n")
        for n in self.notes:
            out.write(f"  note: {n}\n")
        n_ok = sum(r.passed for r in self.results)
        out.write(f"  {n_ok}/{len(self.results)} properties hold\n")
        return out.getvalue()


# ------------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------------


def boundaries(act: Activation) -> list[float]:
    """Parameter-free branch points of f (x values where a Piecewise condition changes)."""
    return branch_points(act.derivation.f, act.spec.x, act.expr)


def _away_from_kinks(act: Activation, lo=-8.0, hi=8.0, margin=1e-2):
    kinks = boundaries(act)
    return st.floats(lo, hi, allow_nan=False).filter(lambda v: all(abs(v - k) > margin for k in kinks))


def param_tensors(act: Activation, dtype=torch.float64, shift: float = 0.0, requires_grad=False):
    return [
        torch.tensor(p.init + shift, dtype=dtype, requires_grad=requires_grad and p.learnable)
        for p in act.spec.params.values()
    ]


def _mp_functions(act: Activation):
    d = act.derivation
    syms = [d.x, *act.spec.param_symbols]
    ns = [mpmath_namespace(), "mpmath"]
    f = sp.lambdify(syms, d.patched["f"], modules=ns)
    g = sp.lambdify(syms, d.patched["x"], modules=ns)
    return f, g


def _hyp(examples: int, derandomize: bool):
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=derandomize,
        suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
    )


def failure_detail(err: BaseException, limit: int = 300) -> str:
    """A failed property in one readable line: the reason (the exception's message with its lines joined,
    e.g. gradcheck's numerical vs analytical values, not just its first line), then the falsifying input
    Hypothesis found (``at x0=-0.5``)."""
    import re

    text = re.sub(r"\s+", " ", str(err)).strip()
    reason = text or type(err).__name__
    if not isinstance(err, PropertyFailed):
        reason = f"{type(err).__name__}: {reason}"
    if len(reason) > limit:
        reason = reason[: limit - 1] + "…"
    example = ""
    for note in getattr(err, "__notes__", []) or []:
        m = re.match(r"Falsifying example: \w+\((.*)\)\s*$", str(note), flags=re.S)
        if m:
            example = re.sub(r"\s+", " ", m.group(1)).strip().rstrip(",").strip()
            break
    return f"{reason}; falsifying input: {example}" if example else reason


def _check(cond: bool, message: str):
    if not cond:
        raise PropertyFailed(message)


# ------------------------------------------------------------------------------------------------------
# properties
# ------------------------------------------------------------------------------------------------------


def prop_derivatives_verified(act: Activation, s: Settings) -> str:
    """Symbolic derivatives agree with 30-digit finite differences (done once at generation)."""
    return "; ".join(act.derivation.checks) or "no derivatives"


def prop_symbolic_vs_numeric(act: Activation, s: Settings) -> str:
    """Generated float64 values and input-gradients agree with the SymPy expressions evaluated by mpmath."""
    f_mp, g_mp = _mp_functions(act)
    pv = [p.init for p in act.spec.params.values()]
    worst = [0.0]

    @_hyp(s.examples, s.derandomize)
    @given(_away_from_kinks(act, -30.0, 30.0))
    def check(x0):
        x = torch.tensor([x0], dtype=torch.float64, requires_grad=True)
        y = act.functional(x, *param_tensors(act))
        (gx,) = torch.autograd.grad(y.sum(), x)
        with mpmath.workdps(30):
            fv, gv = f_mp(x0, *pv), g_mp(x0, *pv)
        if not (mpmath.isfinite(fv) and mpmath.isfinite(gv)):
            return
        for got, ref, what in ((y.item(), fv, "f"), (gx.item(), gv, "f'")):
            err = abs(got - float(ref)) / max(1.0, abs(float(ref)))
            worst[0] = max(worst[0], err)
            _check(err < 1e-10, f"{what}({x0!r}) = {got!r}, expected {float(ref)!r}")

    check()
    return f"max rel. error {worst[0]:.1e} (float64 vs mpmath)"


def prop_gradcheck(act: Activation, s: Settings) -> str:
    """torch.autograd.gradcheck and gradgradcheck in float64 away from kinks (input and parameters)."""

    @_hyp(max(4, s.examples // 8), s.derandomize)
    @given(st.lists(_away_from_kinks(act, -5.0, 5.0, 0.05), min_size=3, max_size=6))
    def check(values):
        x = torch.tensor(values, dtype=torch.float64, requires_grad=True)
        ps = param_tensors(act, requires_grad=True)
        inputs = (x, *ps)
        _check(torch.autograd.gradcheck(act.functional, inputs), "gradcheck failed")
        _check(torch.autograd.gradgradcheck(act.functional, inputs), "gradgradcheck failed")

    check()
    return "gradcheck + gradgradcheck (x and parameters)"


def prop_extreme_inputs(act: Activation, s: Settings) -> str:
    """Values and gradients finite and accurate (vs mpmath) for |x| up to 1e4 in float32 and float64."""
    f_mp, g_mp = _mp_functions(act)
    pv = [p.init for p in act.spec.params.values()]
    for dtype, rtol, atol in ((torch.float32, 2e-5, 1e-6), (torch.float64, 1e-10, 1e-14)):
        x = torch.tensor(EXTREME, dtype=dtype, requires_grad=True)
        y = act.functional(x, *param_tensors(act, dtype))
        (gx,) = torch.autograd.grad(y.sum(), x)
        _check(bool(torch.isfinite(y).all()), f"{dtype}: non-finite value at x={_bad(x, y)}")
        _check(bool(torch.isfinite(gx).all()), f"{dtype}: non-finite gradient at x={_bad(x, gx)}")
        with mpmath.workdps(40):
            for i in range(len(EXTREME)):
                x0r = float(x.detach()[i])
                for got, fn, what in ((y[i].item(), f_mp, "f"), (gx[i].item(), g_mp, "f'")):
                    try:
                        ref = float(fn(mpmath.mpf(x0r), *pv))
                    except (OverflowError, ZeroDivisionError, ValueError):
                        continue
                    if not math.isfinite(ref):
                        continue
                    _check(abs(got - ref) <= rtol * abs(ref) + atol, f"{dtype}: {what}({x0r:g}) = {got!r}, expected {ref!r}")
    return f"finite and accurate at {len(EXTREME)} points in float32/float64"


def prop_accuracy(act: Activation, s: Settings) -> str:
    """Bits of error of f, df/dx, df/dp over the whole float range (actsym.accuracy, Herbie's measure). Fails
    where a result is inf/NaN but the exact value is finite and |x| <= 1e4 (the range extreme-inputs covers);
    non-finite results further out and the error in bits are reported."""
    from actsym.accuracy import measure

    parts, far = [], 0
    bps = boundaries(act)
    for dtype in (torch.float64, torch.float32):
        r = measure(act, dtype, n=200, branch_points=bps)
        for f in r.functions:
            near = [p for p in f.nonfinite if abs(p[0]) <= 1e4]
            _check(not near, f"{r.dtype} {f.what}: got {near[0][1]} at x = {near[0][0]:.6g}, exact {near[0][2]:.6g}"
                   if near else "")
            far += len(f.nonfinite)
        parts.append(f"{r.dtype} " + ", ".join(f"{f.what} {f.mean_bits:.2f}/{f.max_bits:.0f}" for f in r.functions))
    tail = f"; non-finite where exact is finite at {far} points with |x| > 1e4" if far else ""
    return "bits mean/max: " + "; ".join(parts) + tail


def _bad(x, y):
    return x.detach()[~torch.isfinite(y)].tolist()[:3]


def prop_nan_propagates(act: Activation, s: Settings) -> str:
    """NaN in -> NaN out."""
    x = torch.tensor([float("nan"), 1.0, -1.0], dtype=torch.float32)
    y = act.functional(x, *param_tensors(act, torch.float32))
    _check(bool(torch.isnan(y[0])), f"f(nan) = {y[0].item()}")
    _check(bool(torch.isfinite(y[1:]).all()), "NaN leaked into neighbouring elements")
    return "f(nan) is nan"


def prop_dtypes(act: Activation, s: Settings) -> str:
    """Output dtype equals input dtype; half precision is computed in float32 and rounded once."""
    x32 = torch.linspace(-6, 6, 97, dtype=torch.float32)
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        m = act.module().to(dtype) if act.spec.params else act.module()
        x = x32.to(dtype).detach().requires_grad_(True)
        y = m(x)
        _check(y.dtype == dtype, f"{dtype} input gave {y.dtype} output")
        y.backward(torch.ones_like(y))
        _check(x.grad.dtype == dtype, f"{dtype} input gave {x.grad.dtype} gradient")
        for p in m.parameters():
            _check(p.grad is None or p.grad.dtype == p.dtype, "parameter gradient dtype changed")
        if dtype in HALF_DTYPES:
            ref = act.module()(x.detach().float()).to(dtype)
            _check(torch.equal(y.detach(), ref), f"{dtype}: not float32 math rounded once")
    return "float16/bfloat16/float32/float64"


def prop_per_channel(act: Activation, s: Settings) -> str:
    """num_parameters=C: parameters of shape (C,), gradients reduced per channel, equal to scalar sharing."""
    if not any(p.learnable for p in act.spec.params.values()):
        return "no learnable parameters"
    C = s.channels
    torch.manual_seed(0)
    x = torch.randn(4, C, 5, 5, dtype=torch.float64) * 3
    shared, per_ch = act.module().double(), act.module(num_parameters=C).double()
    y1, y2 = shared(x), per_ch(x)
    _check(torch.allclose(y1, y2), "per-channel module with equal values differs from the shared one")
    y2.sum().backward()
    y1.sum().backward()
    for (n, p1), (_, p2) in zip(shared.named_parameters(), per_ch.named_parameters()):
        _check(p2.grad.shape == (C,), f"{n}.grad has shape {tuple(p2.grad.shape)}, expected ({C},)")
        _check(torch.allclose(p2.grad.sum(), p1.grad.sum()), f"{n}: per-channel grads do not sum to the shared grad")
        for c in range(C):
            xc = x[:, c : c + 1].clone()
            one = act.module().double()
            one(xc).sum().backward()
            _check(torch.allclose(dict(one.named_parameters())[n].grad[0], p2.grad[c]), f"{n}: channel {c} grad wrong")
    try:
        per_ch(torch.randn(2, C + 1, 3))
    except ValueError:
        pass
    else:
        raise PropertyFailed("a channel-count mismatch was not reported")
    return f"(C,) parameters with C={C}; grads per channel"


def prop_state_dict(act: Activation, s: Settings) -> str:
    """state_dict round-trip restores the parameters exactly."""
    m = act.module(num_parameters=s.channels)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.arange(p.numel(), dtype=p.dtype) * 0.1)
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    m2 = act.module(num_parameters=s.channels)
    m2.load_state_dict(torch.load(buf, weights_only=True))
    x = torch.randn(2, s.channels, 4)
    _check(torch.equal(m(x), m2(x)), "outputs differ after state_dict round-trip")
    return f"{len(m.state_dict())} tensors"


def prop_compile(act: Activation, s: Settings) -> str:
    """torch.compile(fullgraph=True) traces forward and backward without graph breaks; results match eager."""
    torch._dynamo.reset()
    m = act.module(num_parameters=s.channels)
    compiled = torch.compile(m, fullgraph=True, backend=s.compile_backend)
    x = torch.randn(2, s.channels, 8, dtype=torch.float32) * 4
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ya, yb = m(xa), compiled(xb)
    ya.sum().backward()
    yb.sum().backward()
    _check(torch.allclose(ya, yb, atol=1e-6), "compiled forward differs")
    _check(torch.allclose(xa.grad, xb.grad, atol=1e-6), "compiled backward differs")
    return f"fullgraph=True, backend={s.compile_backend}"


def prop_functorch(act: Activation, s: Settings) -> str:
    """torch.func.grad and vmap work and agree with autograd."""
    ps = param_tensors(act)
    x = torch.linspace(-3.1, 2.9, 11, dtype=torch.float64)

    def scalar_f(xi):
        return act.functional(xi, *ps)

    g = torch.func.vmap(torch.func.grad(scalar_f))(x)
    xr = x.clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(act.functional(xr, *ps).sum(), xr)
    _check(torch.allclose(g, ref), "vmap(grad(f)) differs from autograd")
    batched = torch.func.vmap(lambda v: act.functional(v, *ps))(x.view(11, 1))
    _check(torch.allclose(batched.view(-1), act.functional(x, *ps)), "vmap(f) differs")
    return "vmap(grad(f)) == autograd"


def prop_fast_path(act: Activation, s: Settings) -> str:
    """The in-place (no-autograd) code gives the same numbers as the differentiable code."""
    mod, name = act.code, act.name
    pairs = [("value", 0)] + [("grad_x", 1)] + ([("grad_all", 1)] if act.spec.params else [])
    x = torch.cat([torch.linspace(-12, 12, 301, dtype=torch.float64), torch.tensor(EXTREME, dtype=torch.float64)])
    near = boundaries(act) + [r for pts in act.derivation.removable.values() for r in pts]
    for k in near:
        offsets = torch.tensor([0.0, 1e-7, 1e-3, 0.013, 0.031, 0.049], dtype=torch.float64)
        x = torch.cat([x, k + offsets, k - offsets])
    grad = torch.linspace(-1.5, 2.5, x.numel(), dtype=torch.float64)
    ps = param_tensors(act)
    for fn, takes_grad in pairs:
        args = ((grad,) if takes_grad else ()) + (x, *ps)
        with torch.no_grad():
            slow, fast = getattr(mod, f"{name}_{fn}")(*args), getattr(mod, f"{name}_{fn}_nograd")(*args)
        slow, fast = (slow, fast) if isinstance(slow, tuple) else ((slow,), (fast,))
        for a, b in zip(slow, fast):
            _check(torch.allclose(a, b, rtol=1e-12, atol=1e-300, equal_nan=True), f"{fn}: in-place result differs")
    return f"{len(pairs)} functions on {x.numel()} points"


def prop_continuity(act: Activation, s: Settings) -> str:
    """Report C0/C1 continuity of f at its parameter-free branch points (informational)."""
    pts = boundaries(act)
    if not pts:
        return "no branch points"
    f_mp, g_mp = _mp_functions(act)
    pv = [p.init for p in act.spec.params.values()]
    parts = []
    with mpmath.workdps(30):
        for b in pts:
            h = mpmath.mpf("1e-12")
            c0 = abs(f_mp(b - h, *pv) - f_mp(b + h, *pv)) < 1e-9
            c1 = abs(g_mp(b - h, *pv) - g_mp(b + h, *pv)) < 1e-6
            parts.append(f"x={b:g}: " + ("C1" if c0 and c1 else "C0 only" if c0 else "discontinuous"))
    return "; ".join(parts)


def prop_native(act: Activation, s: Settings) -> str:
    """Matches the native PyTorch op (values and gradients, float32 and float64)."""
    from actsym.catalog import native_module

    native = native_module(act.name) if _is_catalog(act) else None
    if native is None:
        return "no native counterpart"
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 2e-6)):
        x = (torch.linspace(-9, 9, 1001, dtype=dtype) + 1e-3).requires_grad_(True)
        x2 = x.detach().clone().requires_grad_(True)
        n, g = native.to(dtype), act.module().to(dtype)
        yn, yg = n(x), g(x2)
        _check(torch.allclose(yn, yg, rtol=tol, atol=tol), f"{dtype}: values differ from native")
        yn.sum().backward()
        yg.sum().backward()
        _check(torch.allclose(x.grad, x2.grad, rtol=tol, atol=tol), f"{dtype}: grads differ from native")
    return "values and grads match native in float32/float64"


def _is_catalog(act: Activation) -> bool:
    from actsym.catalog import CATALOG

    return act.name in CATALOG and act.expr == __import__("actsym").get(act.name).expr


PROPERTIES: dict[str, Callable[[Activation, Settings], str]] = {
    "derivatives-verified": prop_derivatives_verified,
    "symbolic-vs-numeric": prop_symbolic_vs_numeric,
    "gradcheck": prop_gradcheck,
    "extreme-inputs": prop_extreme_inputs,
    "accuracy": prop_accuracy,
    "nan-propagates": prop_nan_propagates,
    "dtypes": prop_dtypes,
    "per-channel": prop_per_channel,
    "state-dict": prop_state_dict,
    "torch-compile": prop_compile,
    "torch-func": prop_functorch,
    "fast-path": prop_fast_path,
    "continuity": prop_continuity,
    "native": prop_native,
}


def run_suite(act: Activation, settings_: Settings | None = None, only: list[str] | None = None) -> Report:
    s = settings_ or Settings()
    report = Report(act.name)
    for h in act.hazards:
        from actsym.analysis.hazard_text import hazard_text

        report.notes.append(f"hazard: {hazard_text(h)}")
    for key, pts in act.derivation.removable.items():
        report.notes.append(f"removable singularity of {key} at x = {pts}: Taylor-patched")
    for key, at in act.derivation.param_removable.items():
        report.notes.append(f"removable singularity of {key} at {', '.join(at)}: takes its limit there")
    for name, prop in PROPERTIES.items():
        if only and name not in only:
            continue
        t0 = time.perf_counter()
        try:
            detail, ok = prop(act, s), True
        except Exception as e:  # noqa: BLE001 - a property failing is a result, not a crash
            detail, ok = failure_detail(e), False
        report.results.append(Result(name, ok, detail, time.perf_counter() - t0))
    return report
