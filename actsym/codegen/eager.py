"""Eager PyTorch backend: renders one standalone module (autograd.Function + nn.Module) per activation.

The generated file imports only ``math`` and ``torch``. Forward saves the input and the parameters only
(timm's memory-efficient pattern) and backward recomputes what it needs. Backward is written with
differentiable torch ops, so double backward (gradient penalties, Hessian-vector products) works through
autograd; the safe-Piecewise lowering keeps it finite.
"""

from __future__ import annotations

import shlex
import textwrap

import sympy as sp

from actsym import __version__
from actsym.branch_points import branch_points
from actsym.codegen import native
from actsym.codegen.emit import Namer, emit_inplace, emit_out_of_place, kernel_from_program
from actsym.codegen.lower import Program, lower
from actsym.derivation import Derivation

GENERATOR = f"actsym {__version__} eager-torch/4"
HEADER_WIDTH = 106


def _header_label(key: str) -> str:
    return "f" if key == "f" else f"df/d{key}"


def _comment_block(label: str, text: str) -> list[str]:
    wrapped = textwrap.wrap(text, HEADER_WIDTH - 16, break_long_words=True, break_on_hyphens=False) or [""]
    lines = [f"# {label:<12} {wrapped[0]}"]
    lines += [f"# {'':<12} {w}" for w in wrapped[1:]]
    return lines


def _kernel_lines(prog: Program, inputs) -> tuple[list[str], list[str]]:
    """(out-of-place body, in-place body) of one kernel, printed from one IR graph."""
    k = kernel_from_program(prog, inputs)
    reserved = [local for _, local, _ in inputs]
    oop = emit_out_of_place(k, Namer(reserved))
    inp = emit_inplace(k, Namer(reserved))
    return ["    " + ln for ln in oop], ["    " + ln for ln in inp]


def _native_body(code: str, fmts: tuple[str, ...], body: list[str]) -> list[str]:
    """The in-place body with PyTorch's fused kernel in front of it for the formats it was verified in
    (float16/bfloat16 arrive here as float32); the generated code stays for the other formats."""
    if not fmts:
        return body
    if set(fmts) == set(native.FORMATS):
        return [f"    return {code}"]
    cond = " or ".join(f"x.dtype == torch.{f}" for f in fmts)
    return [f"    if {cond}:", f"        return {code}", *body]


def _lean_dtypes(twin) -> tuple[str, ...]:
    """Where the lean native Function runs: both fused kernels verified. With only the forward verified
    (sigmoid, tanh) it measured slower at 16M elements than the main Function (the backward is the same
    generated code either way), so those keep the main Function."""
    return tuple(f for f in twin.value_dtypes if f in twin.grad_dtypes)


def _native_constants(twin) -> list[str]:
    """``NATIVE``: which PyTorch op is this activation's twin and where it runs (see the header's "native");
    ``_NATIVE``: the dtypes where the module *is* that op (f, df/dx and d2f/dx2 all verified)."""
    if twin is None:
        return ["NATIVE = None"]
    def tup(items):
        items = list(items)
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"

    def q(fmts):
        return [f'"{f}"' for f in fmts]

    return [
        f'NATIVE = {{"op": "{twin.twin.name}", "value": {tup(q(twin.value_dtypes))}, "grad_x": {tup(q(twin.grad_dtypes))}, '
        f'"module": {tup(q(twin.whole_dtypes))}}}',
        "_NATIVE = " + tup(f"torch.{f}" for f in twin.whole_dtypes),
        "_NATIVE_VALUE = " + tup(f"torch.{f}" for f in _lean_dtypes(twin)),
        "_NATIVE_GRAD = " + tup(f"torch.{f}" for f in twin.grad_dtypes),
    ]


def regenerate_hint(spec) -> str:
    """The command that writes this file again: ``--all`` for the catalog, else the user's own command."""
    from actsym.catalog import CATALOG

    entry = CATALOG.get(spec.name)
    if entry is not None and entry["expr"].strip() == spec.source:
        return "actsym codegen --all"
    params = "".join(f" --param {k}={v.init!r}" for k, v in spec.params.items())
    fixed = "".join(f" --fixed {k}" for k, v in spec.params.items() if not v.learnable)
    source = " ".join(spec.source.split())  # one line: the hint is a comment
    return f"actsym codegen {shlex.quote(source)} --name {spec.name}{params}{fixed}"


