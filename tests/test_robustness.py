"""Hostile and unusual expressions: codegen/define/show end in code or a one-line refusal, within the budget.

Reproducers of issue 9 (bug classes M, R1, K's symbolic part) go through the real CLI (``actsym.cli.main``)
and through ``actsym.define(...).derivation``; the budget mechanism is tested on C-level work that SIGALRM
cannot interrupt.
"""

import math
import time

import pytest
import sympy as sp

import actsym
from actsym import budget
from actsym.budget import BudgetExceeded, StageFailed, run_budgeted, stage
from actsym.cli import main
from actsym.derivation import DerivativeCheckFailed, check_points, derive
from actsym.derive import _Timeout, effective_regions, time_budget
from actsym.parse import ExpressionError, X, parse_expression

# (expression, params): valid expressions that used to end in a traceback or a refusal of the check.
ACCEPTED = [
    ("Heaviside(x)", {}),  # DerivativeCheckFailed sampled the one-point branch {x = 0}
    ("x + exp(800)", {}),  # 30 digits cannot see x next to exp(800): the check's precision follows |f|
    ("Min(x, a/x)", {"a": 1.0}),  # hazard search compared with zoo at the pole: TypeError
    ("tanh(log(log(x)))", {}),  # PoleError from a limit at x = 1
    ("exp(exp(exp(exp(exp(x)))))", {}),  # OverflowError in the mpmath check
    ("Piecewise((2*x, x >= 0), (x, True)) + Piecewise((x, x > 0), (3*x, True))", {}),  # R1
    ("Piecewise((sqrt(x - b), x > b), (0, True))", {"b": 0.5}),  # parameter-dependent condition
]


# The symbolic stages are under test here; the self-check of the generated code (actsym.verify, run by
# codegen and show unless --no-verify) has its own tests.
def _codegen(tmp_path, text, params):
    args = ["codegen", text, "--name", "probe", "--out", str(tmp_path / "gen"), "--no-verify"]
    for k, v in params.items():
        args += ["--param", f"{k}={v}"]
    return main(args)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("actsym: error: "), err
    return lines[0]


def test_undefined_branch_is_refused_before_derivation(tmp_path, capsys):
    # Heaviside(x) is 0 for x < 0: x/Heaviside(x) divides by zero on that whole branch
    assert _codegen(tmp_path, "x/Heaviside(x)", {}) == 2
    assert "undefined where x < 0" in _one_line_error(capsys)


def test_unevaluated_derivative_of_a_step_function_is_zero():
    # SymPy cannot prove x**(1/3) real, so d sign(x**(1/3))/dx stays an unevaluated Derivative
    d = actsym.define("st", "sign(Min(x, E)**(1/3))").derivation
    assert d.grads["x"] == 0 and not d.grads["x"].has(sp.Derivative)


@pytest.mark.parametrize("text, params", ACCEPTED, ids=[t for t, _ in ACCEPTED])
def test_reproducers_generate_code(tmp_path, capsys, text, params):
    assert _codegen(tmp_path, text, params) == 0, capsys.readouterr().err
    assert (tmp_path / "gen" / "probe.py").exists()


@pytest.mark.parametrize("text, params", ACCEPTED, ids=[t for t, _ in ACCEPTED])
def test_reproducers_derive(text, params):
    d = actsym.define("probe", text, params).derivation
    assert set(d.grads) == {"x", *params}
    assert d.checks and all("disagrees" not in c for c in d.checks)


@pytest.mark.parametrize("text", ["True*x", "(x > 0)*x", "x + (x > 1)", "exp(x >= 0)", "-(x < 0)", "x & (x > 0)"])
def test_booleans_in_arithmetic_are_refused_at_parse_time(tmp_path, capsys, text):
    assert _codegen(tmp_path, text, {}) == 2
    assert "condition" in _one_line_error(capsys)
    with pytest.raises(ExpressionError, match="condition"):
        parse_expression(text)
    assert not (tmp_path / "gen").exists()


