"""Triton backend: renders one standalone module of fused kernels per activation.

``generated_triton/<name>.py`` imports only ``torch``, ``triton`` and ``triton.language`` and holds

* ``<name>_fwd_kernel``: y = f(x), one pass;
* ``<name>_bwd_kernel``: grad_x = grad * df/dx **and** every parameter gradient in the same pass. A parameter
  gradient is reduced inside the kernel: each program sums its tiles into registers and writes one partial
  sum per row or column of its tile; the host then sums the small partial buffer with ``torch.sum``
  (deterministic: no atomics, the same result on every run);
* ``forward(x, *params)`` / ``backward(grad, x, *params, needs=...)``: launchers (no autograd; that lives in
  :mod:`actsym.codegen.custom_op`).

Safety rules are the eager backend's: the same lowering (:func:`actsym.codegen.lower.lower`: safe Piecewise,
CSE over all outputs) of the same patched derivatives (limits at removable singularities), printed by
:class:`~actsym.codegen.triton_printer.TritonPrinter` with stable primitives; float16/bfloat16 are computed in
float32 and rounded once on store, float64 in float64.

**Layout.** A parameter is per-layer (one element) or per-channel (``C`` elements, channel dim 1 of a
contiguous tensor). The kernels see the input as a row-major matrix ``(M, K)`` tiled by ``(BM, BK)``:

* no per-channel parameter: ``M = 1, K = numel`` (a flat 1-D launch);
* per-channel, spatial size ``INNER = numel/(N*C) >= 32``: ``M = N*C`` planes, ``K = INNER``, channel =
  row % C;
  partial sums per row;
* per-channel, small ``INNER`` (e.g. ``(N, C)`` after a linear layer): ``M = N``, ``K = C*INNER``, channel =
  (col // INNER) % C; partial sums per column, each program looping over ``ITERS`` row tiles so that the partial
  buffer stays a small fraction of the input.
"""

from __future__ import annotations

import sympy as sp

from actsym import __version__
from actsym.codegen.eager import _comment_block
from actsym.codegen.lower import Program, lower
from actsym.codegen.triton_printer import HELPERS, TritonPrinter, UnsupportedNode, helper_closure  # noqa: F401 (re-exported)
from actsym.derivation import Derivation

GENERATOR = f"actsym {__version__} triton/1"
HEADER_WIDTH = 106

def _program_lines(prog: Program, printer: TritonPrinter, indent: str) -> list[str]:
    return [f"{indent}{name} = {printer.doprint(e)}" for name, e in prog.assignments]


def _output(prog: Program, name: str, printer: TritonPrinter, tile: bool) -> str:
    """An output's code; a tile-independent one (f = const) is broadcast to the tile."""
    e = dict(prog.outputs)[name]
    code = printer.doprint(e)
    return code if tile else f"{code} + tl.zeros((BM, BK), COMPUTE)"


def _depends_on_tile(prog: Program, name: str, tile_symbols: set[str]) -> bool:
    """Whether output ``name`` depends (through the assignments) on x or grad."""
    deps = {s.name for s in dict(prog.outputs)[name].free_symbols}
    assigned = dict(prog.assignments)
    changed = True
    while changed:
        changed = False
        for a in list(deps):
            if a in assigned:
                new = {s.name for s in assigned[a].free_symbols} - deps
                if new:
                    deps |= new
                    changed = True
    return bool(deps & tile_symbols)


def kernel_name(p: str) -> str:
    """A parameter's name inside the kernels: ``p_<name>`` (injective, and no fixed kernel name starts
    with ``p_``), so no user name can collide with the kernels' own (``M``, ``grad``, ``acc_*``, ``*_ptr``)."""
    return f"p_{p}"