def local_names(pnames: list[str]) -> tuple[dict[str, str], str]:
    """Kernel argument names: a parameter keeps its name unless a generated body needs that name
    (``torch``, ``math``); the incoming gradient is ``grad`` unless a parameter is called that."""
    namer = Namer(["x"])
    locals_ = {p: namer.exact(p) for p in pnames}
    return locals_, namer.exact("grad")


def render(d: Derivation) -> str:
    """The complete source of ``generated/<name>.py`` for a derivation."""
    spec = d.spec
    x = d.x
    pnames = list(spec.params)
    init_subs = d.init_subs()
    sig = ", ".join(["x", *pnames])
    locals_, grad_name = local_names(pnames)
    grad = sp.Symbol(grad_name, real=True)
    reserved = {x.name, grad_name, *pnames}
    fwd = lower([("y", d.patched["f"])], x, init_subs, reserved=reserved)
    gx = lower([("gx", d.patched["x"])], x, init_subs, scale=grad, reserved=reserved)
    gall = lower([("gx", d.patched["x"]), *[(f"g_{p}", d.patched[p]) for p in pnames]], x, init_subs, scale=grad,
                 reserved=reserved)
    psyms = [(sp.Symbol(p, real=True), locals_[p], "param") for p in pnames]
    xin = (x, "x", "full")
    gin = (grad, grad_name, "full")
    sig = ", ".join(["x", *(locals_[p] for p in pnames)])
    gsig = f"{grad_name}, {sig}"
    fwd_oop, fwd_inp = _kernel_lines(fwd, [xin, *psyms])
    gx_oop, gx_inp = _kernel_lines(gx, [gin, xin, *psyms])
    if pnames:
        gall_oop, gall_inp = _kernel_lines(gall, [gin, xin, *psyms])
    twin = native.find(spec, x, d.patched["x"], lambda: branch_points(d.f, x, spec.expr))
    if twin is not None:
        fwd_inp = _native_body(twin.twin.value.format(x="x"), twin.value_dtypes, fwd_inp)
        gx_inp = _native_body(twin.twin.grad.format(x="x", g=grad_name), twin.grad_dtypes, gx_inp)

    lines: list[str] = []
    lines += ["# " + "-" * (HEADER_WIDTH - 2)]
    lines += [f"# GENERATED by {GENERATOR} -- do not edit by hand. Regenerate: {regenerate_hint(spec)}"]
    lines += _comment_block("activation", f"{spec.name} (class {spec.class_name}) -- {spec.title}")
    if spec.reference:
        lines += _comment_block("reference", spec.reference)
    lines += _comment_block("source", spec.source)
    if pnames:
        desc = ", ".join(f"{k} = {v.init!r} ({'learnable' if v.learnable else 'fixed'})" for k, v in spec.params.items())
        lines += _comment_block("params", desc)
    lines += _comment_block("f(x)", sp.sstr(d.f))
    lines += _comment_block("df/dx", sp.sstr(d.grads["x"]))
    for p in pnames:
        lines += _comment_block(f"df/d{p}", sp.sstr(d.grads[p]))
    for key, pts in d.removable.items():
        lines += _comment_block("limits", f"{key}: removable singularity at x = {pts} -> Taylor patch")
    for key, note in d.regimes.items():
        lines += _comment_block("accuracy", f"{_header_label(key)}: {note}")
    for key, at in d.param_removable.items():
        lines += _comment_block("limits", f"{key}: removable singularity at {', '.join(at)} -> its limit there")
    for h in d.hazards:
        lines += _comment_block("hazard", f"{h['kind']} at {h['at']} on branch {h['branch']} when {h['when']}; safe: {h['safe']}")
    if twin is not None:
        lines += _comment_block("native", f"{twin.twin.name}: {twin.describe()}")
    lines += _comment_block("ops", f"forward {fwd.op_count()}, backward {gall.op_count()} (after CSE)")
    lines += _comment_block("hash", spec.source_hash(GENERATOR))
    lines += ["# " + "-" * (HEADER_WIDTH - 2)]
    doc = f"{spec.title}: generated PyTorch activation ``{spec.class_name}``."
    lines += [f'"""{doc}"""', "", "import math", "", "import torch", ""]
    lines += [f'NAME = "{spec.name}"']
    lines += [f'SOURCE_HASH = "{spec.source_hash(GENERATOR)}"']
    lines += ["PARAMS = {" + ", ".join(f'"{k}": {v.init!r}' for k, v in spec.params.items()) + "}"]
    lines += ["LEARNABLE = (" + "".join(f'"{k}", ' for k, v in spec.params.items() if v.learnable) + ")"]
    lines += ["_HALF = (torch.float16, torch.bfloat16)"]
    lines += _native_constants(twin)
    lines += ['BACKENDS = ("eager", "compile")', "_COMPILED = {}  # function -> torch.compile'd function (backend \"compile\")", "", ""]

    lines += ["# " + "-" * 40 + " out of place: differentiable (double backward, torch.func, torch.compile)"]
    lines += ["", ""]
    lines += [f"def {spec.name}_value({sig}):", '    """f(x) on tensors (parameters broadcastable against x)."""']
    lines += fwd_oop + ["", ""]
    lines += [f"def {spec.name}_grad_x({gsig}):", f'    """{grad_name} * df/dx."""']
    lines += gx_oop + ["", ""]
    if pnames:
        lines += [f"def {spec.name}_grad_all({gsig}):"]
        lines += [f'    """({grad_name} * df/dx, {grad_name} * df/dp for every parameter), not yet reduced to the parameter shapes."""']
        lines += gall_oop + ["", ""]

    lines += ["# " + "-" * 40 + " in place: the same operations, run while autograd is not recording"]
    lines += ["# (buffers are allocated once and mutated; inputs are never written)", "", ""]
    doc = '    """Same result as {0}, computed in place on buffers it allocates; not differentiable."""'
    ndoc = ('    """Same result as {0}: PyTorch\'s fused kernel where it was verified (see "native" above), else '
            'computed in place on buffers it allocates; not differentiable."""')
    vdoc = ndoc if twin is not None and twin.value_dtypes else doc
    gdoc = ndoc if twin is not None and twin.grad_dtypes else doc
    lines += [f"def {spec.name}_value_nograd({sig}):", vdoc.format(f"{spec.name}_value")]
    lines += fwd_inp + ["", ""]
    lines += [f"def {spec.name}_grad_x_nograd({gsig}):", gdoc.format(f"{spec.name}_grad_x")]
    lines += gx_inp + ["", ""]
    if pnames:
        lines += [f"def {spec.name}_grad_all_nograd({gsig}):", doc.format(f"{spec.name}_grad_all")]
        lines += gall_inp + ["", ""]

    lines += _function_class(spec.name, spec.class_name, pnames, twin)
    lines += _functional_and_module(spec)
    return "\n".join(lines).rstrip() + "\n"