def test_conditions_still_parse():
    e = parse_expression("Piecewise((x, (x > 0) & ~(x > 3) | (x < -5)), (0, True))")
    assert isinstance(e, sp.Piecewise)
    with pytest.raises(ExpressionError, match="used as a condition"):
        parse_expression("Piecewise((x, x + 1), (0, True))")


@pytest.mark.parametrize("text", ["softplus(x)**2", "x**(-64)", "sigmoid(x)**3*expm1(x)**2/log1p(x**2)"])
def test_show_prints_without_traceback(capsys, text):
    rc = main(["show", text])
    captured = capsys.readouterr()
    assert "LaTeX" in captured.out and "verified    : d/dx" in captured.out  # the symbolic report, in full
    assert "Traceback" not in captured.err
    if rc != 0:  # the signal lines build the module: only the self-check (actsym.verify) may refuse it
        assert rc == 2 and captured.err.startswith("actsym: error: self-check failed") and captured.err.count("\n") == 1


def test_latex_of_powers_of_stable_functions():
    assert sp.latex(parse_expression("softplus(x)**2")) == r"\left(\operatorname{softplus}\left(x\right)\right)^{2}"
    assert sp.latex(parse_expression("expm1(x)**3")) == r"\left(e^{x} - 1\right)^{3}"


# ------------------------------------------------------------------------------------------------------
# the derivative check
# ------------------------------------------------------------------------------------------------------


def test_derivative_check_failure_is_a_refusal_not_an_assertion():
    assert issubclass(DerivativeCheckFailed, ExpressionError)
    assert not issubclass(DerivativeCheckFailed, AssertionError)


def test_check_points_skip_one_point_regions():
    d = actsym.define("r1", ACCEPTED[5][0]).derivation
    regions = effective_regions([c for _, c in d.f.args], X)
    assert sp.FiniteSet(0) in regions  # the merge really creates a one-point branch ...
    pts = check_points(d, [])
    assert pts and 0.0 not in pts  # ... and it is never sampled
    assert any(p > 0 for p in pts) and any(p < 0 for p in pts)


def test_check_points_resolve_parameter_conditions_at_the_parameter_values():
    d = actsym.define("sq", "Piecewise((sqrt(x - b), x > b), (0, True))", {"b": 0.5}).derivation
    for b in (0.5, 2.0):
        pts = check_points(d, [b])
        assert any(p > b for p in pts) and any(p < b for p in pts)
        assert all(abs(p - b) > 0.01 for p in pts)


def test_wrong_derivative_still_caught_where_f_is_huge():
    d = actsym.define("big", "x + exp(800)").derivation
    d.patched["x"] = sp.Float(1.000001)
    from actsym.derivation import verify_derivatives

    with pytest.raises(DerivativeCheckFailed):
        verify_derivatives(d)


# ------------------------------------------------------------------------------------------------------
# the budget
# ------------------------------------------------------------------------------------------------------


def _big_power(n):
    with stage("derivation of df/db"):
        return 3 ** (n * 10**9)  # one C-level multiplication loop: SIGALRM cannot interrupt it


def test_worker_budget_interrupts_c_level_work_and_names_the_stage():
    start = time.monotonic()
    with pytest.raises(BudgetExceeded, match=r"^derivation of df/db ran out of its 30 s budget"):
        run_budgeted(_big_power, 1, stage_name="derivation", seconds=0.5, total=30)
    assert time.monotonic() - start < 5


def _raise_zero_division():
    with stage("hazard search"):
        return 1 / 0


def test_unexpected_exception_in_worker_is_one_line_with_its_type():
    with pytest.raises(StageFailed, match=r"^hazard search failed: ZeroDivisionError: division by zero"):
        run_budgeted(_raise_zero_division, stage_name="derivation", seconds=10)


def _refuse():
    raise ExpressionError("a refusal from inside")


def test_expression_errors_come_back_as_they_are():
    with pytest.raises(ExpressionError, match="^a refusal from inside$"):
        run_budgeted(_refuse, stage_name="derivation", seconds=10)


def test_results_pickle_back_from_the_worker():
    spec = actsym.get("mish").spec  # softplus/tanh: custom SymPy functions cross the process boundary
    d, spent = run_budgeted(derive, spec, stage_name="derivation", seconds=30)
    assert d.f == derive(spec).f and d.grads == derive(spec).grads
    assert spent < 30


