"""Accuracy regimes and rewrites (issue 10): the reproducers of the issue, exact to a few ulps at their points,
through the generated module (forward and autograd backward), and the regime search's own parts."""

import math

import mpmath
import numpy as np
import pytest
import sympy as sp
import torch

import actsym
from actsym import regimes
from actsym.rewrite import stabilize


def _value(expr, params, wrt, x0, dtype):
    """f (wrt=None) or df/d(wrt) of the generated module at x0, by autograd."""
    act = actsym.define("rp", expr, params)
    x = torch.tensor([x0], dtype=dtype, requires_grad=True)
    ps = [torch.tensor(float(v), dtype=dtype, requires_grad=True) for v in params.values()]
    y = act.functional(x, *ps)
    if wrt is None:
        return y.item()
    target = x if wrt == "x" else ps[list(params).index(wrt)]
    (g,) = torch.autograd.grad(y.sum(), target)
    return g.item()


def _exact(expr, params, wrt, x0):
    with mpmath.workdps(60):
        xs = sp.Symbol("x", real=True)
        syms = {k: sp.Symbol(k, real=True) for k in params}
        e = sp.sympify(expr, locals={"x": xs, **syms})
        if wrt is not None:
            e = sp.diff(e, xs if wrt == "x" else syms[wrt])
        v = e.subs({xs: sp.Float(x0, 60), **{syms[k]: sp.Float(v, 60) for k, v in params.items()}}).evalf(60)
        return float(v)


def _ulps(got, exact, dtype):
    spacing = float(np.spacing(np.abs(np.array(exact, dtype=np.float32 if dtype == torch.float32 else np.float64))))
    return abs(got - exact) / spacing


REPRODUCERS = [
    # (expression, params, wrt, x, dtype): the points named in issue 10
    ("x*exp(x)/(exp(x) + 2)", {}, None, 1000.0, torch.float64),
    ("a*(1 - exp(-b*x))/(1 + exp(-b*x))", {"a": 1.0, "b": 1.0}, None, -1000.0, torch.float64),
    ("a*(1 - exp(-b*x))/(1 + exp(-b*x))", {"a": 1.0, "b": 1.0}, "x", -30.0, torch.float64),
    ("x*tanh(exp(x))", {}, "x", 90.0, torch.float32),
    ("x*tanh(exp(x))", {}, "x", 90.0, torch.float64),
    ("x/cosh(x)", {}, "x", 100.0, torch.float64),
    ("log(cosh(x) + x*cosh(x/2))", {}, None, 1000.0, torch.float64),
    ("log(cosh(x) + x*cosh(x/2))", {}, None, 1000.0, torch.float32),
    ("(x + sqrt(x**2 + b))/2", {"b": 1e-2}, None, -1e4, torch.float32),
    ("(x + sqrt(x**2 + b))/2", {"b": 1e-2}, None, -1e4, torch.float64),
    ("pi*sin(pi*(x - pi))/(pi*(x - pi))", {}, None, 3.14, torch.float64),
    ("pi*sin(pi*(x - pi))/(pi*(x - pi))", {}, None, 3.14, torch.float32),
    ("asinh(x)*sqrt(Abs(x))/12", {}, "x", -0.03, torch.float64),
    ("asinh(x)*sqrt(Abs(x))/12", {}, "x", -0.03, torch.float32),
    ("sqrt(2.5)**(x*x)", {}, "x", 5.0, torch.float64),
    ("sqrt(2.5)**(x*x)", {}, "x", 5.0, torch.float32),
    ("tanh(x)", {}, "x", 15.0, torch.float64),  # 1 - tanh**2 cancels (was 53 bits of error)
]

#: catalog shapes fixed by the stable rewrites, as relative errors: erfc(z) has condition number ~2z**2, so
#: the rounding of x/sqrt(2) alone costs ~z**2 ulps in the left tail (1 + erf(u) had no correct digit there)
CONDITIONED = [
    ("x*(1 + erf(x/sqrt(2)))/2", {}, None, -20.0, torch.float64, 1e-13),
    ("x*(1 + erf(x/sqrt(2)))/2", {}, "x", -9.0, torch.float64, 1e-13),
    ("x*(1 + erf(x/sqrt(2)))/2", {}, "x", -9.0, torch.float32, 1e-4),
]


