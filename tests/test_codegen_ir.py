"""The IR and its two eager emitters: folding, CSE, kinds, names, buffer assignment, and the bug classes of
issue 9 (A-L) that lived in the old string-based in-place printer -- each checked against plain SymPy/mpmath
values of the user's expression, on every eager path (autograd, no_grad in place, backward, parameters)."""

import ast
import builtins
import math

import mpmath
import pytest
import sympy as sp
import torch

import actsym
from actsym.codegen import native
from actsym.codegen.emit import Kernel, Namer, emit_inplace, emit_out_of_place
from actsym.codegen.ir import Builder, Graph
from actsym.functions import mpmath_namespace
from actsym.parse import ExpressionError
from actsym.spec import MODULE_NAMES

X = sp.Symbol("x", real=True)


# ------------------------------------------------------------------------------------------------------
# passes
# ------------------------------------------------------------------------------------------------------


def _graph(expr, params=()):
    g = Graph()
    env = {X: g.input("x", "full")}
    for p in params:
        env[sp.Symbol(p, real=True)] = g.input(p, "param")
    return g, Builder(g, env)


def test_constant_folding_keeps_every_numeric_term():
    g, b = _graph(None)
    out = b(X + 1 + sp.pi)
    consts = [ins.attr[0] for ins in g.instrs if ins.op == "const"]
    assert consts == [pytest.approx(1 + math.pi, abs=0)]
    assert g.instrs[out].op == "add"


def test_no_torch_op_on_numbers_only():
    g, b = _graph(None)
    b(sp.exp(sp.sqrt(2 / sp.pi)) * X + sp.log(3) / sp.E)
    for ins in g.instrs:
        if ins.op not in ("input", "const"):
            assert any(g.kind(a) != "const" for a in ins.args), ins


def test_cse_by_hash_consing():
    g, b = _graph(None)
    v1 = b(sp.exp(X) + 1)
    v2 = b(sp.exp(X) * 2)
    exps = [i for i, ins in enumerate(g.instrs) if ins.op == "exp"]
    assert len(exps) == 1 and v1 != v2


def test_kinds():
    a = sp.Symbol("a", real=True)
    g, b = _graph(None, ["a"])
    assert g.kind(b(a * 2 + 1)) == "param"
    assert g.kind(b(a > 0)) == "pmask"
    assert g.kind(b(X > a)) == "mask"
    assert g.kind(b(a * X)) == "full"
    assert g.kind(b(sp.Integer(3) > 2)) == "const"


def test_inplace_buffers_never_alias_live_values():
    """x**2 + 2 read x twice, exp(x) is read by two consumers: the first consumer must not mutate it."""
    g, b = _graph(None)
    t = sp.exp(X)
    out = b(t * X + t)
    k = Kernel(g, [("x", 0)], [out])
    lines = emit_inplace(k, Namer(["x"]))
    ns = {"torch": torch, "math": math}
    exec("def f(x):\n    " + "\n    ".join(lines), ns)  # noqa: S102 - our own generated code
    x = torch.linspace(-3, 3, 7, dtype=torch.float64)
    ref = torch.exp(x) * x + torch.exp(x)
    assert torch.equal(ns["f"](x), ref)
    assert not any("x." in ln and "_(" in ln.split("x.", 1)[1][:12] for ln in lines), lines  # x not mutated
    assert emit_out_of_place(k, Namer(["x"]))[-1].startswith("return")


def test_namer_avoids_reserved_and_keywords():
    n = Namer(["out", "b0", "t0"])
    assert n.exact("out") == "out_"
    assert n.fresh("b") == "b1"
    assert n.fresh("t") == "t1"
    assert n.exact("lambda") == "lambda_"
    assert n.exact("torch") == "torch_"


# ------------------------------------------------------------------------------------------------------
# an independent oracle: plain SymPy derivatives of the user's expression, mpmath at 30 digits
# ------------------------------------------------------------------------------------------------------