def _python_loop():
    with stage("removable-singularity search in f"):
        while True:
            pass


def test_in_process_fallback_without_fork(monkeypatch):
    monkeypatch.setenv("ACTSYM_WORKER", "0")
    with pytest.raises(BudgetExceeded, match="^removable-singularity search in f ran out"):
        run_budgeted(_python_loop, stage_name="derivation", seconds=0.3)


def test_inner_time_budget_keeps_the_outer_deadline(monkeypatch):
    monkeypatch.setenv("ACTSYM_WORKER", "0")

    def work():
        with time_budget(0.05):  # an inner budget (guarded_simplify) that expires and is handled ...
            try:
                while True:
                    pass
            except _Timeout:
                pass
        with stage("hazard search"):  # ... must not cancel the outer one
            while True:
                pass

    with pytest.raises(BudgetExceeded, match="^hazard search ran out"):
        run_budgeted(work, stage_name="derivation", seconds=0.4)


def test_a_swallowed_timeout_fires_again(monkeypatch):
    monkeypatch.setenv("ACTSYM_WORKER", "0")
    start = time.monotonic()
    with pytest.raises(_Timeout):
        with time_budget(0.05):
            try:  # what an ``except Exception`` deep in SymPy does to the first alarm
                while True:
                    pass
            except _Timeout:
                pass
            while True:  # the rest of the block still has a limit
                pass
    assert time.monotonic() - start < 2


def _stubborn_search():
    with stage("accuracy regimes of df/dx"):
        while True:  # swallows every alarm, and would run past any soft deadline
            try:
                3 ** (10**10)
            except BaseException:  # noqa: BLE001, S110
                pass


def test_run_hard_kills_a_search_even_inside_a_worker():
    start = time.monotonic()
    with pytest.raises(BudgetExceeded, match="^accuracy regimes of df/dx ran out"):
        budget.run_hard(_stubborn_search, seconds=0.5, stage_name="accuracy regimes of df/dx")
    assert time.monotonic() - start < 5

    def nested():  # the derivation's worker forks once more for each regime search
        try:
            budget.run_hard(_stubborn_search, seconds=0.5, stage_name="accuracy regimes of df/dx")
        except BudgetExceeded:
            return "kept its form"

    result, spent = run_budgeted(nested, stage_name="derivation", seconds=20)
    assert result == "kept its form" and spent < 5


def test_derivation_keeps_the_form_where_a_regime_search_hangs(monkeypatch):
    import actsym.derivation as dv

    def hanging_improve(expr, *args, **kwargs):
        _stubborn_search()

    monkeypatch.setattr(dv, "improve", hanging_improve)
    monkeypatch.setattr(dv, "REGIME_SECONDS", 0.2)
    monkeypatch.setattr(dv, "REGIME_GRACE_SECONDS", 0.3)
    start = time.monotonic()
    d = derive(actsym.get("mish").spec)
    assert time.monotonic() - start < 20 and d.regimes == {}
    assert d.patched == derive(actsym.get("mish").spec, accurate=False).patched  # every function kept its form


def test_budget_setting(monkeypatch):
    monkeypatch.delenv("ACTSYM_BUDGET", raising=False)
    assert budget.budget_seconds() == budget.DEFAULT_BUDGET == 30
    monkeypatch.setenv("ACTSYM_BUDGET", "7.5")
    assert budget.budget_seconds() == 7.5
    monkeypatch.setenv("ACTSYM_BUDGET", "0")
    assert budget.budget_seconds() == math.inf
    assert budget.budget_seconds(3) == 3
    monkeypatch.setenv("ACTSYM_BUDGET", "soon")
    with pytest.raises(ExpressionError, match="ACTSYM_BUDGET"):
        budget.budget_seconds()