def programs(d: Derivation) -> tuple[Program, Program]:
    """(forward, backward) programs: the lowering the eager backend uses, backward with all outputs, over
    the kernel names of the parameters."""
    x, pnames = d.x, list(d.spec.params)
    rename = {sp.Symbol(p, real=True): sp.Symbol(kernel_name(p), real=True) for p in pnames}
    init_subs = {rename[s]: v for s, v in d.init_subs().items()}
    grad = sp.Symbol("grad", real=True)
    patched = {k: e.xreplace(rename) for k, e in d.patched.items()}
    fwd = lower([("y", patched["f"])], x, init_subs)
    bwd = lower([("gx", patched["x"]), *[(f"g_{kernel_name(p)}", patched[p]) for p in pnames]], x, init_subs,
                scale=grad)
    return fwd, bwd


def render(d: Derivation) -> str:
    """The complete source of ``generated_triton/<name>.py``; raises UnsupportedNode if any node of
    f or its derivatives has no Triton translation."""
    spec = d.spec
    name = spec.name
    pnames = list(spec.params)
    knames = [kernel_name(p) for p in pnames]
    fwd, bwd = programs(d)
    printer = TritonPrinter()
    fwd_body = _program_lines(fwd, printer, "    ")
    y_code = _output(fwd, "y", printer, _depends_on_tile(fwd, "y", {"x"}))
    bwd_body = _program_lines(bwd, printer, "        ")
    out_code = {n: _output(bwd, n, printer, True) for n, _ in bwd.outputs}
    helpers = helper_closure(printer.helpers)
    hsh = spec.source_hash(GENERATOR)

    lines = ["# " + "-" * (HEADER_WIDTH - 2)]
    lines += [f"# GENERATED by {GENERATOR} -- do not edit by hand. Regenerate: actsym codegen --all"]
    lines += _comment_block("activation", f"{name} (class {spec.class_name}) -- {spec.title}")
    lines += _comment_block("source", spec.source)
    if pnames:
        desc = ", ".join(f"{k} = {v.init!r} ({'learnable' if v.learnable else 'fixed'})" for k, v in spec.params.items())
        lines += _comment_block("params", desc)
    lines += ["#", "# The math (the kernels below compute exactly these, under these names):"]
    lines += _comment_block("y = f(x)", sp.sstr(d.f))
    lines += _comment_block("gx", "grad * df/dx = grad * " + sp.sstr(d.grads["x"]))
    for p in pnames:
        lines += _comment_block(f"g_{p}", f"sum over x (per channel) of grad * df/d{p} = grad * " + sp.sstr(d.grads[p]))
    for key, pts in d.removable.items():
        lines += _comment_block("limits", f"{key}: removable singularity at x = {pts} -> Taylor patch")
    lines += _comment_block("ops", f"forward {fwd.op_count()}, backward {bwd.op_count()} (after CSE)")
    lines += _comment_block("hash", hsh)
    lines += ["# " + "-" * (HEADER_WIDTH - 2)]
    lines += [f'"""{spec.title}: fused Triton kernels (forward; backward = grad_x and parameter grads in one pass)."""']
    lines += ["", "import torch", "import triton", "import triton.language as tl", ""]
    lines += [f'NAME = "{name}"', f'SOURCE_HASH = "{hsh}"', f"PARAMS = {tuple(pnames)!r}"]
    lines += ["BLOCK = 1024  # elements per tile", "NUM_WARPS = 4", "MIN_PROGRAMS = 2048  # backward: fewer row loops below this"]
    lines += ["", ""]
    for h in helpers:
        comment, src = HELPERS[h]
        lines += [f"# {comment}"] + src.rstrip("\n").splitlines() + ["", ""]
    lines += _RUNTIME_KERNELS.strip("\n").splitlines() + ["", ""]
    lines += _fwd_kernel(name, knames, fwd_body, y_code) + ["", ""]
    lines += _bwd_kernel(name, knames, bwd_body, out_code) + ["", ""]
    lines += _RUNTIME_HOST.strip("\n").splitlines() + ["", ""]
    lines += _launchers(name, pnames)
    return "\n".join(lines).rstrip() + "\n"