def _oracle(act):
    expr = act.spec.expr
    syms = [X, *act.spec.param_symbols]
    ns = [mpmath_namespace(), "mpmath"]
    f = sp.lambdify(syms, expr, modules=ns)
    grads = [sp.lambdify(syms, sp.diff(expr, s).replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: 0), modules=ns)
             for s in syms]

    def at(fn, x0, ps):
        with mpmath.workdps(30):
            try:
                v = fn(mpmath.mpf(x0), *[mpmath.mpf(p) for p in ps])
                v = complex(v)
            except (ZeroDivisionError, ValueError, TypeError):
                return math.nan
        return v.real if v.imag == 0 else math.nan

    return (lambda x0, ps: at(f, x0, ps)), [(lambda x0, ps, g=g: at(g, x0, ps)) for g in grads]


def _check_all_paths(act, xs, params=None, dtype=torch.float64, rel=1e-9, skip_grad_at=()):
    """Module forward (autograd on), no_grad forward (in place), backward (x and parameter grads), and the
    in-place gradient kernels, all against the oracle."""
    params = params or {k: v.init for k, v in act.spec.params.items()}
    f, grads = _oracle(act)
    pv = list(params.values())
    mod = act.module(backend="eager").to(dtype)
    with torch.no_grad():  # exact initial values in this dtype (the constructor rounds through float32)
        for name, v in params.items():
            (mod._parameters.get(name) if name in mod._parameters else mod._buffers[name]).fill_(v)
    x = torch.tensor(xs, dtype=dtype, requires_grad=True)
    y = mod(x)
    with torch.no_grad():
        y_ng = mod(x.detach())
    y.backward(torch.ones_like(y))
    for i, x0 in enumerate(xs):
        exact = f(x0, pv)
        if not math.isfinite(exact):
            continue
        tol = rel * max(1.0, abs(exact))
        assert abs(y[i].item() - exact) <= tol, f"{act.name}: f({x0}) = {y[i].item()}, exact {exact}"
        assert abs(y_ng[i].item() - exact) <= tol, f"{act.name}: no_grad f({x0}) = {y_ng[i].item()}, exact {exact}"
        if x0 in skip_grad_at:
            continue
        gexact = grads[0](x0, pv)
        if math.isfinite(gexact):
            assert abs(x.grad[i].item() - gexact) <= rel * max(1.0, abs(gexact)), (
                f"{act.name}: f'({x0}) = {x.grad[i].item()}, exact {gexact}")
    # parameter gradients point by point (unreduced kernel output) against the oracle, and the module's
    # reduced .grad against their sum
    if pv:
        ones = torch.ones(len(xs), dtype=dtype)
        per_point = act.code.__dict__[f"{act.name}_grad_all"](ones, x.detach(), *[torch.tensor(v, dtype=dtype) for v in pv])
        for j, name in enumerate(params):
            for i, x0 in enumerate(xs):
                exact = grads[j + 1](x0, pv)
                if x0 in skip_grad_at or not math.isfinite(exact):
                    continue
                got = per_point[j + 1][i].item()
                assert abs(got - exact) <= rel * max(1.0, abs(exact)), f"{act.name}: d/d{name} at x={x0}: {got}, exact {exact}"
            g = mod._parameters[name].grad if name in mod._parameters else None
            if act.spec.params[name].learnable:
                assert g is not None and g.shape == (1,), f"{act.name}: d/d{name} missing"
                total = per_point[j + 1].sum().item()
                assert abs(g.item() - total) <= rel * max(1.0, abs(total)), f"{act.name}: reduced d/d{name}"
    # the in-place gradient kernels agree with the out-of-place ones
    name = act.name
    xd = torch.tensor(xs, dtype=dtype)
    g = torch.linspace(-1, 2, len(xs), dtype=dtype)
    ps = [torch.tensor(v, dtype=dtype) for v in pv]
    with torch.no_grad():
        for fn in ("value", "grad_x", "grad_all"):
            if fn == "grad_all" and not ps:
                continue
            args = (xd, *ps) if fn == "value" else (g, xd, *ps)
            ref = getattr(act.code, f"{name}_{fn}")(*args)
            twin = native.nograd_reference(act.code, fn, args)  # where it runs PyTorch's fused kernel: that one
            ref = ref if twin is None else twin
            fast = getattr(act.code, f"{name}_{fn}_nograd")(*args)
            for r, q in zip(ref if isinstance(ref, tuple) else (ref,), fast if isinstance(fast, tuple) else (fast,)):
                assert r.shape == q.shape and r.dtype == q.dtype
                assert torch.equal(torch.isnan(r), torch.isnan(q)) and torch.equal(r.nan_to_num(), q.nan_to_num()), (
                    f"{name}_{fn}: in place differs")
    return mod