@pytest.mark.parametrize("expr,params,wrt,x0,dtype,rel", CONDITIONED)
def test_left_tail_of_gelu_has_its_digits(expr, params, wrt, x0, dtype, rel):
    got = _value(expr, params, wrt, x0, dtype)
    exact = _exact(expr, params, wrt, x0)
    assert abs(got - exact) <= rel * abs(exact), (got, exact)


@pytest.mark.parametrize("expr,params,wrt,x0,dtype", REPRODUCERS)
def test_issue_reproducers_are_exact_to_a_few_ulps(expr, params, wrt, x0, dtype):
    x0 = float(torch.tensor(x0, dtype=dtype))  # the point the dtype can represent
    params = {k: float(torch.tensor(v, dtype=dtype)) for k, v in params.items()}
    got = _value(expr, params, wrt, x0, dtype)
    exact = _exact(expr, params, wrt, x0)
    assert math.isfinite(got), (got, exact)
    assert _ulps(got, exact, dtype) <= (4 if dtype == torch.float64 else 8), (got, exact)


def test_float32_overflowing_derivative_of_x_over_cosh_is_finite_and_right():
    # it was NaN (inf/inf); the exact -7.4e-42 is below float32's smallest normal number, where an underflow
    # to 0 is the float32 answer (ulps are not meaningful there); a normal exact value must be accurate
    tiny = float(np.finfo(np.float32).tiny)
    for x0 in (100.0, 80.0, 50.0):
        got = _value("x/cosh(x)", {}, "x", x0, torch.float32)
        exact = _exact("x/cosh(x)", {}, "x", x0)
        assert math.isfinite(got)
        if abs(exact) >= tiny:
            assert _ulps(got, exact, torch.float32) <= 8, (x0, got, exact)
        else:
            assert abs(got) < tiny


def test_stable_rewrites():
    x, u = sp.symbols("x u", real=True)
    from actsym.functions import ndtr, sigmoid

    assert stabilize(1 - sp.tanh(u) ** 2) == 4 * sigmoid(2 * u) * sigmoid(-2 * u)
    assert stabilize(1 + sp.erf(u)) == 2 * ndtr(sp.sqrt(2) * u)
    assert stabilize(1 - sp.erf(u)) == 2 * ndtr(-sp.sqrt(2) * u)
    assert stabilize(sp.cosh(u) - 1) == 2 * sp.sinh(u / 2) ** 2
    assert stabilize(x * sp.sinh(x) / sp.cosh(x) ** 2) == x * sp.tanh(x) / sp.cosh(x)


def test_accurate_functions_are_left_alone_and_quickly():
    x, a = sp.symbols("x a", real=True)
    from actsym.functions import sigmoid

    for e in (x * sigmoid(x), sp.sin(x) + a * x, x**2 / 2):
        assert regimes.improve(e, x, [a], [1.0]) == e


def test_regimes_split_where_each_form_is_right():
    x = sp.Symbol("x", real=True)
    e = sp.log(sp.exp(2 * x) + sp.exp(-x))  # overflows at x -> +oo and at x -> -oo: one form per side
    new = regimes.improve(e, x, [], [])
    assert isinstance(new, sp.Piecewise) and len(new.args) == 2
    for x0 in (-800.0, -3.0, -0.3, 0.7, 4.0, 800.0):  # each regime is an identity of e, and finite
        got = float(regimes.evaluate(new, {x: np.array([x0])}, np.float64)[0])
        exact = float(sp.log(sp.exp(2 * sp.Float(x0, 50)) + sp.exp(-sp.Float(x0, 50))))
        assert abs(got - exact) <= 1e-14 * abs(exact)


def test_simplification_is_kept_only_where_it_loses_no_accuracy():
    # SymPy simplifies d/dx sqrt(5/2)**(x**2) into log((5/2)**(10**(x**2/2)*x/2**(x**2))): inf at x = 5
    act = actsym.define("rp", "sqrt(2.5)**(x*x)", {})
    assert not any(lg.has(act.spec.x) for lg in act.derivation.patched["x"].atoms(sp.log))


def test_short_boundaries():
    for lo, hi in ((0.0, 0.001), (-0.001, 0.0), (13.2, 37.9), (0.0, 2.0**-149), (-1e300, -1e299)):
        t = regimes._short_between(lo, hi)
        assert lo < t <= hi and len(f"{t:.1e}".split("e")[0].rstrip("0").rstrip(".")) <= 3  # one or two digits
        if abs(t) < 3e38:  # the generated float32 code sees the same split
            assert lo < float(np.float32(t)) <= hi