def _fwd_kernel(name: str, pnames: list[str], body: list[str], y_code: str) -> list[str]:
    ptrs = "".join(f"{p}_ptr, " for p in pnames)
    flags = "".join(f"PC_{p}: tl.constexpr, " for p in pnames)
    lines = [
        "@triton.jit",
        f"def {name}_fwd_kernel(x_ptr, {ptrs}y_ptr, M, K, C, INNER, NK, {flags}AXIS: tl.constexpr,",
        "        BM: tl.constexpr, BK: tl.constexpr, INDEX64: tl.constexpr, COMPUTE: tl.constexpr):",
        '    """y = f(x) on one (BM, BK) tile."""',
        "    _offs, _valid, _ch = _tile(tl.program_id(0), 0, NK, M, K, C, INNER, AXIS, 1, BM, BK, INDEX64)",
        "    x = tl.load(x_ptr + _offs, mask=_valid, other=0.0).to(COMPUTE)",
    ]
    lines += [f"    {p} = _param({p}_ptr, _ch, PC_{p}, COMPUTE)" for p in pnames]
    lines += body
    lines += [f"    y = {y_code}", "    tl.store(y_ptr + _offs, y.to(y_ptr.dtype.element_ty), mask=_valid)"]
    return lines


def _bwd_kernel(name: str, pnames: list[str], body: list[str], out_code: dict[str, str]) -> list[str]:
    ptrs = "".join(f"{p}_ptr, " for p in pnames)
    parts = "".join(f"g_{p}_ptr, " for p in pnames)
    flags = "".join(f" PC_{p}: tl.constexpr, NEED_{p}: tl.constexpr," for p in pnames)
    lines = [
        "@triton.jit",
        f"def {name}_bwd_kernel(grad_ptr, x_ptr, {ptrs}gx_ptr, {parts}M, K, C, INNER, NK, NEED_X: tl.constexpr,{flags}",
        "        AXIS: tl.constexpr, ITERS: tl.constexpr, BM: tl.constexpr, BK: tl.constexpr, INDEX64: tl.constexpr,",
        "        COMPUTE: tl.constexpr):",
        '    """gx = grad * df/dx on ITERS tiles; each g_<p> summed over them into one partial per tile row/column."""',
        "    _pid = tl.program_id(0)",
    ]
    lines += [f"    acc_{p} = tl.zeros((BM, BK), COMPUTE)" for p in pnames]
    lines += [
        "    for _it in range(ITERS):",
        "        _offs, _valid, _ch = _tile(_pid, _it, NK, M, K, C, INNER, AXIS, ITERS, BM, BK, INDEX64)",
        "        x = tl.load(x_ptr + _offs, mask=_valid, other=0.0).to(COMPUTE)",
        "        grad = tl.load(grad_ptr + _offs, mask=_valid, other=0.0).to(COMPUTE)",
    ]
    lines += [f"        {p} = _param({p}_ptr, _ch, PC_{p}, COMPUTE)" for p in pnames]
    lines += body
    lines += [
        "        if NEED_X:",
        f"            gx = {out_code['gx']}",
        "            tl.store(gx_ptr + _offs, gx.to(gx_ptr.dtype.element_ty), mask=_valid)",
    ]
    for p in pnames:
        lines += [f"        if NEED_{p}:", f"            acc_{p} += tl.where(_valid, {out_code['g_' + p]}, 0.0)"]
    for p in pnames:
        lines += [f"    if NEED_{p}:", f"        _store_partial(g_{p}_ptr, acc_{p}, _pid, NK, M, K, AXIS, BM, BK, INDEX64)"]
    return lines


