"""The fused Triton backend: printer, rendered modules, kernels against the eager backend, the custom op.

Kernel tests run the generated kernels in Triton's CPU interpreter, in ONE subprocess started with
``TRITON_INTERPRET=1``: Triton chooses interpreter or compiler when a kernel is *decorated*, and decorates its
own library kernels (``tl.sum``, ``tl.sigmoid``) when it is imported, so the variable must be set before the
first ``import triton`` -- doing that here, in the pytest process, would leak into every later test. The
subprocess (``python tests/test_triton_backend.py --interpreter-worker OUT``) runs every case, records a
result per case, and the parametrized tests below assert on them. On a machine with CUDA the same checks
run in-process on compiled kernels (``test_compiled_kernels_on_cuda``).

Everything the interpreter runs is the exact code the GPU runs (core ``tl`` ops only, no libdevice), so
nothing is skipped for the interpreter's sake. Skips: no triton installed (all kernel tests), no CUDA
(the compiled-kernel tests).
"""

from __future__ import annotations

import ast
import copy
import functools
import importlib.util
import json
import os
import pickle
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
import sympy as sp
import torch

REPO = Path(__file__).resolve().parents[1]
HAS_TRITON = importlib.util.find_spec("triton") is not None
NO_TRITON = "triton is not installed (pip install -e '.[test]' installs it on Linux)"

CATALOG = [
    "relu", "sigmoid", "tanh", "softplus", "elu", "prelu", "gelu", "silu", "swish", "mish", "exp_p", "exp2",
    "rational", "exponential", "abs", "sin",
]
PARAMETRIC = ["elu", "prelu", "swish", "rational", "exponential"]
SPECIAL = [0.0, -0.0, 1e-7, -1e-7, 1e-30, -1e-30, 0.5, -0.5, 25.0, -25.0, 80.0, -80.0]

# layout -> (shape, per-channel parameters, block, min_programs): tiles, tails, row loops (ITERS) and both
# reduction axes of the kernels at interpreter-friendly sizes.
LAYOUTS = {
    "layer": ((3, 5, 41), False, 64, 2048),  # flat: M = 1, K = 615, 10 tiles with a tail
    "planes": ((2, 3, 5, 7), True, 32, 2048),  # AXIS 1: 6 planes of 35 (2 column tiles each)
    "rows": ((9, 3, 2), True, 32, 2),  # AXIS 0: 9 rows of 6, 2 row tiles per program (ITERS = 2)
    "mixed": ((2, 3, 5, 7), "first", 32, 2048),  # first parameter per-channel, the others per-layer
}
#: Non-catalog activations: a removable singularity (Taylor patch at 0) and two parameters.
CUSTOM = {
    "sinc": ("sin(x)/x", {}),
    "twoparam": ("Piecewise((a*x, x > 0), (b*expm1(x), True))", {"a": 1.0, "b": 0.5}),
    # parameter names the kernels and launchers use for their own values (issue 9, classes B/I)
    "kernelnames": ("Piecewise((K*x + grad*tanh(x) + M, x > 0), (a*expm1(x) + a_ptr*x + acc_a + needs, True))",
                    {"K": 1.0, "grad": 0.5, "M": 0.0, "a": 1.0, "a_ptr": 0.25, "acc_a": 0.0, "needs": 0.0}),
}
FLOAT = [torch.float32, torch.float64]
HALF = [torch.float16, torch.bfloat16]


def _cases() -> list[str]:
    cases = []
    for name in CATALOG:
        for layout in LAYOUTS if name in PARAMETRIC else ["layer"]:
            cases += [f"{name}-{layout}-{str(dt)[6:]}" for dt in FLOAT]
        cases += [f"{name}-planes-{str(dt)[6:]}" for dt in HALF]
        cases.append(f"{name}-nan")
    cases += [f"sinc-layer-{str(dt)[6:]}" for dt in FLOAT] + [f"twoparam-mixed-{str(dt)[6:]}" for dt in FLOAT]
    cases += [f"kernelnames-layer-{str(dt)[6:]}" for dt in FLOAT]
    cases += [f"rational-{layout}-index64" for layout in ("layer", "planes", "rows")]
    cases += ["rational-needs", "exponential-deterministic", "elu-empty", "silu-empty"]
    cases += ["module-rational", "module-mish", "module-compile-exp2"]
    return cases


CASES = _cases()


