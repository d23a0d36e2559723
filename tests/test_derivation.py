"""Derivation and generated-code safety: stable rewrites, safe Piecewise, limits, hazards, memory, checks."""

import pytest
import sympy as sp
import torch

import actsym
from actsym.derivation import DerivativeCheckFailed, verify_derivatives
from actsym.derive import _Timeout, time_budget
from actsym.functions import expm1, sigmoid, softplus
from actsym.parse import X, parse_expression
from actsym.rewrite import stabilize


def grads(act, x, *params, create_graph=False):
    x = x.clone().requires_grad_(True)
    y = act.functional(x, *params)
    (g,) = torch.autograd.grad(y.sum(), x, create_graph=create_graph)
    return y, g, x


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1/(1 + exp(-x))", sigmoid(X)),
        ("log(1 + exp(x))", softplus(X)),
        ("exp(x) - 1", expm1(X)),
        ("1 - exp(-x)", -expm1(-X)),
        ("log(sigmoid(x))", -softplus(-X)),
        ("exp(x)/(1 + exp(x))", sigmoid(X)),
    ],
)
def test_stable_rewrites(text, expected):
    assert stabilize(parse_expression(text)) == expected


def test_naive_swish_is_stable_in_float32():
    # SymPy's own derivative of x/(1+exp(-b x)) is inf/inf = nan at x = -100 in float32.
    act = actsym.define("naive_swish", "x/(1 + exp(-b*x))", {"b": 1.0})
    x = torch.tensor([-100.0, -1e4, 100.0, 1e4])
    y, g, _ = grads(act, x, torch.tensor(1.0))
    assert torch.isfinite(y).all() and torch.isfinite(g).all()
    torch.testing.assert_close(g, torch.tensor([0.0, 0.0, 1.0, 1.0]))


def test_piecewise_unselected_branch_cannot_poison_gradients():
    # exp(x)-1 overflows at x=1000 and log(1+x) is nan for x < -1: neither branch is selected there.
    act = actsym.define("pw", "Piecewise((log(1 + x), x >= 0), (exp(x) - 1, True))")
    x = torch.tensor([1000.0, -5.0, -1000.0, 0.0, 3.0], dtype=torch.float64)
    y, g, xr = grads(act, x, create_graph=True)
    assert torch.isfinite(y).all() and torch.isfinite(g).all()
    (gg,) = torch.autograd.grad(g.sum(), xr)  # double backward through the generated backward
    assert torch.isfinite(gg).all()
    torch.testing.assert_close(gg[1], torch.exp(torch.tensor(-5.0, dtype=torch.float64)))


def test_plain_torch_where_would_have_failed():
    """Control: the naive composite does produce NaN gradients on the same inputs (the trap is real)."""
    x = torch.tensor([1000.0, -5.0], dtype=torch.float64, requires_grad=True)
    y = torch.where(x >= 0, torch.log(1 + x), torch.exp(x) - 1)
    y.sum().backward()
    assert not torch.isfinite(x.grad).all()


