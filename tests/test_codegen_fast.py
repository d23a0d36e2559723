"""The fast paths of the generated code: in-place (``*_nograd``) variants and the "compile" backend.

The in-place code performs the same operations as the out-of-place code in the same order (shared
mul/add plans), so results are bit-identical -- except where it selects branches with float indicators
(``a*I + b*(1 - I)``) instead of ``torch.where``: exact, but a zero result may change sign (-0.0 vs 0.0),
which compares equal. Everything else here checks that the right path runs and nothing leaks.
"""

import functools
import math

import pytest
import sympy as sp
import torch

import actsym
from actsym.activation import load_source
from actsym.codegen import native
from actsym.codegen.printer import torch_code
from actsym.properties import boundaries

SPECIAL = [math.nan, 0.0, -0.0, 1e4, -1e4, 1e-30, -1e-30, 80.0, -80.0, 100.0, -100.0, 1.0, -1.0, 0.5, -0.5, 3.0]
PIECEWISE = ["elu", "exp2", "prelu", "rational", "relu"]


def _params(act, dtype, shape=(), shift=0.0):
    return [torch.full(shape, p.init + shift, dtype=dtype) for p in act.spec.params.values()]


def _inputs(act, dtype, n=3000):
    torch.manual_seed(0)
    pts = SPECIAL + [float(b) + d for b in boundaries(act) for d in (0.0, 1e-7, -1e-7)]
    return torch.cat([torch.randn(n, dtype=dtype) * 6, torch.tensor(pts, dtype=dtype)])


def _bits(t):
    return t.view(torch.int32 if t.dtype == torch.float32 else torch.int64)


def _assert_same(fast, ref, what):
    """Equal values, NaN in the same places, and identical bits except for the sign of zeros."""
    assert fast.dtype == ref.dtype and fast.shape == ref.shape, what
    nan = torch.isnan(ref)
    assert torch.equal(torch.isnan(fast), nan), f"{what}: NaN positions differ"
    f, r = fast.masked_fill(nan, 0), ref.masked_fill(nan, 0)
    assert torch.equal(f, r), f"{what}: max abs diff {(f - r).abs().max().item()}"
    differ = _bits(f) != _bits(r)
    assert bool((r[differ] == 0).all()), f"{what}: bit differences other than signed zeros"


@pytest.mark.parametrize("name", actsym.names())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_inplace_matches_out_of_place(name, dtype):
    act = actsym.get(name)
    mod = act.code
    x = _inputs(act, dtype)
    g = torch.randn_like(x)
    for shift in (0.0, 0.3):
        ps = _params(act, dtype, shift=shift)
        saved = [t.clone() for t in (x, g, *ps)]
        with torch.no_grad():
            pairs = [("value", (x, *ps)), ("grad_x", (g, x, *ps))] + ([("grad_all", (g, x, *ps))] if ps else [])
            for fn, args in pairs:
                ref = getattr(mod, f"{name}_{fn}")(*args)
                twin = native.nograd_reference(mod, fn, args)  # where it runs PyTorch's fused kernel: that one
                ref = ref if twin is None else twin
                fast = getattr(mod, f"{name}_{fn}_nograd")(*args)
                for i, (a, b) in enumerate(zip(*((fast, ref) if isinstance(ref, tuple) else ((fast,), (ref,))))):
                    _assert_same(a, b, f"{name}_{fn}[{i}] {dtype} shift={shift}")
        for before, after in zip(saved, (x, g, *ps)):
            assert torch.equal(_bits(before), _bits(after)), f"{name}: an input was modified"


@pytest.mark.parametrize("name", ["swish", "prelu", "rational", "exponential", "elu"])
def test_inplace_with_per_channel_params(name):
    act = actsym.get(name)
    x = torch.randn(4, 3, 5, dtype=torch.float64) * 4
    g = torch.randn_like(x)
    ps = [torch.tensor([p.init, p.init + 0.25, p.init + 0.5], dtype=torch.float64).view(1, 3, 1) for p in act.spec.params.values()]
    with torch.no_grad():
        for fn, args in (("value", (x, *ps)), ("grad_all", (g, x, *ps))):
            ref = getattr(act.code, f"{name}_{fn}")(*args)
            fast = getattr(act.code, f"{name}_{fn}_nograd")(*args)
            for a, b in zip(*((fast, ref) if isinstance(ref, tuple) else ((fast,), (ref,)))):
                _assert_same(a, b, f"{name}_{fn} per-channel")


def _counting(monkeypatch, mod, fname):
    calls = []
    original = getattr(mod, fname)

    def wrapper(*args):
        calls.append(fname)
        return original(*args)

    monkeypatch.setattr(mod, fname, wrapper)
    return calls