XS = [-3.0, -2.0, -1.5, -1.0, -0.5, 0.0, 0.3, 0.5, 1.0, 2.0, 3.5]

CASES = [
    # A: in-place select dropped its else-operand
    ("Piecewise((x, x > 0), (x**2, x >= -2), (-1, True))", {}),
    ("x*Min(Max(x + 3, 0), 6)/6", {}),
    ("Piecewise((x + b, x + b >= 0), (exp(x + b) - 1, True))", {"b": 0.5}),
    # B: buffer names collided with parameter names
    ("out*tanh(k*x) + c*x", {"out": 1.0, "k": 1.0, "c": 1.0}),
    ("relu(x) + b1*sin(b2*x)", {"b1": 0.7, "b2": 1.3}),
    ("b0*x + i0*tanh(x) + out0*sigmoid(x)", {"b0": 0.5, "i0": 1.5, "out0": -0.5}),
    # C: in place into a parameter-only 0-dim tensor
    ("Piecewise((a/b*x, x >= 0), (a*(exp(x/b) - 1), True))", {"a": 1.2, "b": 2.0}),
    ("(1 - b)*x*sigmoid(a*(1 - b)*x) + b*x", {"a": 1.5, "b": 0.25}),
    # E: torch ops on Python numbers
    ("x*sigmoid(2*sqrt(2/pi)*(x + 0.044715*x**3))", {}),
    ("Piecewise((sqrt(2*a*x), x >= 0), (-sqrt(-2*a*x), True))", {"a": 1.5}),
    # F: numeric terms of a sum dropped
    ("x + 1 + pi", {}),
    ("x*(x + 2 + E)", {}),
    # G: blends
    ("Piecewise((1.702, x <= 0), (-1, True)) + expm1(3) + x", {}),
    # J: float64 constants
    ("Max(x, 0.01*x)", {}),
    # R2: names the generator used to reserve
    ("t0*x + m1*tanh(x) + xs0*softplus(x) + g2", {"t0": 0.5, "m1": 1.0, "xs0": 0.25, "g2": 0.1}),
    ("grad*x + y*exp(-x**2) + gx", {"grad": 1.5, "y": 0.5, "gx": 0.1}),
    # I: names of builtins and of generated helpers
    ("value*x + extra*tanh(x) + grad_all*sin(x)", {"value": 2.0, "extra": 0.5, "grad_all": 0.25}),
    ("len*x + any*sigmoid(x) + float*x**2 + super*cos(x)", {"len": 1.0, "any": 0.5, "float": 0.1, "super": 0.3}),
    ("torch*x + math*tanh(x) + ctx*x**2", {"torch": 1.0, "math": 0.5, "ctx": 0.25}),
    ("training*x + forward*tanh(x) + cuda*x", {"training": 1.0, "forward": 0.5, "cuda": 0.25}),
]


@pytest.mark.parametrize("expr,params", CASES, ids=[c[0][:40] for c in CASES])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_reproducers_all_paths(expr, params, dtype):
    act = actsym.define("user_act", expr, params, verify=False)
    kinks = [0.0, -2.0, -3.0, -0.5] if ("Piecewise" in expr or "Max" in expr or "Min" in expr or "relu" in expr) else []
    _check_all_paths(act, XS, dtype=dtype, rel=1e-9 if dtype == torch.float64 else 2e-5, skip_grad_at=kinks)


def test_value_parameter_keeps_its_own_init():
    act = actsym.define("two", "value*x + a", {"a": 3.0, "value": 2.0}, verify=False)
    mod = act.module(backend="eager")
    assert mod.value.item() == 2.0 and mod.a.item() == 3.0
    assert mod(torch.tensor([1.0])).item() == 5.0


def test_nonfinite_constant_branch_does_not_poison_the_selected_one():
    act = actsym.define("g2", "Piecewise((x, x >= 0), (sqrt(a), True))", {"a": -1.0}, verify=False)
    for grad in (False, True):
        with torch.set_grad_enabled(grad):
            y = act.module(backend="eager")(torch.tensor([0.5, 2.0]))
        assert y.tolist() == [0.5, 2.0]