# ------------------------------------------------------------------------------------------------------
# Checks shared by the interpreter worker (CPU) and the compiled-kernel test (CUDA)
# ------------------------------------------------------------------------------------------------------


def _tol(dtype):
    return {torch.float32: dict(rtol=2e-5, atol=2e-6), torch.float64: dict(rtol=1e-11, atol=1e-13)}.get(dtype, {})


@functools.cache
def _activation(name):
    import actsym

    return actsym.define(name, CUSTOM[name][0], params=CUSTOM[name][1]) if name in CUSTOM else actsym.get(name)


def _setup(name, layout, dtype, device, seed=0):
    act = _activation(name)
    shape, per_channel, _, _ = LAYOUTS[layout]
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=torch.float64) * 3
    x.view(-1)[: len(SPECIAL)] = torch.tensor(SPECIAL, dtype=torch.float64)
    x = x.to(dtype)
    n_ch = shape[1] if per_channel else 1
    pdtype = dtype if dtype in FLOAT else torch.float32  # half models keep float32 parameters
    sizes = [1 if per_channel == "first" and i else n_ch for i in range(len(act.params))]
    params = [
        (abs(p.init) + 0.5 + 0.5 * torch.rand(size, generator=gen, dtype=torch.float64)).to(pdtype)
        for p, size in zip(act.params.values(), sizes)
    ]
    grad = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)
    return act, x.to(device), [p.to(device) for p in params], grad.to(device)


def _reference(act, x, params, grad):
    """Values and gradients of the eager generated functional (autograd), parameter grads in (C,) shape.
    create_graph=True makes its backward run the out-of-place (differentiable) code -- the canonical eager
    math; the in-place ``*_nograd`` variants are the eager backend's own business (tests/test_codegen_fast)."""
    views = [p.reshape(()) if p.numel() == 1 else p.view([1, -1] + [1] * (x.dim() - 2)) for p in params]
    xr = x.clone().requires_grad_()
    pr = [v.detach().clone().requires_grad_() for v in views]
    y = act.functional(xr, *pr)
    grads = [g.detach() for g in torch.autograd.grad(y, [xr, *pr], grad, create_graph=True)]
    return y.detach(), [grads[0]] + [g.reshape(p.shape) for g, p in zip(grads[1:], params)]


def _close(actual, expected, what, **tol):
    torch.testing.assert_close(actual, expected, equal_nan=True, msg=lambda m: f"{what}: {m}", **tol)


def check_kernels(name, layout, dtype, device="cpu", index64=False, nan=False):
    """Forward and fused backward kernels == the eager backend (values, grad_x, parameter grads)."""
    from actsym.codegen.custom_op import triton_module

    act, x, params, grad = _setup(name, layout, dtype, device)
    if nan:
        x.view(-1)[[3, 17]] = float("nan")
    _, _, block, min_programs = LAYOUTS[layout]
    mod = triton_module(act)
    if index64:  # the int64-offset variant of the same kernels (normally only for >= 2**31 elements)
        mod = _Index64(mod)
    y = mod.forward(x, *params, block=block)
    outs = mod.backward(grad, x, *params, block=block, min_programs=min_programs)
    y_ref, grads_ref = _reference(act, x, params, grad)
    tol = _tol(dtype)
    _close(y, y_ref, "f(x)", **tol)
    _close(outs[0], grads_ref[0], "grad_x", **tol)
    for p, g, g_ref in zip(act.params, outs[1:], grads_ref[1:]):
        assert g.dtype == g_ref.dtype and g.shape == g_ref.shape, (p, g.dtype, g.shape)
        _close(g, g_ref, f"grad_{p}", **(tol or dict(rtol=1e-4, atol=1e-4)))
    assert y.dtype == x.dtype and outs[0].dtype == x.dtype


class _Index64:
    """A Triton module whose launchers pass INDEX64=True to every kernel launch."""

    def __init__(self, mod):
        self.mod = mod

    def forward(self, *args, **kwargs):
        return _with_index64(self.mod, self.mod.forward, *args, **kwargs)

    def backward(self, *args, **kwargs):
        return _with_index64(self.mod, self.mod.backward, *args, **kwargs)


def _with_index64(mod, fn, *args, **kwargs):
    """Run a launcher with the module's kernels wrapped so that every launch passes INDEX64=True."""
    names = [k for k in vars(mod) if k.endswith("_kernel")]
    saved = {k: getattr(mod, k) for k in names}

    class Forced:
        def __init__(self, kernel):
            self.kernel = kernel

        def __getitem__(self, grid):
            run = self.kernel[grid]
            return lambda *a, **kw: run(*a, **{**kw, "INDEX64": True})

    try:
        for k in names:
            setattr(mod, k, Forced(saved[k]))
        return fn(*args, **kwargs)
    finally:
        for k in names:
            setattr(mod, k, saved[k])