def _function_class(name: str, cname: str, pnames: list[str], twin=None) -> list[str]:
    """The autograd.Function. Its bodies use only fixed names (``x``, ``args``, ``ctx``, ``grad``, ...) and
    module-level helpers (``_``-prefixed): parameter names never appear in them, so none can collide."""
    n = len(pnames)
    lines = [
        f"class {cname}Function(torch.autograd.Function):",
        f'    """Autograd function for {name}: saves only the input and the parameters.',
        "",
        "    ``apply(x, *params[, backend])`` with the parameters in PARAMS order; backend is one of BACKENDS",
        '    (default "eager"). Backward picks the differentiable out-of-place code when autograd records it',
        "    (create_graph=True: double backward).",
        '    """',
        "",
        "    generate_vmap_rule = True",
        "",
        "    @staticmethod",
        "    def forward(x, *args):",
        f"        up = [_upcast(t) for t in (x, *args[:{n}])]" if n else "        up = [_upcast(x)]",
        f'        value = _kernel(args[{n}] if len(args) > {n} else "eager", {name}_value, {name}_value_nograd, *up)',
        "        return _cast(value(*up), x.dtype)",
        "",
        "    @staticmethod",
        "    def setup_context(ctx, inputs, output):",
        f"        ctx.save_for_backward(*inputs[:{n + 1}])",
        f'        ctx.backend = inputs[{n + 1}] if len(inputs) > {n + 1} else "eager"',
        "",
        "    @staticmethod",
        "    def backward(ctx, grad):",
        "        saved = ctx.saved_tensors",
        "        needs = ctx.needs_input_grad",
        "        up = [_upcast(t) for t in saved]",
        "        grad_ = _upcast(grad)",
        f"        tail = (None,) * (len(needs) - {n + 1})",
    ]
    if not pnames:
        lines += [
            "        if not needs[0]:",
            "            return (None, *tail)",
            f"        grad_x = _kernel(ctx.backend, {name}_grad_x, {name}_grad_x_nograd, *up, grad_)",
            "        return (_cast(grad_x(grad_, *up), saved[0].dtype), *tail)",
            "",
            "",
        ]
        return lines + _native_function(name, cname, twin) + _fast_apply(cname, twin)
    lines += [
        f"        if not any(needs[1:{n + 1}]):",
        f"            grad_x = _kernel(ctx.backend, {name}_grad_x, {name}_grad_x_nograd, *up, grad_)",
        f"            return (_cast(grad_x(grad_, *up), saved[0].dtype), *(None,) * {n}, *tail)",
        f"        grad_all = _kernel(ctx.backend, {name}_grad_all, {name}_grad_all_nograd, *up, grad_)",
        "        gx, *gps = grad_all(grad_, *up)",
        "        return (",
        "            _cast(gx, saved[0].dtype) if needs[0] else None,",
        "            *(_reduce(g, p) if need else None for g, p, need in zip(gps, saved[1:], needs[1:])),",
        "            *tail,",
        "        )",
        "",
        "",
    ]
    return lines + _fast_apply(cname)