def test_zero_parameter_derivative_is_a_zero_tensor():
    """D: a threshold has derivative 0 (a.e.); backward must return a zero tensor of the parameter's shape."""
    act = actsym.define("thr", "Piecewise((x, x > a), (0, True))", {"a": 0.1}, verify=False)
    for C in (1, 3):
        mod = act.module(backend="eager", num_parameters=C)
        x = torch.randn(4, C, 5, requires_grad=True)
        mod(x).sum().backward()
        assert mod.a.grad is not None and mod.a.grad.shape == (C,) and torch.all(mod.a.grad == 0)
        assert torch.equal(x.grad, (x > 0.1).float())


@pytest.mark.parametrize("expr", ["sign(x)", "Heaviside(x, 1)", "Piecewise((1, x > 0), (-1, True))",
                                  "Piecewise((0, x > 0), (2, True)) + x", "x", "Max(x, x)"])
def test_step_functions_and_identity(expr):
    """K: derivatives that are identically 0, constant branches, an input returned as is."""
    act = actsym.define("step", expr, verify=False)
    f, grads = _oracle(act)
    x = torch.tensor([-2.0, -0.5, 0.5, 2.0], dtype=torch.float64, requires_grad=True)
    mod = act.module(backend="eager")
    y = mod(x)
    y.backward(torch.ones_like(y))
    assert y.tolist() == pytest.approx([f(v, []) for v in x.tolist()])
    assert x.grad.tolist() == pytest.approx([grads[0](v, []) for v in x.tolist()])
    with torch.no_grad():
        assert mod(x).tolist() == y.tolist()
    gx = torch.func.vmap(torch.func.grad(lambda t: mod(t)))(x.detach())
    assert gx.tolist() == pytest.approx(x.grad.tolist())


def test_float64_constants_stay_float64():
    act = actsym.define("lrelu", "Max(x, 0.01*x)", verify=False)
    x = torch.tensor([-1.0, 2.0], dtype=torch.float64, requires_grad=True)
    act.module(backend="eager")(x).sum().backward()
    assert x.grad.tolist() == [0.01, 1.0]


def test_integer_and_bool_inputs_are_refused():
    mod = actsym.get("sigmoid").module(backend="eager")
    for t in (torch.tensor([-2, -1, 0, 1, 2]), torch.tensor([True, False])):
        with pytest.raises(TypeError, match="floating-point"):
            mod(t)


@pytest.mark.parametrize("name", ["backend", "learnable", "num_parameters", "self", "x"])
def test_api_option_names_are_refused_for_parameters(name):
    with pytest.raises(ExpressionError):
        actsym.define("p", f"{name}*x", {name: 1.0})


@pytest.mark.parametrize("name", ["class", "torch", "_apply", "__x", "__init__", "len", "Upper", "1a"])
def test_bad_activation_names_are_refused(name):
    with pytest.raises(ExpressionError):
        actsym.define(name, "x*tanh(x)")


def test_module_names_cover_the_builtins_generated_code_reads():
    """Activation names may not shadow a builtin the generated module reads (spec.MODULE_NAMES)."""
    act = actsym.define("probe", "Piecewise((a*x, x > 0), (b*expm1(x), True))", {"a": 1.0, "b": 1.0})
    tree = ast.parse(act.source())
    read = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    used_builtins = {n for n in read if hasattr(builtins, n)}
    assert used_builtins <= MODULE_NAMES, used_builtins - MODULE_NAMES


def test_fixed_parameters_keep_full_precision_in_float64_modules():
    """A fixed constant (SELU's scale) must not stay rounded through float32 after .double()."""
    lam, alpha = 1.0507009873554805, 1.6732632423543772
    act = actsym.define("selu_t", "scale*Piecewise((x, x > 0), (alpha*expm1(x), True))",
                        {"scale": (lam, False), "alpha": (alpha, False)}, verify=False)
    m = act.module(backend="eager").double()
    x = torch.linspace(-3, 3, 13, dtype=torch.float64)
    assert torch.allclose(m(x), torch.nn.functional.selu(x), rtol=4e-16, atol=0)
    assert m.scale.item() == lam
    m.float()
    assert m.scale.dtype == torch.float32 and m.scale.item() == torch.tensor(lam).float().item()