def check_needs(device="cpu"):
    """Only the requested gradients are computed; the others are None and the rest is unchanged."""
    from actsym.codegen.custom_op import triton_module

    act, x, params, grad = _setup("rational", "planes", torch.float64, device)
    mod = triton_module(act)
    full = mod.backward(grad, x, *params, block=32)
    only_x = mod.backward(grad, x, *params, needs=(True, False), block=32)
    only_a = mod.backward(grad, x, *params, needs=(False, True), block=32)
    assert only_x[1] is None and only_a[0] is None
    assert torch.equal(only_x[0], full[0]) and torch.equal(only_a[1], full[1])


def check_deterministic(device="cpu"):
    """Parameter gradients are bitwise identical across runs (partial sums + torch.sum, no atomics)."""
    from actsym.codegen.custom_op import triton_module

    act, x, params, grad = _setup("exponential", "rows", torch.float32, device)
    mod = triton_module(act)
    runs = [mod.backward(grad, x, *params, block=32, min_programs=2)[1] for _ in range(3)]
    assert all(torch.equal(r, runs[0]) for r in runs)


def check_empty(name, device="cpu"):
    from actsym.codegen.custom_op import triton_module

    act, _, params, _ = _setup(name, "planes", torch.float32, device)
    x = torch.empty(0, 3, 4, device=device)
    mod = triton_module(act)
    assert mod.forward(x, *params).shape == x.shape
    gx, *gps = mod.backward(torch.empty_like(x), x, *params)
    assert gx.shape == x.shape and all(torch.equal(g, torch.zeros_like(p)) for g, p in zip(gps, params))


def check_module(name, device="cpu", compiled=False):
    """make_module(backend="triton") runs the kernels through the custom op and matches the eager module."""
    from actsym.backends import make_module
    from actsym.codegen.custom_op import uses_triton

    act, x, _, grad = _setup(name, "planes", torch.float32, device)
    assert uses_triton(x), "the custom op should run the Triton kernels here"
    fused = make_module(act, backend="triton", num_parameters=x.shape[1]).to(device)
    eager = make_module(act, backend="eager", num_parameters=x.shape[1]).to(device)
    with torch.no_grad():
        for p in fused.parameters():
            p.add_(0.1 * torch.arange(p.numel(), device=device))
    eager.load_state_dict(fused.state_dict())
    run = torch.compile(fused, fullgraph=True) if compiled else fused
    xf, xe = x.clone().requires_grad_(), x.clone().requires_grad_()
    yf, ye = run(xf), eager(xe)
    yf.backward(grad)
    ye.backward(grad)
    tol = _tol(torch.float32)
    _close(yf, ye, "module value", **tol)
    _close(xf.grad, xe.grad, "module grad_x", **tol)
    for (k, pf), pe in zip(fused.named_parameters(), eager.parameters()):
        _close(pf.grad, pe.grad, f"module grad_{k}", **tol)


def run_case(case: str, device="cpu") -> None:
    """Run one case; raises AssertionError on a mismatch."""
    parts = case.split("-")
    if parts[0] == "module":
        return check_module(parts[-1], device, compiled=parts[1] == "compile")
    name, kind = parts[0], parts[1]
    if kind == "nan":
        return check_kernels(name, "planes" if name in PARAMETRIC else "layer", torch.float64, device, nan=True)
    if kind == "needs":
        return check_needs(device)
    if kind == "deterministic":
        return check_deterministic(device)
    if kind == "empty":
        return check_empty(name, device)
    if parts[2] == "index64":
        return check_kernels(name, kind, torch.float32, device, index64=True)
    return check_kernels(name, kind, getattr(torch, parts[2]), device)


def _interpreter_worker(out: str) -> None:
    """Entry point of the subprocess: every case in the interpreter, results as JSON."""
    assert os.environ.get("TRITON_INTERPRET") == "1" and "triton" not in sys.modules
    import warnings

    warnings.simplefilter("ignore")  # the interpreter evaluates unselected branches (0/0) with numpy warnings
    results = {}
    for case in CASES:
        try:
            run_case(case)
            results[case] = {"ok": True, "msg": ""}
        except Exception as e:  # noqa: BLE001 - reported per case
            results[case] = {"ok": False, "msg": f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=-3)}"}
    Path(out).write_text(json.dumps(results))