def test_codegen_refuses_past_the_budget_naming_the_stage(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ACTSYM_BUDGET", "0.5")
    start = time.monotonic()
    assert _codegen(tmp_path, "expm1(erf(3/x + 3*x))", {}) == 2  # ~10 s of limits and series
    assert time.monotonic() - start < 10
    line = _one_line_error(capsys)
    assert "ran out of its 0.5 s budget" in line
    assert any(s in line for s in ("simplification", "derivation of", "removable-singularity", "hazard", "check"))
    assert not (tmp_path / "gen").exists()


def test_derivation_survives_rendering_that_runs_out_of_time(monkeypatch):
    import actsym.codegen.eager as eager

    def slow_render(d):
        with stage("lowering"):
            while True:
                pass

    monkeypatch.setattr(eager, "render", slow_render)  # before the fork: the worker renders slowly
    act = actsym.define("keep", "x*sigmoid(x)", budget=3)
    with pytest.raises(BudgetExceeded, match="^lowering ran out of its 3 s budget"):
        act.source()
    assert act.derivation.grads["x"] is not None  # delivered before rendering started: kept


def test_define_budget_is_shared_by_all_stages():
    act = actsym.define("slow", "expm1(erf(3/x + 3*x))", budget=0.5)
    with pytest.raises(BudgetExceeded, match="0.5 s budget"):
        _ = act.derivation
    assert act._spent >= 0.5
    with pytest.raises(BudgetExceeded, match="0.5 s budget"):  # nothing left for a second try
        act.source()


# ------------------------------------------------------------------------------------------------------
# folded Piecewise and removable singularities of derivatives
# ------------------------------------------------------------------------------------------------------


def test_folded_conditions_become_intervals_and_empty_branches_go():
    from actsym.rewrite import simplify_conditions

    pw = sp.Piecewise(
        (1, (X < 1) & ((X >= 1) | (X < sp.Rational(1, 2)))),
        (2, (X >= sp.Rational(1, 2)) & (X < -1)),  # empty
        (3, (X > 0) | (X < 0)),  # x != 0, kept NaN-safe: no Ne
        (4, True),
    )
    out = simplify_conditions(pw)
    assert [v for v, _ in out.args] == [1, 3, 4]
    assert out.args[0][1] == (X < sp.Rational(1, 2))
    assert not out.has(sp.Ne)
    simple = sp.Piecewise((X, X > 0), (0, True))
    assert simplify_conditions(simple) is simple  # already simple: the user's spelling is kept


def test_derivative_patch_is_the_derivative_of_fs_taylor_polynomial():
    from actsym.derive import TAYLOR_ORDER, truncate_taylor

    b = sp.Symbol("b", real=True)
    f = (1 - sp.cos(b * X)) / X**2
    d = actsym.define("lim_b", f, {"b": 1.5}).derivation
    assert d.removable == {"f": [0.0], "x": [0.0], "b": [0.0]}
    for key, sym in (("x", X), ("b", b)):
        # the branch selected at x = 0 is the Taylor patch (accuracy regimes may come before it)
        patch = next(v for v, c in d.patched[key].args if c is sp.true or c.subs(X, 0) is sp.true)
        exact = sp.series(sp.diff(f, sym), X, 0, TAYLOR_ORDER).removeO()  # what SymPy's own series gives
        assert sp.expand(patch - truncate_taylor(exact, X, 0)) == 0


def test_truncated_taylor_keeps_fractional_powers_below_the_order():
    from actsym.derive import truncate_taylor

    # sqrt(x)*asinh(x) has a Puiseux series: its terms are x**(3/2), x**(7/2), ... (PolynomialError before)
    assert truncate_taylor(X ** sp.Rational(21, 2) + X ** sp.Rational(3, 2) + X**3, X, 0, 10) == (
        X ** sp.Rational(3, 2) + X**3
    )
    assert truncate_taylor((X - 1) ** 12 + 2 * (X - 1), X, 1, 10) == 2 * X - 2


def test_kinks_are_not_taylor_patched():
    # both one-sided limits at 0 are 0, but the function is -8x/pi for x < 0: a series there would be 0
    d = actsym.define("kink", "(x - Abs(x))/atan(sign(x))").derivation
    assert d.removable == {}
    f = sp.lambdify(X, d.patched["f"].subs(sp.sign(X), -1).subs(sp.Abs(X), -X))
    assert f(-1e-3) == pytest.approx(8e-3 / math.pi)