@pytest.mark.parametrize(
    "text, f0, d1, d2",
    [("sin(x)/x", 1.0, 0.0, -1 / 3), ("(1 - cos(x))/x**2", 0.5, 0.0, -1 / 12), ("x/(exp(x) - 1)", 1.0, -0.5, 1 / 6)],
)
def test_removable_singularities_evaluate_to_limits(text, f0, d1, d2):
    act = actsym.define("lim", text)
    assert act.derivation.removable
    x = torch.tensor([0.0, 1e-9, -1e-9], dtype=torch.float64)
    y, g, xr = grads(act, x, create_graph=True)
    (gg,) = torch.autograd.grad(g.sum(), xr)
    torch.testing.assert_close(y, torch.full_like(y, f0), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(g, torch.full_like(g, d1), rtol=1e-7, atol=1e-8)
    torch.testing.assert_close(gg, torch.full_like(gg, d2), rtol=1e-6, atol=1e-7)
    far = torch.tensor([0.3, -2.0], dtype=torch.float64)
    ref = sp.lambdify(X, parse_expression(text))(far.numpy())
    torch.testing.assert_close(act.functional(far), torch.as_tensor(ref))


def test_hazards_rational_vs_exponential():
    (h,) = actsym.get("rational").hazards
    assert h["kind"] == "pole" and h["at"] == "x = a" and h["when"] == "a < 0" and h["safe"] == "a >= 0"
    assert actsym.get("exponential").hazards == []
    assert actsym.define("lg", "log(x - c)", {"c": 0.0}).hazards  # log domain depends on c
    (h,) = actsym.define("sq", "sqrt(x)").hazards
    assert h["kind"] == "sqrt-domain" and "-oo, 0" in h["at"]
    assert actsym.define("lp", "Piecewise((log(1 + x), x >= 0), (x, True))").hazards == []  # log only where x >= 0


def test_forward_saves_only_input_and_parameters():
    act = actsym.get("mish")
    x = torch.randn(1000, requires_grad=True)
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        act.module()(x)
    assert len(saved) == 1 and saved[0].data_ptr() == x.data_ptr()


def test_fixed_parameter_is_a_buffer():
    act = actsym.define("swishf", "x*sigmoid(beta*x)", {"beta": 1.5}, fixed=("beta",))
    m = act.module()
    assert list(m.parameters()) == [] and m.beta.item() == 1.5
    learn = actsym.get("swish").module(learnable=())
    assert list(learn.parameters()) == []


def test_second_derivative():
    assert sp.simplify(actsym.get("sin").derivative("x", 2) + sp.sin(X)) == 0
    d2 = actsym.get("rational").derivative("x", 2)
    a = sp.Symbol("a", real=True)
    assert sp.simplify(d2.subs(X, -1) - 2 * a**2 / (a + 1) ** 3) == 0


def test_wrong_derivative_is_caught():
    d = actsym.define("chk", "x*tanh(x)").derivation
    d.patched["x"] = d.patched["x"] + 1e-6 * X
    with pytest.raises(DerivativeCheckFailed):
        verify_derivatives(d)


def test_time_budget_interrupts():
    with pytest.raises(_Timeout):
        with time_budget(0.05):
            while True:
                pass


def test_user_defined_module_trains_its_parameter():
    act = actsym.define("tanhexp", "x*tanh(exp(b)*x)", {"b": 0.0})
    m = act.module(num_parameters=3)
    x = torch.randn(8, 3, 4)
    m(x).pow(2).sum().backward()
    assert m.b.grad.shape == (3,) and torch.isfinite(m.b.grad).all() and m.b.grad.abs().sum() > 0


@pytest.mark.parametrize("text", ["sin(x)/x", "(1 - cos(x))/x**2", "x**3*sigmoid(x)", "x/(exp(x) - 1)"])
def test_in_place_path_matches_differentiable_path(text):
    """Regression: x**3 in a Taylor patch used to be mutated in place before its last read."""
    from actsym.properties import run_suite

    report = run_suite(actsym.define("fp", text), only=["fast-path"])
    assert report.passed, report.format()


def test_a_reused_taylor_patch_belongs_to_its_branch():
    """tools/fuzz.py --seed 31: Min(c, 1.702 + len) splits f into two branches with a removable singularity at
    x = 1; only the first one's series was found, and its polynomial was handed to the other branch (f near
    1 was 10.20, exact 7.545). A patch is reused only where it equals the branch it replaces."""
    text = "(Min(tan(tanh(0.044715)), (1.702 + len)) - asinh((x - 1))/(x - 1)) + out*x + x*b3**2"
    act = actsym.define("patch_owner", text, params={"len": 1.0, "out": -0.5, "b3": 3.0}, verify=False)
    x = torch.tensor([0.999, 0.99999, 1.00001, 1.001], dtype=torch.float64)
    got = act.module().double()(x).detach()
    import mpmath

    c = mpmath.tan(mpmath.tanh(mpmath.mpf("0.044715")))
    for xv, g in zip(x.tolist(), got.tolist()):
        u = mpmath.mpf(xv) - 1
        exact = min(c, mpmath.mpf("2.702")) - mpmath.asinh(u) / u - 0.5 * xv + 9 * xv
        assert abs(g - float(exact)) <= 1e-9 * abs(float(exact)), (xv, g, float(exact))


def test_numeric_taylor_matches_the_symbolic_series_and_refuses_what_is_not_removable():
    import math

    from actsym.derive import numeric_taylor

    for text, r in [("sin(x)/x", 0), ("expm1(x - 1)/(x - 1)", 1), ("(1 - cos(x + 1/2))*sqrt(log(1 + exp(x)) + 1)"
                                                                   "/(x + 1/2)**2", sp.Rational(-1, 2))]:
        e = parse_expression(text)
        got = numeric_taylor(e, X, sp.sympify(r), 10)
        assert got is not None, text
        for t in (r - sp.Rational(1, 50), r + sp.Rational(1, 70)):  # 10 terms: truncation error < 1e-16 there
            a, b = float(got.subs(X, t).evalf(30)), float(e.subs(X, t).evalf(30))
            assert math.isclose(a, b, rel_tol=1e-15), (text, t, a, b)
    # a pole, a branch point, and a removable point with another pole inside the contour: no polynomial
    for text in ["1/x", "sqrt(x)/x**(1/4)", "sin(x)/x + 1/(x - 1/10)"]:
        assert numeric_taylor(parse_expression(text), X, sp.S.Zero, 10) is None, text
    # a parameter: the polynomial would freeze its value, so none
    assert numeric_taylor(sp.sin(sp.Symbol("a") * X) / X, X, sp.S.Zero, 10) is None


def test_a_singular_unit_is_patched_alone_and_a_patch_far_from_zero_does_not_cancel():
    import math

    import mpmath

    from actsym.derive import _patch_units, patch_removable

    # the whole value's series is not needed: the regular factor stays outside, the unit gets the patch
    g = sp.Function("g")(X)  # SymPy cannot expand an undefined function: only the unit can be patched
    e = g * sp.sin(X) / X
    patched, changed = _patch_units(e, X, sp.S.Zero, None)
    assert changed and patched.has(sp.Piecewise) and patched.has(g)
    assert abs(float(patched.subs(g, 1).subs(X, 0)) - 1) < 1e-25
    # expm1(x - 100)/(x - 100): the patch in Horner form in (x - 100); expanded into powers of x it
    # would lose ~6 bits at x = 100.01 to cancellation
    e = parse_expression("expm1(x - 100)/(x - 100)")
    patched, pts = patch_removable(e, X)
    assert pts == [100.0]
    f = sp.lambdify(X, patched, modules="math")
    for t in (100.01, 99.97, 100.0):
        exact = float(mpmath.expm1(mpmath.mpf(t) - 100) / (mpmath.mpf(t) - 100)) if t != 100 else 1.0
        assert math.isclose(f(t), exact, rel_tol=4e-16), (t, f(t), exact)


def test_quotient_series_keeps_parameters_symbolic():
    from actsym.derive import _quotient_series

    s = sp.Symbol("s", real=True)
    num = s * X * sp.exp(s * X) - expm1(s * X)
    got = _quotient_series([num], [X**-2], X, sp.S.Zero, 6)
    exact = sp.series(num / X**2, X, 0, 6).removeO()
    assert got is not None and sp.simplify(sp.expand(got - exact)) == 0
    # a numerator that does not vanish to the denominator's order: a pole, no polynomial
    assert _quotient_series([sp.sin(s * X)], [X**-2], X, sp.S.Zero, 6) is None