# ------------------------------------------------------------------------------------------------------
# Kernel tests: interpreter (CPU, subprocess) and compiled (CUDA)
# ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def interpreter_results(tmp_path_factory):
    if not HAS_TRITON:
        pytest.skip(NO_TRITON)
    out = tmp_path_factory.mktemp("triton") / "results.json"
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, __file__, "--interpreter-worker", str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=1800
    )
    if proc.returncode != 0 or not out.exists():
        pytest.fail(f"interpreter worker failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(out.read_text())


@pytest.mark.parametrize("case", CASES)
def test_kernels_in_interpreter(interpreter_results, case):
    result = interpreter_results[case]
    assert result["ok"], result["msg"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU for compiled Triton kernels (the interpreter tests run the same kernels on CPU)")
@pytest.mark.skipif(not HAS_TRITON, reason=NO_TRITON)
def test_compiled_kernels_on_cuda():
    """Every interpreter case again, on CUDA with compiled kernels (in-process: no TRITON_INTERPRET here)."""
    failures = {}
    for case in CASES:
        try:
            run_case(case, device="cuda")
        except Exception as e:  # noqa: BLE001 - collected, reported together
            failures[case] = f"{type(e).__name__}: {e}"
    assert not failures, "\n".join(f"{k}: {v}" for k, v in failures.items())


# ------------------------------------------------------------------------------------------------------
# Printer and renderer (no triton needed)
# ------------------------------------------------------------------------------------------------------


def _code(expr):
    from actsym.codegen.triton_printer import triton_code

    return triton_code(sp.sympify(expr, locals={"x": sp.Symbol("x", real=True), "a": sp.Symbol("a", real=True)}))


def test_printer_powers_are_products_and_constants_literals():
    assert _code("x**3") == "x*x*x"
    assert _code("a*x**2/(a - x)**2") == "(x*x)*a/((a - x)*(a - x))"  # compound factors first, as in torch
    assert _code("x**(-1)") == "1.0/x"
    assert _code("sqrt(x)") == "tl.sqrt(x)"
    assert _code("x**(3/2)") == "x*tl.sqrt(x)"
    assert _code("sqrt(2)*x/2") == "x*0.7071067811865476"
    assert _code("2**x") == "tl.exp(x*0.6931471805599453)"


def test_printer_uses_stable_helpers_and_records_them():
    from actsym.codegen.triton_printer import TritonPrinter
    from actsym.functions import expm1, log1p, sigmoid, softplus

    x = sp.Symbol("x", real=True)
    p = TritonPrinter()
    code = p.doprint(x * sp.tanh(softplus(x)) + expm1(x) + log1p(x) + sigmoid(x))
    assert "_tanh(_softplus(x))" in code and "_expm1(x)" in code and "_log1p(x)" in code and "tl.sigmoid(x)" in code
    assert p.helpers == {"_tanh", "_softplus", "_expm1", "_log1p"}


def test_printer_selections_are_typed_and_nan_preserving():
    from actsym.codegen.printer import Clamp, Select, Where

    x, m = sp.Symbol("x", real=True), sp.Symbol("m0")
    assert _code(Where(m, 0, x)) == "tl.where(m0, tl.full((), 0, COMPUTE), x)"
    assert _code(Select(m, x, -0.5)) == "tl.where(m0, x, tl.full((), -0.5, COMPUTE))"
    assert _code(Clamp(x, -sp.oo, 0)) == "tl.minimum(x, 0, propagate_nan=tl.PropagateNan.ALL)"
    assert _code(Clamp(x, 0, sp.oo)) == "tl.maximum(x, 0, propagate_nan=tl.PropagateNan.ALL)"


@pytest.mark.parametrize("expr", ["atan(x)", "erfc(x)", "x**20", "tan(x)", "x + I"])
def test_printer_is_strict(expr):
    from actsym.codegen.triton_printer import UnsupportedNode

    with pytest.raises(UnsupportedNode):
        _code(expr)


@pytest.mark.parametrize("name", CATALOG)
def test_rendered_module_is_standalone(name):
    """Every catalog activation renders; the module imports only torch and triton and writes the math first."""
    import actsym
    from actsym.codegen.triton_backend import render

    src = render(actsym.get(name).derivation)
    tree = ast.parse(src)
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"torch", "triton", "math"}, imported
    header = src.split('"""')[0]
    assert "# y = f(x)" in header and "# gx" in header and "do not edit by hand" in header
    for p in actsym.get(name).params:
        assert f"# g_{p}" in header
    assert "atomic" not in src  # parameter gradients: partial sums, never atomics


def test_committed_modules_match_renderer():
    import actsym
    from actsym.codegen.custom_op import triton_hash
    from actsym.codegen.triton_backend import render

    for name in ["exp2", "rational"]:
        act = actsym.get(name)
        assert (REPO / "generated_triton" / f"{name}.py").read_text() == render(act.derivation)
        assert importlib.import_module(f"generated_triton.{name}").SOURCE_HASH == triton_hash(act)


def test_unsupported_activation_gets_eager_module_only(tmp_path):
    import actsym
    from actsym.codegen.writer import planned_files, triton_dir

    acts = [actsym.define("atanact", "atan(x)"), actsym.get("exp2")]
    files = planned_files(acts, tmp_path / "gen", with_init=True)
    assert tmp_path / "gen" / "atanact.py" in files
    assert triton_dir(tmp_path / "gen") / "exp2.py" in files
    assert triton_dir(tmp_path / "gen") / "atanact.py" not in files


def test_parameter_names_never_clash_with_kernel_names():
    """Parameters appear in kernels as p_<name> and in launchers positionally (the kernelnames case runs
    them in the interpreter)."""
    import actsym
    from actsym.codegen.triton_backend import render

    src = render(actsym.define("kn", CUSTOM["kernelnames"][0], params=CUSTOM["kernelnames"][1]).derivation)
    compile(src, "<kn>", "exec")
    assert "p_grad = _param(p_grad_ptr" in src and "def forward(x, *raw," in src


def test_importing_actsym_does_not_import_triton():
    code = "import sys, actsym, actsym.backends, actsym.codegen.custom_op; assert 'triton' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


# ------------------------------------------------------------------------------------------------------
# The custom op (CPU: eager fallback; no triton needed) and backend selection
# ------------------------------------------------------------------------------------------------------

needs_eager_fallback = pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET") == "1", reason="TRITON_INTERPRET=1: the op runs the kernels on CPU, covered above"
)