def _native_function(name: str, cname: str, twin) -> list[str]:
    """A lean Function for the dtypes where PyTorch's fused forward was verified (``NATIVE["value"]``):
    the same math and the same saved tensor (x) as the main Function, with none of its dispatch (per-call
    cost: ~1.3x the native module on 100x100 tensors instead of ~1.7x). Backward is the fused kernel where
    it was verified too and autograd is not recording; else the generated code (double backward)."""
    if twin is None or not _lean_dtypes(twin):
        return []
    grad = twin.twin.grad.format(x="x", g="grad")
    return [
        f"class _{cname}Native(torch.autograd.Function):",
        f'    """{cname}Function on PyTorch\'s fused kernels (see "native" above), for x.dtype in _NATIVE_VALUE."""',
        "",
        "    @staticmethod",
        "    def forward(ctx, x):",
        "        ctx.save_for_backward(x)",
        f"        return {twin.twin.value.format(x='x')}",
        "",
        "    @staticmethod",
        "    def backward(ctx, grad):",
        "        (x,) = ctx.saved_tensors",
        "        if x.dtype in _NATIVE_GRAD and not torch.is_grad_enabled():",
        f"            return {grad}",
        f"        grad_x = _kernel(\"eager\", {name}_grad_x, {name}_grad_x_nograd, x, grad)",
        "        return grad_x(grad, x)",
        "",
        "",
    ]