def test_taylor_patch_is_in_powers_of_the_distance_to_the_point():
    act = actsym.define("rp", "pi*sin(pi*(x - pi))/(pi*(x - pi))", {})
    taylor = act.derivation.patched["f"].args[0].expr
    assert (sp.Symbol("x", real=True) - sp.pi) in taylor.atoms(sp.Add) or taylor.has(sp.Symbol("x", real=True) - sp.pi)


def test_patch_radius_shrinks_for_fast_varying_parameters():
    # asinh(3x)/(3x): ten terms at |x| < 1/20 leave 1e-8; the radius shrinks so that they leave < 2**-56
    got = _value("log(Abs(asinh((b2*x))/(b2*x)) + 0.1) + b1*x", {"b1": 1.5, "b2": 3.0}, None, 0.04686904192,
                 torch.float64)
    exact = _exact("log(Abs(asinh((b2*x))/(b2*x)) + 0.1) + b1*x", {"b1": 1.5, "b2": 3.0}, None, 0.04686904192)
    assert _ulps(got, exact, torch.float64) <= 8


def test_removable_singularity_in_a_parameter_takes_its_limit():
    # (exp(a*x) - 1)/a + a at a = 0 was NaN for every x; its continuous extension is x (d/da: x**2/2 + 1)
    act = actsym.define("rp", "(exp(a*x) - 1)/a + a", {"a": 0.0})
    assert act.derivation.param_removable["f"] == ["a = 0"]
    x = torch.tensor([2.0, -1.0, 30.0, 1e-3], dtype=torch.float64, requires_grad=True)
    a = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    y = act.functional(x, a)
    gx, ga = torch.autograd.grad(y.sum(), [x, a], create_graph=True)
    assert torch.equal(y.detach(), x.detach())
    assert torch.equal(gx.detach(), torch.ones(4, dtype=torch.float64))
    assert ga.item() == pytest.approx(float((x.detach() ** 2 / 2 + 1).sum()), rel=1e-15)
    (gxa,) = torch.autograd.grad(gx.sum(), a)  # d2f/dxda = x at a = 0: no NaN through the masked branch
    assert gxa.item() == pytest.approx(float(x.detach().sum()), rel=1e-15)
    # away from 0 the ordinary formula, in both dtypes
    for dtype in (torch.float32, torch.float64):
        got = act.functional(torch.tensor([2.0], dtype=dtype), torch.tensor(0.5, dtype=dtype)).item()
        assert got == pytest.approx(math.expm1(1.0) / 0.5 + 0.5, rel=1e-6)


@pytest.mark.parametrize("a", [1.0, 1.5])
def test_power_of_abs_x_has_finite_derivatives_for_negative_x(a):
    # d/dx 1/(1 + |x|**a) was generated through Abs(x**(a - 2)): NaN for x < 0 (a = 1.5) and NaN in double
    # backward (its d/da has log(x)) even for a = 1
    act = actsym.define("rp", "1/(1 + Abs(x)**a)", {"a": a})
    x = torch.tensor([0.7, -0.3, 1.5, -2.0, -40.0], dtype=torch.float64, requires_grad=True)
    p = torch.tensor(a, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, p: act.functional(x, p), (x, p))
    assert torch.autograd.gradgradcheck(lambda x, p: act.functional(x, p), (x, p))
    for x0 in (-0.3, -2.0, -40.0):
        for dtype in (torch.float32, torch.float64):
            got = _value("1/(1 + Abs(x)**a)", {"a": a}, "x", x0, dtype)
            assert _ulps(got, _exact("1/(1 + Abs(x)**a)", {"a": a}, "x", x0), dtype) <= 8


def test_masked_branch_fill_keeps_double_backward_finite():
    # the unselected points of |x|**d*sign(x)/d were filled with 0, where d/dd |0|**d = 0*log(0) = NaN
    act = actsym.define("rp", "Piecewise((x, x > 0), (Abs(x)**d*sign(x)/d, True))", {"d": 0.5})
    x = torch.tensor([0.7, -0.3, 1.5, -2.0], dtype=torch.float64, requires_grad=True)
    d = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda x, d: act.functional(x, d), (x, d))