def _fused(name, num_parameters=1):
    import actsym
    from actsym.backends import FusedActivation

    act = actsym.get(name)
    fused = FusedActivation(act, num_parameters=num_parameters)
    eager = act.module(num_parameters=num_parameters)
    with torch.no_grad():
        for p in fused.parameters():
            p.add_(0.1 * torch.arange(p.numel()))
    eager.load_state_dict(fused.state_dict())
    return fused, eager


@needs_eager_fallback
@pytest.mark.parametrize("name", ["rational", "exponential", "elu", "swish", "exp2", "mish", "gelu"])
@pytest.mark.parametrize("num_parameters", [1, 3])
def test_custom_op_matches_eager_module(name, num_parameters):
    fused, eager = _fused(name, num_parameters)
    x = torch.randn(4, 3, 5) * 3
    g = torch.randn_like(x)
    xf, xe = x.clone().requires_grad_(), x.clone().requires_grad_()
    yf, ye = fused(xf), eager(xe)
    yf.backward(g)
    ye.backward(g)
    torch.testing.assert_close(yf, ye)
    torch.testing.assert_close(xf.grad, xe.grad)
    for pf, pe in zip(fused.parameters(), eager.parameters()):
        torch.testing.assert_close(pf.grad, pe.grad)


@pytest.mark.parametrize("name", ["rational", "silu"])
def test_opcheck(name):
    import actsym
    from actsym.codegen.custom_op import fused_op

    act = actsym.get(name)
    op = fused_op(act)
    x = torch.randn(3, 4, 5, dtype=torch.float64, requires_grad=True)
    params = [torch.rand(4, dtype=torch.float64, requires_grad=True) + 0.5 for _ in act.params]
    torch.library.opcheck(op.fwd, (x, *params))
    needs = [True] * (1 + len(params))
    torch.library.opcheck(op.bwd, (torch.randn_like(x), x.detach(), *[p.detach() for p in params], needs))