def _fast_apply(cname: str, twin=None) -> list[str]:
    """An old-style twin of the Function (``Function.apply`` binds setup_context-style signatures with
    ``inspect`` on every call, ~60 us) and ``_apply``, which uses the twin unless a torch.func transform
    needs the setup_context form. With a native twin (parameter-free only), ``_apply`` calls PyTorch's op
    itself for x.dtype in ``_NATIVE`` (f, df/dx and d2f/dx2 all verified: the module *is* that op) and
    the lean native Function for x.dtype in ``_NATIVE_VALUE``."""
    shortcut = []
    if twin is not None and twin.whole_dtypes:
        shortcut += [
            '    if x.dtype in _NATIVE and args[0] == "eager":',
            f"        return {twin.twin.value.format(x='x')}",
        ]
    lean = []
    if twin is not None and _lean_dtypes(twin):
        lean = ['    if x.dtype in _NATIVE_VALUE and args[0] == "eager":', f"        return _{cname}Native.apply(x)"]
    return [
        f"class _{cname}FunctionCtx(torch.autograd.Function):",
        f'    """{cname}Function with an old-style ``forward(ctx, ...)``: same math, cheaper ``apply``."""',
        "",
        "    @staticmethod",
        "    def forward(ctx, x, *args):",
        f"        {cname}Function.setup_context(ctx, (x, *args), None)",
        f"        return {cname}Function.forward(x, *args)",
        "",
        f"    backward = staticmethod({cname}Function.backward)",
        "",
        "",
        "def _apply(x, *args):",
        "    if not (isinstance(x, torch.Tensor) and x.is_floating_point()):",
        "        what = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__",
        f'        raise TypeError(f"{cname} expects a floating-point tensor, got {{what}} (convert it, e.g. x.float())")',
        *shortcut,
        "    if torch._C._are_functorch_transforms_active():",
        f"        return {cname}Function.apply(x, *args)",
        *lean,
        f"    return _{cname}FunctionCtx.apply(x, *args)",
        "",
        "",
    ]


_RUNTIME = '''
def _upcast(t):
    return t.float() if t.dtype in _HALF else t


def _cast(t, dtype):
    """t in dtype (``Tensor.to`` costs ~1.6 us even when there is nothing to do)."""
    return t if t.dtype == dtype else t.to(dtype)


def _reduce(g, p):
    """A parameter gradient summed to the parameter's shape and dtype."""
    return g.sum_to_size(p.shape).to(p.dtype)


def _fast(x, *tensors):
    """True when the in-place (``*_nograd``) code may run: autograd is not recording, no torch.func transform
    or compiler is tracing, and every tensor has x's dtype and broadcasts to x's shape."""
    if torch.is_grad_enabled() or torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active():
        return False
    return all(t.dtype == x.dtype and _broadcasts_to(t.shape, x.shape) for t in tensors)


def _broadcasts_to(shape, target):
    """shape broadcasts to exactly target (cheap: torch.broadcast_shapes costs ~60 us per call)."""
    n = len(shape)
    return n <= len(target) and all(s == 1 or s == t for s, t in zip(shape, target[len(target) - n :]))


def _kernel(backend, fn, fn_nograd, *tensors):
    """What to run: the differentiable ``fn`` when ``_fast`` says no; else ``fn_nograd`` (backend "eager") or
    ``fn`` compiled with torch.compile on first use (backend "compile")."""
    if not _fast(*tensors):
        return fn
    if backend == "compile":
        if fn not in _COMPILED:
            _COMPILED[fn] = torch.compile(fn)
        return _COMPILED[fn]
    return fn_nograd


def _check_backend(backend):
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return backend
'''

