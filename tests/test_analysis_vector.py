"""Vector activations y = g(x)/Σg: derived VJP/JVP, double backward, normalization, stability."""

import copy

import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from actsym.analysis.vector import (
    VectorActivation,
    channel_factory,
    derive_vector,
    is_vector_spec,
    softmax_activation,
    vector_activation,
)

G_EXPRS = ["exp(x)", "x**2 + 1", "softplus(x)", "exp(-2*x)"]
finite = st.floats(-30, 30, allow_nan=False, width=64)


@pytest.mark.parametrize("g", G_EXPRS)
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_gradcheck_and_gradgradcheck_float64(g, dim):
    act = VectorActivation(g, dim=dim)
    x = torch.randn(3, 4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)
    assert torch.autograd.gradcheck(act, (x,))
    assert torch.autograd.gradgradcheck(act, (x,))


def test_forward_mode_jvp_matches_jacobian():
    act = VectorActivation("softplus(x)")
    x = torch.randn(2, 5, dtype=torch.float64)
    u = torch.randn_like(x)
    _, jv = torch.func.jvp(act, (x,), (u,))
    jac = torch.autograd.functional.jacobian(act, x)
    assert torch.allclose(jv, torch.einsum("abcd,cd->ab", jac, u))


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.lists(finite, min_size=1, max_size=8), st.sampled_from(G_EXPRS))
def test_sums_to_one_for_positive_g(values, g):
    y = VectorActivation(g)(torch.tensor(values, dtype=torch.float64))
    assert torch.all(y >= 0)
    assert abs(y.sum().item() - 1) < 1e-12


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.lists(st.floats(-1e4, 1e4, allow_nan=False, width=32), min_size=1, max_size=8))
def test_softmax_matches_torch_and_is_stable(values):
    act = softmax_activation()
    for dtype in (torch.float32, torch.float64):
        x = torch.tensor(values, dtype=dtype, requires_grad=True)
        y = act(x)
        assert torch.isfinite(y).all() and torch.allclose(y, torch.softmax(x, -1), atol=1e-6)
        (g,) = torch.autograd.grad((y * torch.arange(len(values), dtype=dtype)).sum(), x)
        assert torch.isfinite(g).all()


def test_large_inputs():
    x = torch.tensor([[1e4, -1e4, 0.0, 1e4 - 1.0]], requires_grad=True)
    y = softmax_activation()(x)
    assert torch.allclose(y, torch.softmax(x, -1))
    y[0, 0].backward()
    assert torch.isfinite(x.grad).all()


def test_half_precision_computed_in_float32():
    x = torch.randn(4, 6).half()
    y = softmax_activation()(x)
    assert y.dtype == torch.float16 and torch.allclose(y.float(), torch.softmax(x.float(), -1), atol=1e-3)


def test_derivation_is_symbolic_and_general():
    d = softmax_activation().derivation
    assert d.log_rate == 1 and "r_i = y_i" in d.describe()
    d2 = VectorActivation("x**2 + 1").derivation
    assert d2.log_rate is None and sp.simplify(d2.dg - 2 * sp.Symbol("x", real=True)) == 0
    assert any("arbitrary g" in c for c in d2.checks)


def test_derive_vector_rejects_a_wrong_derivative(monkeypatch):
    import actsym

    act = actsym.define("vec_wrong", "exp(x)")
    monkeypatch.setattr(type(act), "derivative", lambda self, wrt="x", order=1: 2 * sp.exp(self.spec.x))
    with pytest.raises(AssertionError, match="Jacobian check failed"):
        derive_vector(act)


def test_module_interface_copy_and_training_step():
    act = vector_activation("softmax", dim=1)
    assert is_vector_spec("softmax") and is_vector_spec("normalized:x**2") and not is_vector_spec("relu")
    clone = copy.deepcopy(act)
    net = torch.nn.Sequential(torch.nn.Linear(2, 3), clone, torch.nn.Linear(3, 1))
    x = torch.randn(16, 2)
    loss = net(x).pow(2).mean()
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())
    assert act.state_dict() == {} and "softmax" in repr(act)
    with pytest.raises(KeyError):
        vector_activation("nope")
    conv_act = channel_factory("softmax")(64)
    feat = torch.randn(2, 64, 5, 5)
    assert torch.allclose(conv_act(feat), torch.softmax(feat, 1))