_RUNTIME_KERNELS = '''
@triton.jit
def _tile(pid, it, NK, M, K, C, INNER, AXIS: tl.constexpr, ITERS: tl.constexpr, BM: tl.constexpr, BK: tl.constexpr,
          INDEX64: tl.constexpr):
    """Flat offsets, validity and channel index of tile ``it`` of program ``pid`` over the (M, K) matrix.
    Programs are numbered row-major over (rows of programs, NK columns of programs); each covers ITERS
    consecutive tiles along the reduced axis (rows when AXIS == 0, columns when AXIS == 1)."""
    pm = pid // NK
    pk = pid % NK
    if AXIS == 0:
        pm = pm * ITERS + it
    else:
        pk = pk * ITERS + it
    if INDEX64:
        pm = pm.to(tl.int64)
        pk = pk.to(tl.int64)
    rows = pm * BM + tl.arange(0, BM)[:, None]
    cols = pk * BK + tl.arange(0, BK)[None, :]
    valid = (rows < M) & (cols < K)
    if AXIS == 0:
        ch = (cols // INNER) % C
    else:
        ch = rows % C
    return rows * K + cols, valid, ch


@triton.jit
def _param(p_ptr, ch, PER_CHANNEL: tl.constexpr, COMPUTE: tl.constexpr):
    """A parameter: one value (per-layer) or one per tile row/column (per-channel)."""
    if PER_CHANNEL:
        return tl.load(p_ptr + ch).to(COMPUTE)
    else:
        return tl.load(p_ptr).to(COMPUTE)


@triton.jit
def _store_partial(p_ptr, acc, pid, NK, M, K, AXIS: tl.constexpr, BM: tl.constexpr, BK: tl.constexpr,
                   INDEX64: tl.constexpr):
    """Write a program's accumulated (BM, BK) tile as partial sums: per column into the (programs rows, K)
    buffer when AXIS == 0, per row into the (M, NK) buffer when AXIS == 1."""
    pm = pid // NK
    pk = pid % NK
    if INDEX64:
        pm = pm.to(tl.int64)
        pk = pk.to(tl.int64)
    if AXIS == 0:
        cols = pk * BK + tl.arange(0, BK)
        tl.store(p_ptr + pm * K + cols, tl.sum(acc, axis=0), mask=cols < K)
    else:
        rows = pm * BM + tl.arange(0, BM)
        tl.store(p_ptr + rows * NK + pk, tl.sum(acc, axis=1), mask=rows < M)
'''

_RUNTIME_HOST = '''
_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _compute(dtype):
    if dtype not in _DTYPES:
        raise TypeError(f"{NAME}: Triton kernels take float16/bfloat16/float32/float64 inputs, got {dtype}")
    return tl.float64 if dtype == torch.float64 else tl.float32


def _flat_params(x, params):
    """Each parameter as a contiguous 1-D tensor and whether it is per-channel (one value per x.shape[1])."""
    flat, per_channel = [], []
    for p in params:
        p = p.reshape(-1).contiguous()
        if p.numel() != 1 and (x.dim() < 2 or p.numel() != x.shape[1]):
            raise ValueError(f"{NAME}: parameter of size {p.numel()} needs one element or one per channel "
                             f"(dim 1) of the input, got input shape {tuple(x.shape)}")
        flat.append(p)
        per_channel.append(p.numel() != 1)
    return flat, per_channel


def _layout(x, per_channel, block):
    """(M, K, C, I, AXIS, BM, BK): the (M, K) matrix view of x, its channel mapping and the tile shape."""
    n = x.numel()
    if not any(per_channel):
        m, k, c, i, axis = 1, n, 1, 1, 1
    else:
        c = x.shape[1]
        i = n // (x.shape[0] * c)
        m, k, axis = (x.shape[0] * c, i, 1) if i >= 32 else (x.shape[0], c * i, 0)
    bk = min(triton.next_power_of_2(k), block)
    bm = min(max(1, block // bk), triton.next_power_of_2(m))
    return m, k, c, i, axis, bm, bk


def _grid(m, k, axis, bm, bk, iters):
    """(programs, NK): programs over row-tiles x column-tiles, ITERS tiles each along the reduced axis."""
    nm = triton.cdiv(m, bm * (iters if axis == 0 else 1))
    nk = triton.cdiv(k, bk * (iters if axis == 1 else 1))
    return nm * nk, nk


def _iters(m, k, axis, bm, bk, min_programs):
    """Row tiles per backward program (AXIS 0): up to 64 rows per program while enough programs remain."""
    iters = 1
    while axis == 0 and bm * iters * 2 <= 64 and _grid(m, k, axis, bm, bk, iters * 2)[0] >= min_programs:
        iters *= 2
    return iters


def _reduce(partial, p, per_channel, axis, c, i):
    """Sum a partial buffer to a parameter's gradient (deterministic torch.sum), in the parameter's shape."""
    if not per_channel:
        g = partial.sum()
    elif axis == 1:  # (M = N*C, NK) per-row partials
        g = partial.view(-1, c, partial.shape[1]).sum(dim=(0, 2))
    else:  # (programs rows, K = C*I) per-column partials
        g = partial.view(partial.shape[0], c, i).sum(dim=(0, 2))
    return g.to(p.dtype).reshape(p.shape)
'''