#: overflow classes found by the accuracy table in the literature corpus (isru/isrlu d/dalpha, eis1 f, srs
#: d/dalpha): inf/inf or inf*0 where the exact value is finite; (expression, params, wrt, x, dtype, bits):
#: finite, and within ``bits`` bits of error (a log-space form at |x| = 1e159 has log|x| ~ 368 times the
#: rounding of its exponent: up to ~9 bits, which is the honest price of a finite answer there)
OVERFLOWS = [
    ("x/sqrt(alpha*x**2 + 1)", {"alpha": 1.0}, "alpha", -2.2147e153, torch.float64, 3),
    ("x/sqrt(alpha*x**2 + 1)", {"alpha": 1.0}, "alpha", -3.61125e37, torch.float32, 3),
    ("x*log(1 + exp(x))/(x + 29*exp(-x)/25)", {}, None, 5.73672e159, torch.float64, 10),
    ("x*log(1 + exp(x))/(x + 29*exp(-x)/25)", {}, None, 1.24981e20, torch.float32, 7),
    ("x*log(1 + exp(x))/(x + 29*exp(-x)/25)", {}, None, -3.61125e37, torch.float32, 0),
    ("x/(exp(-x/beta) + x/alpha)", {"alpha": 2.0, "beta": 3.0}, "alpha", -2.55602e300, torch.float64, 0),
    ("x/(exp(-x/beta) + x/alpha)", {"alpha": 2.0, "beta": 3.0}, "alpha", -3.61125e37, torch.float32, 0),
    ("exp(-x**2/(2*sigma**2))**b", {"sigma": 1.0, "b": 2.0}, "sigma", -3.61125e37, torch.float32, 0),
    ("exp(-s0**2*x**2)*cos(omega0*x)", {"omega0": 20.0, "s0": 10.0}, None, -3.61125e37, torch.float32, 0),
    ("exp(-s0**2*x**2)*cos(omega0*x)", {"omega0": 20.0, "s0": 10.0}, "x", 3.3434e37, torch.float32, 0),
]


@pytest.mark.parametrize("expr,params,wrt,x0,dtype,bits", OVERFLOWS)
def test_overflow_classes_are_finite_and_accurate(expr, params, wrt, x0, dtype, bits):
    x0 = float(torch.tensor(x0, dtype=dtype))
    got = _value(expr, params, wrt, x0, dtype)
    exact = _exact(expr, params, wrt, x0)
    assert math.isfinite(got), (got, exact)
    if exact == 0 or abs(exact) < float(torch.finfo(dtype).tiny):
        assert abs(got) < float(torch.finfo(dtype).tiny), (got, exact)
    else:
        assert _ulps(got, exact, dtype) <= 2.0**bits, (got, exact)


def test_scaled_roots_merge_the_powers_of_x():
    x, a = sp.symbols("x a", real=True)
    (c,) = regimes.scaled_roots(-x**3 / (2 * (a * x**2 + 1) ** sp.Rational(3, 2)), x, {a: 1.0})
    assert not c.has(x**3) and c.has(sp.sign(x)) and not c.has(sp.Abs(x))
    v = float(regimes.evaluate(c, {x: np.array([-1e300]), a: np.array([1.0])}, np.float64)[0])
    assert v == 0.5


def test_boundaries_stay_inside_float32_where_a_sample_is():
    # a switch between a float32 sample and one beyond float32's range is written at a float32 number
    t = regimes._boundary(lambda c, p, e: np.array([0.0 if c == "a" else 1.0]), lambda v: 0.0, "a", "b",
                          3e38, 1e45)
    assert abs(float(np.float32(t))) < math.inf and 3e38 < t


def test_a_limit_at_infinity_is_used_only_in_the_far_tail():
    # the tail regime (the limit 0) of exp(-s0**2*x**2)*cos(omega0*x) was chosen at s0 = 10; with s0 trained
    # down to 0.1 the function at moderate x is far from its limit, and the module must still be right there
    act = actsym.define("rp", "exp(-s0**2*x**2)*cos(omega0*x)", {"omega0": 20.0, "s0": 10.0})
    f = act.derivation.patched["f"]
    assert isinstance(f, sp.Piecewise) and any(not v.has(act.spec.x) for v, _ in f.args)  # it has a tail regime
    for x0 in (3.0, 50.0, 1e4):
        x = torch.tensor([x0], dtype=torch.float64)
        got = act.functional(x, 20.0, 0.1).item()
        exact = float(mpmath.exp(-mpmath.mpf("0.01") * x0**2) * mpmath.cos(20 * mpmath.mpf(x0)))
        assert abs(got - exact) <= 1e-12 * max(abs(exact), 1e-300), (x0, got, exact)
