"""Native twins (actsym.codegen.native): PyTorch's fused kernels are used on the in-place path only where
they were measured to be the user's function, to within the tolerance, at every sampled point."""

from __future__ import annotations

import pytest
import torch

import actsym
from actsym.branch_points import branch_points
from actsym.codegen import native


def _find(expr, twins=native.TWINS, **kw):
    a = actsym.define("t", expr, **kw)
    d = a.derivation
    saved = native.TWINS
    native.TWINS = twins
    try:
        return native.find(a.spec, d.x, d.patched["x"], branch_points(d.f, d.x, a.spec.expr))
    finally:
        native.TWINS = saved


@pytest.mark.parametrize(("expr", "twin"), [
    ("x/(1 + exp(-x))", "silu"),  # written another way than x*sigmoid(x)
    ("Max(x, 0)", "relu"),
    ("log(1 + exp(x))", "softplus"),
    ("Min(Max(x, -1), 1)", "hardtanh"),
])
def test_a_twin_is_found_however_f_is_written(expr, twin):
    m = _find(expr)
    assert m is not None and m.twin.name == twin and "float32" in m.value_dtypes


def test_kink_convention_decides_the_backward():
    # relu with df/dx(0) = 1 is not threshold_backward (0 at x = 0): the value twin only
    m = _find("Piecewise((x, x >= 0), (0, True))")
    assert m.twin.name == "relu" and m.value_dtypes and not m.grad_dtypes
    assert _find("Piecewise((x, x > 0), (0, True))").grad_dtypes == ("float32", "float64")


def test_an_inaccurate_kernel_is_rejected():
    # a kernel that is right at ordinary inputs but flushes the left tail to 0 (as 1 + erf(x) does) is no twin
    bad = native.Twin("silu_bad", "torch.where({x} < -30, {x} * 0, torch.nn.functional.silu({x}))",
                      "torch.ops.aten.silu_backward({g}, {x})")
    m = _find("x*sigmoid(x)", twins=(bad,))
    assert m is not None and m.value_dtypes == () and "float32" in m.grad_dtypes


def test_no_twin_for_other_functions_or_parameters():
    assert _find("x*sigmoid(2*x)") is None
    assert _find("x*sigmoid(b*x)", params={"b": 1.0}) is None
    assert _find("Piecewise((x, x > 1e-3), (0, True))") is None  # relu but for the branch point


@pytest.mark.parametrize("name", ["silu", "relu", "mish", "softplus"])
def test_catalog_inplace_path_runs_the_native_kernel_and_agrees(name):
    mod = actsym.get(name).module()
    x = torch.linspace(-12, 12, 2001, dtype=torch.float32, requires_grad=True)
    y = mod(x)
    (gx,) = torch.autograd.grad(y.sum(), x)
    ref = {"silu": torch.nn.functional.silu, "relu": torch.relu, "mish": torch.nn.functional.mish,
           "softplus": lambda t: torch.nn.functional.softplus(t, 1.0, 40.0)}[name]
    xr = x.detach().clone().requires_grad_(True)
    yr = ref(xr)
    (gr,) = torch.autograd.grad(yr.sum(), xr)
    assert torch.equal(y.detach(), yr.detach()) and torch.equal(gx, gr)
    # double backward still goes through the symbolic derivative and matches autograd of the native op
    y2 = mod(xr)
    (g1,) = torch.autograd.grad(y2.sum(), xr, create_graph=True)
    yr2 = ref(xr)
    (g1r,) = torch.autograd.grad(yr2.sum(), xr, create_graph=True)

    def second(g):  # relu's df/dx is piecewise constant: no graph, d2f = 0
        return torch.autograd.grad(g.sum(), xr)[0] if g.requires_grad else torch.zeros_like(xr)

    torch.testing.assert_close(second(g1), second(g1r), rtol=1e-4, atol=1e-5)