@pytest.mark.parametrize("name", ["rational", "silu"])
def test_compile_fullgraph_no_graph_break(name):
    fused, eager = _fused(name, 3)
    torch._dynamo.reset()
    compiled = torch.compile(fused, fullgraph=True)  # raises on a graph break
    x = torch.randn(2, 3, 8)
    xc, xe = x.clone().requires_grad_(), x.clone().requires_grad_()
    compiled(xc).sum().backward()
    eager(xe).sum().backward()
    torch.testing.assert_close(xc.grad, xe.grad)
    explain = torch._dynamo.explain(fused)(x)
    assert explain.graph_break_count == 0 and explain.graph_count == 1


def test_export_records_one_op_node():
    fused, eager = _fused("rational", 3)
    x = torch.randn(2, 3, 8)
    ep = torch.export.export(fused, (x,))
    targets = [str(n.target) for n in ep.graph.nodes if n.op == "call_function"]
    assert len(targets) == 1 and targets[0].startswith("actsym.rational_"), targets
    torch.testing.assert_close(ep.module()(x), eager(x))


@pytest.mark.parametrize("name", ["rational", "exp2"])
def test_double_backward_through_the_op(name):
    fused, _ = _fused(name, 3)
    fused = fused.double()
    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fused, (x,))
    assert torch.autograd.gradgradcheck(fused, (x,))


@needs_eager_fallback
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_computed_in_float32(dtype):
    fused, eager = _fused("exponential", 3)
    x = (torch.randn(2, 3, 8) * 3).to(dtype)
    torch.testing.assert_close(fused(x), eager(x))
    assert fused(x).dtype == dtype


def test_module_copies_and_pickles():
    fused, _ = _fused("rational", 3)
    x = torch.randn(2, 3, 4)
    for clone in (copy.deepcopy(fused), pickle.loads(pickle.dumps(fused))):
        torch.testing.assert_close(clone(x), fused(x))
    assert "rational" in repr(fused) and "backend=triton" in repr(fused)


def test_channels_last_and_noncontiguous_inputs():
    fused, eager = _fused("prelu", 3)
    x = torch.randn(2, 3, 4, 5).to(memory_format=torch.channels_last)
    torch.testing.assert_close(fused(x), eager(x))
    xt = torch.randn(2, 5, 3).transpose(1, 2)
    torch.testing.assert_close(fused(xt), eager(xt))


def test_bad_parameter_shape_is_a_clear_error():
    fused, _ = _fused("rational", 3)
    with pytest.raises(ValueError, match="one per channel"):
        fused(torch.randn(2, 4, 5))


def test_backend_selection(monkeypatch):
    import actsym
    from actsym import backends
    from actsym.codegen import custom_op

    act = actsym.get("rational")
    assert backends.resolve_backend("eager") == "eager"
    assert type(backends.make_module(act, backend="eager")) is act.module_class
    compiled = backends.make_module(act, backend="compile", num_parameters=2)
    assert compiled.backend == "compile" and compiled.a.shape == (2,)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert backends.resolve_backend("auto") == "eager"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(custom_op, "triton_available", lambda: True)
    assert backends.resolve_backend("auto") == "triton"
    assert isinstance(backends.make_module("rational", backend="auto", a=2.0), backends.FusedActivation)
    atan = actsym.define("atanact", "atan(x)")
    assert type(backends.make_module(atan, backend="auto")) is atan.module_class  # no Triton translation
    with pytest.raises(ValueError, match="no Triton kernels"):
        backends.make_module(atan, backend="triton")
    monkeypatch.setattr(custom_op, "triton_available", lambda: False)
    assert backends.resolve_backend("auto") == "eager"
    with pytest.raises(RuntimeError, match="needs the triton package"):
        backends.make_module(act, backend="triton")
    with pytest.raises(ValueError, match="backend must be one of"):
        backends.resolve_backend("cuda")


def test_make_functional():
    import actsym
    from actsym.backends import make_functional

    act = actsym.get("rational")
    x = torch.randn(10)
    ref = act.functional(x, 1.5)
    torch.testing.assert_close(make_functional(act, "eager")(x, 1.5), ref)
    torch.testing.assert_close(make_functional(act, "compile")(x, 1.5), ref)


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--interpreter-worker":
    _interpreter_worker(sys.argv[2])


def test_big_integer_constants_print_as_float_literals():
    # Triton's integer literals are 32/64-bit: a regime split at x = -1e19 must be a float literal
    import sympy as sp

    from actsym.codegen.triton_printer import TritonPrinter

    assert TritonPrinter().doprint(sp.Integer(-(10**19))) == "-1e+19"
    assert TritonPrinter().doprint(sp.Integer(7)) == "7"