@pytest.mark.parametrize("name", ["silu", "elu", "rational"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fast_path_runs_without_autograd_and_leaves_inputs_alone(name, dtype, monkeypatch):
    act = actsym.get(name)
    mod = act.code
    fwd = _counting(monkeypatch, mod, f"{name}_value_nograd")
    bwd = _counting(monkeypatch, mod, f"{name}_grad_x_nograd")
    bwd_all = _counting(monkeypatch, mod, f"{name}_grad_all_nograd") if act.spec.params else []
    m = act.module(num_parameters=3).to(dtype)
    x = (torch.randn(2, 3, 7, dtype=dtype) * 4).requires_grad_(True)
    x0 = x.detach().clone()
    g = torch.randn(2, 3, 7, dtype=dtype)
    g0 = g.clone()
    y = m(x)
    y.backward(g)
    twin_value = native.nograd_reference(mod, "value", (x0,))
    twin_grad = native.nograd_reference(mod, "grad_x", (g0, x0))
    if x.dtype in getattr(mod, "_NATIVE_VALUE", ()):  # the lean native Function ran PyTorch's fused forward
        assert not fwd and torch.equal(y, twin_value)
    else:
        assert fwd, "the in-place forward was not used"
        if twin_value is not None:  # ... which runs the fused kernel where it was verified
            assert torch.equal(y, twin_value)
    if twin_grad is None:
        assert bwd or bwd_all, "the in-place backward was not used"
    else:
        assert torch.equal(x.grad, twin_grad)
    assert torch.equal(x.detach(), x0) and torch.equal(g, g0), "input or incoming gradient was modified"
    ref = act.module(num_parameters=3).to(dtype)
    xr = x0.clone().requires_grad_(True)
    with torch.enable_grad():
        yr = getattr(mod, f"{name}_value")(xr, *[getattr(ref, p).view(1, 3, 1) for p in act.spec.params])
    if twin_value is None:
        assert torch.equal(y, yr.detach())
    else:
        assert torch.allclose(y, yr.detach(), rtol=8 * torch.finfo(dtype).eps, atol=0)


@pytest.mark.parametrize("name", PIECEWISE + ["silu", "gelu"])
def test_double_backward_uses_differentiable_path(name, monkeypatch):
    act = actsym.get(name)
    mod = act.code
    fast = _counting(monkeypatch, mod, f"{name}_grad_x_nograd")
    fast_all = _counting(monkeypatch, mod, f"{name}_grad_all_nograd") if act.spec.params else []
    x = torch.tensor([-2.3, -0.7, 0.4, 1.9, 3.1], dtype=torch.float64, requires_grad=True)
    ps = [t.requires_grad_(True) for t in _params(act, torch.float64)]
    y = act.functional(x, *ps)
    v = torch.randn_like(y).requires_grad_(True)
    (gx,) = torch.autograd.grad(y, x, v, create_graph=True)
    assert gx.grad_fn is not None and not fast and not fast_all
    assert torch.autograd.gradgradcheck(act.functional, (x, *ps))


def test_constant_folding_and_clamp_safe_inputs():
    x = sp.Symbol("x", real=True)
    assert torch_code(sp.sqrt(2) * x / 2) == "x*0.7071067811865476"
    # exp(-x**2/2) is bounded: it takes the coefficient at once (numerics.split_product)
    assert torch_code(-x * sp.exp(-(x**2) / 2) / sp.sqrt(sp.pi)) == "torch.exp(torch.square(x)*-0.5)*-0.5641895835477563*x"
    src = {n: actsym.get(n).source() for n in ("elu", "exp2", "rational")}
    assert "torch.clamp(x, max=0)" in src["elu"] and "torch.clamp(x, min=0)" in src["exp2"]
    # the rational branch a*x/(a - x) has a parameter-dependent pole: keep where(mask, x, p)
    assert "torch.where(m1, x, -0.5)" in src["rational"] and "clamp" not in src["rational"]
    # the in-place elu forward needs no boolean mask at all (both branches vanish where unselected)
    body = src["elu"].split("def elu_value_nograd")[1].split("def elu_grad_x_nograd")[0]
    assert "torch.where" not in body and " > 0" not in body


@pytest.mark.parametrize("name", ["silu", "exp2", "rational", "prelu"])
def test_compile_backend_matches_eager(name, monkeypatch):
    """backend="compile" (here with aot_eager to keep the test fast) gives the eager results, per channel too."""
    torch._dynamo.reset()
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))
    act = actsym.get(name)
    mod = load_source(act.source(), f"actsym_test_compile_{name}")  # fresh _COMPILED cache
    cls = getattr(mod, act.class_name)
    eager, compiled = cls(num_parameters=3), cls(num_parameters=3, backend="compile")
    x = torch.randn(2, 3, 9) * 4
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ya, yb = eager(xa), compiled(xb)
    g = torch.randn_like(ya)
    ya.backward(g)
    yb.backward(g)
    torch.testing.assert_close(yb, ya, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(xb.grad, xa.grad, rtol=1e-6, atol=1e-6)
    for pa, pb in zip(eager.parameters(), compiled.parameters()):
        torch.testing.assert_close(pb.grad, pa.grad, rtol=1e-5, atol=1e-5)
    assert mod._COMPILED, "nothing was compiled"
    with pytest.raises(ValueError):
        cls(backend="triton")


def test_compile_backend_inductor_and_double_backward():
    """One real inductor compile (CPU): forward + backward match eager; double backward still works."""
    torch._dynamo.reset()
    act = actsym.get("silu")
    mod = load_source(act.source(), "actsym_test_inductor_silu")
    m = getattr(mod, act.class_name)(backend="compile")
    x = (torch.randn(64) * 4).requires_grad_(True)
    y = m(x)
    y.backward(torch.ones_like(y))
    xr = x.detach().clone().requires_grad_(True)
    torch.nn.functional.silu(xr).backward(torch.ones_like(y))
    torch.testing.assert_close(y, torch.nn.functional.silu(x.detach()), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(x.grad, xr.grad, rtol=1e-5, atol=1e-6)
    xd = torch.randn(6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(m, (xd,))
