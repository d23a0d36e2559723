"""actsym.verify: the oracle and the self-check must pass right code and catch wrong code on every path."""

from __future__ import annotations

import time

import pytest
import torch

import actsym
from actsym import cli, verify
from actsym.activation import load_source
from actsym.parse import ExpressionError


def fresh(expr, params=None, name="t"):
    act = actsym.define(name, expr, params or {}, verify=False)
    return act, load_source(act.source(), f"test_verify_{name}")


def test_verification_failed_is_an_expression_error():
    assert issubclass(verify.VerificationFailed, ExpressionError)


@pytest.mark.parametrize("name", ["relu", "prelu", "exp2", "mish", "rational", "abs"])
def test_catalog_passes(name):
    act = actsym.get(name)
    verify.self_check(act.spec, act.code)


def test_oracle_points_include_branch_points_and_neighbours():
    act, _ = fresh("Piecewise((x, x > a), (x**2, x >= -2), (-1, True))", {"a": 0.3})
    for dtype in verify.DTYPES:
        xs = set(verify.oracle(act.spec).case(dtype).xs.tolist())
        a = float(torch.tensor(0.3, dtype=dtype))
        assert a in xs and -2.0 in xs
        nxt = torch.nextafter(torch.tensor(-2.0, dtype=dtype), torch.tensor(0.0, dtype=dtype)).item()
        assert nxt in xs


def test_oracle_uses_plain_derivatives_at_kinks():
    """At x = 0 of relu both one-sided derivatives are accepted; away from it only the exact one."""
    act, _ = fresh("relu(x)")
    case = verify.oracle(act.spec).case(torch.float64)
    i0 = list(case.xs).index(0.0)
    accepted = {float(case.exact["x"][i0])} | {float(a[i0]) for a in case.alts["x"]}
    assert {0.0, 1.0} <= accepted
    i1 = list(case.xs).index(1e-6)
    assert all(not (a[i1] == a[i1]) for a in case.alts["x"])  # nan: no alternative at 1e-6


def _patch(monkeypatch, mod, fname, wrap):
    orig = getattr(mod, fname)
    monkeypatch.setitem(mod.__dict__, fname, wrap(orig))


MUTATIONS = [
    # (expression, params, function to patch, wrapper, path named in the message)
    ("relu(x) + b1*sin(b2*x)", {"b1": 1.0, "b2": 2.0}, "t_value_nograd",
     lambda f: lambda x, *p: f(x, *p) * (1 + 1e-7), "T forward"),  # Function.forward runs the in-place code
    ("relu(x) + b1*sin(b2*x)", {"b1": 1.0, "b2": 2.0}, "t_grad_all_nograd",
     lambda f: lambda g, x, *p: (f(g, x, *p)[0], f(g, x, *p)[1], torch.zeros_like(x)), "df/db2"),
    ("Piecewise((x, x > 0), (x**2, x >= -2), (-1, True))", {}, "t_value",
     lambda f: lambda x: torch.where(x == -2, torch.full_like(x, 3.0), f(x)), "x=-2"),
    ("sin(x)/x", {}, "t_value_nograd", lambda f: lambda x: torch.where(x == 0, torch.nan, f(x)), "x=0"),
    ("x*sigmoid(x)", {}, "t_grad_x", lambda f: lambda g, x: f(g, x).float().double() if x.dtype == torch.float64
     else f(g, x), "float64"),
    ("x*sigmoid(x)", {}, "t_grad_x_nograd", lambda f: lambda g, x: f(torch.ones_like(g), x), "grad_x_nograd"),
    ("Piecewise((a*x, x >= 0), (a*expm1(x), True))", {"a": 1.5}, "t_grad_all",
     lambda f: lambda g, x, a: (f(g, x, a)[0], f(g, x, a)[1] * 2), "df/da"),
]


@pytest.mark.parametrize("expr,params,fname,wrap,where", MUTATIONS)
def test_wrong_code_is_caught(monkeypatch, expr, params, fname, wrap, where):
    act, mod = fresh(expr, params)
    verify.self_check(act.spec, mod)  # the real code passes
    _patch(monkeypatch, mod, fname, wrap)
    with pytest.raises(verify.VerificationFailed, match="self-check failed") as info:
        verify.self_check(act.spec, mod)
    msg = str(info.value)
    assert "\n" not in msg and where in msg, msg


@pytest.mark.parametrize("method", ["check_backward_per_channel", "check_backward_per_layer"])
def test_double_backward_path_is_checked(monkeypatch, method):
    """Backward with create_graph=True runs the out-of-place kernel: a wrong one is caught on that path."""
    act, mod = fresh("Piecewise((a*x, x >= 0), (a*expm1(x), True))", {"a": 1.5})
    _patch(monkeypatch, mod, "t_grad_all", lambda f: lambda g, x, a: (f(g, x, a)[0], f(g, x, a)[1] * 2))
    case = verify.oracle(act.spec).case(torch.float32)
    with pytest.raises(verify.VerificationFailed, match=r"create_graph=True.*df/da"):
        getattr(verify._Checker(act.spec, mod, case), method)()


def test_crash_is_a_verification_failure(monkeypatch):
    act, mod = fresh("out*tanh(k*x) + c*x", {"out": 1.0, "k": 1.0, "c": 1.0})

    def boom(*args):
        raise RuntimeError("output with shape [] doesn't match the broadcast shape\nsecond line")

    monkeypatch.setitem(mod.__dict__, "t_grad_all_nograd", boom)
    with pytest.raises(verify.VerificationFailed, match="raised RuntimeError: output with shape") as info:
        verify.self_check(act.spec, mod)
    assert "second line" not in str(info.value)


def test_rounding_is_not_flagged():
    """Ill-conditioned but correct expressions pass in float32 (tolerance follows the error bound)."""
    for expr in ["sinh(x) - x", "sin(100*x)", "exp(3*x)*cos(7*x) - x**3", "log(cosh(x))"]:
        act = actsym.define("t", expr, verify=False)
        verify.self_check(act.spec, act.code)


def test_self_check_is_fast():
    act = actsym.define("t", "Piecewise((a*x*sigmoid(b*x), x >= c), (a*c*sigmoid(b*c) + (x - c), True))",
                        {"a": 1.2, "b": 1.5, "c": -0.5}, verify=False)
    code = act.code
    start = time.perf_counter()
    verify.self_check(act.spec, code)
    assert time.perf_counter() - start < 3.0  # ~0.2 s here; generous for a loaded CI machine


def _wrong_source(monkeypatch):
    """Make the renderer hand out wrong code (sin printed as cos), as a broken generator would."""
    from actsym.activation import Activation

    orig = Activation.source
    monkeypatch.setattr(Activation, "source", lambda self: orig(self).replace("torch.sin(", "torch.cos("))


def test_define_refuses_wrong_code(monkeypatch):
    _wrong_source(monkeypatch)
    act = actsym.define("t", "x + sin(x)")
    with pytest.raises(verify.VerificationFailed):
        act.module(backend="eager")
    actsym.define("t", "x + sin(x)", verify=False).module(backend="eager")  # opted out: handed out


def test_codegen_refuses_wrong_code_and_writes_nothing(monkeypatch, tmp_path, capsys):
    _wrong_source(monkeypatch)
    out = tmp_path / "out"
    rc = cli.main(["codegen", "x + sin(x)", "--name", "wrong", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("actsym: error: self-check failed") and err.count("\n") == 1, err
    assert not out.exists()
    assert cli.main(["codegen", "x + sin(x)", "--name", "wrong", "--out", str(out), "--no-verify"]) == 0
    assert (out / "wrong.py").exists()