_PARAM_RUNTIME = '''
def _as_tensor(p, x):
    return p if isinstance(p, torch.Tensor) else torch.tensor(p, dtype=x.dtype, device=x.device)


def _channel_view(p, x):
    """A (C,) parameter viewed as (1, C, 1, ...) against x; a one-element one as a scalar."""
    if p.numel() == 1:
        return p.reshape(())
    if x.dim() < 2 or x.shape[1] != p.numel():
        raise ValueError(f"per-channel parameter of size {p.numel()} needs input with that many channels in dim 1, got shape {tuple(x.shape)}")
    return p.view([1, -1] + [1] * (x.dim() - 2))


def _init_module(module, num_parameters, learnable, backend, inits):
    """Parameters (learnable) and buffers (fixed) stored under the user's names in the module's own
    dictionaries, so any name works -- even one nn.Module uses for a method (read them with ``_param``)."""
    torch.nn.Module.__init__(module)
    unknown = set(learnable) - set(PARAMS)
    if unknown:
        raise ValueError(f"learnable names unknown parameters {sorted(unknown)}; parameters: {list(PARAMS)}")
    module.num_parameters = num_parameters
    module.backend = _check_backend(backend)
    module._exact = {}  # fixed parameters' values as given (the buffers hold them rounded to their dtype)
    for name, value in inits.items():
        t = torch.full((num_parameters,), float(value))
        if name in learnable:
            module._parameters[name] = torch.nn.Parameter(t)
        else:
            module._buffers[name] = t
            module._exact[name] = float(value)


def _apply_exact(module, fn, recurse):
    """``nn.Module._apply`` (``.double()``, ``.to(...)``), then fixed parameters that still hold their given
    value get it at the new precision: a constant such as SELU's 1.0507009873554805 must not stay rounded to
    float32 in a float64 module."""
    out = torch.nn.Module._apply(module, fn, recurse)
    for name, value in module._exact.items():
        b = module._buffers.get(name)
        if b is not None and b.is_floating_point() and bool((b == torch.tensor(value).float().to(b.dtype)).all()):
            b.fill_(value)
    return out


def _stored(module, name):
    p = module._parameters.get(name)
    return module._buffers[name] if p is None else p


def _param(module, name, x):
    return _channel_view(_stored(module, name), x)


def _extra_repr(module):
    values = ", ".join(f"{n}={_stored(module, n).tolist()}" for n in PARAMS)
    return f"num_parameters={module.num_parameters}, {values}, backend={module.backend}"
'''


def _functional_and_module(spec) -> list[str]:
    name, cname = spec.name, spec.class_name
    pnames = list(spec.params)
    kw = "".join(f", {p}={v.init!r}" for p, v in spec.params.items())
    lines = _RUNTIME.strip("\n").splitlines() + ["", ""]
    if pnames:
        lines += _PARAM_RUNTIME.strip("\n").splitlines() + ["", ""]
    lines += [
        f'def {name}(x{kw}, backend="eager"):',
        f'    """Functional {name}; parameters may be numbers or tensors broadcastable against x."""',
    ]
    args = "".join(f"_as_tensor({p}, x), " for p in pnames)
    lines += [f"    return _apply(x, {args}_check_backend(backend))", "", ""]

    lines += [f"class {cname}(torch.nn.Module):", f'    """{spec.title} as a module.']
    if pnames:
        lines += [
            "",
            "    num_parameters: 1 shares each parameter across the layer; C gives one per channel (dim 1), like",
            "    ``nn.PReLU(num_parameters=C)``. learnable: names of the parameters to train (default: LEARNABLE);",
            "    the others are buffers.",
        ]
    lines += [
        "",
        '    backend: "eager" (in-place torch ops when autograd is not recording) or "compile" (torch.compile of',
        "    the same code, compiled on first use); double backward always runs the differentiable eager code.",
        "    inplace is accepted and ignored (the input is never modified), for timm/torchvision factories.",
    ]
    lines += ['    """', ""]
    if pnames:
        inits = ", ".join(f'"{p}": {p}' for p in pnames)
        views = ", ".join(f'_param(self, "{p}", x)' for p in pnames)
        lines += [
            f'    def __init__(self, num_parameters=1{kw}, learnable=LEARNABLE, backend="eager", inplace=False):',
            f"        _init_module(self, num_parameters, learnable, backend, {{{inits}}})",
            "",
            "    def forward(self, x):",
            f"        return _apply(x, {views}, self.backend)",
            "",
            "    def extra_repr(self):",
            "        return _extra_repr(self)",
            "",
            "    def _apply(self, fn, recurse=True):",
            "        return _apply_exact(self, fn, recurse)",
        ]
    else:
        lines += [
            '    def __init__(self, num_parameters=1, backend="eager", inplace=False):',
            '        """num_parameters and inplace are accepted (and ignored) so every activation module has the same',
            '        interface as nn.PReLU / nn.ReLU (timm and torchvision factories pass inplace=True)."""',
            "        torch.nn.Module.__init__(self)",
            "        self.backend = _check_backend(backend)",
            "",
            "    def forward(self, x):",
            "        return _apply(x, self.backend)",
            "",
            "    def extra_repr(self):",
            '        return f"backend={self.backend}"',
        ]
    return lines