def _launchers(name: str, pnames: list[str]) -> list[str]:
    """Host launchers; parameters are positional (``*raw``, PARAMS order), so their names never meet the
    launchers' own locals."""
    lines = [
        "def forward(x, *raw, block=BLOCK, num_warps=NUM_WARPS):",
        '    """y = f(x) with the fused forward kernel (x on a device Triton runs on; parameters: tensors of one',
        '    element or one per channel)."""',
        "    compute = _compute(x.dtype)",
        "    x = x.contiguous()",
        "    params, per_channel = _flat_params(x, raw)",
        "    y = torch.empty_like(x)",
        "    if x.numel() == 0:",
        "        return y",
        "    m, k, c, i, axis, bm, bk = _layout(x, per_channel, block)",
        "    programs, nk = _grid(m, k, axis, bm, bk, 1)",
        f"    {name}_fwd_kernel[(programs,)](",
        "        x, *params, y, m, k, c, i, nk, *per_channel, AXIS=axis, BM=bm, BK=bk,",
        "        INDEX64=x.numel() >= 2**31 - 2 * block, COMPUTE=compute, num_warps=num_warps)",
        "    return y",
        "",
        "",
        "def backward(grad, x, *raw, needs=None, block=BLOCK, num_warps=NUM_WARPS, min_programs=MIN_PROGRAMS):",
        '    """(grad_x, *param grads) in one fused pass; ``needs`` (default all True) says which to compute, the',
        '    others are None. Parameter gradients have the parameters\' shapes and dtypes."""',
        "    compute = _compute(x.dtype)",
        "    needs = tuple(needs) if needs is not None else (True,) * (1 + len(raw))",
        "    x, grad = x.contiguous(), grad.contiguous().to(x.dtype)",
        "    params, per_channel = _flat_params(x, raw)",
        "    gx = torch.empty_like(x) if needs[0] else None",
        "    if x.numel() == 0:",
        "        return (gx, *(torch.zeros_like(p) if need else None for p, need in zip(raw, needs[1:])))",
        "    m, k, c, i, axis, bm, bk = _layout(x, per_channel, block)",
        "    iters = _iters(m, k, axis, bm, bk, min_programs) if any(needs[1:]) else 1",
        "    programs, nk = _grid(m, k, axis, bm, bk, iters)",
        "    shape = (programs // nk, k) if axis == 0 else (m, nk)",
        "    torch_compute = torch.float64 if compute == tl.float64 else torch.float32",
        "    partials = [torch.empty(shape, dtype=torch_compute, device=x.device) if need else x for need in needs[1:]]",
        "    flags = [flag for pc, need in zip(per_channel, needs[1:]) for flag in (pc, need)]",
        f"    {name}_bwd_kernel[(programs,)](",
        "        grad, x, *params, gx if needs[0] else x, *partials, m, k, c, i, nk, needs[0], *flags,",
        "        AXIS=axis, ITERS=iters, BM=bm, BK=bk, INDEX64=x.numel() >= 2**31 - 2 * block * iters,",
        "        COMPUTE=compute, num_warps=num_warps)",
        "    grads = [",
        "        _reduce(part, p, pc, axis, c, i) if need else None",
        "        for part, p, pc, need in zip(partials, raw, per_channel, needs[1:])",
        "    ]",
        "    return (gx, *grads)",
    ]
    return lines
