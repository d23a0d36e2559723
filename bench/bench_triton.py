"""Fused Triton backend vs the alternatives: fwd+bwd time, achieved bandwidth against clone(), peak memory.

Usage: python bench/bench_triton.py [--numel N] [--dtypes float32,bfloat16] [--repeat R]
       [--names silu,mish,gelu,elu,exp2,rational,exponential] [--no-compile] [--json out.json]

Per activation and dtype, all variants are timed in one process on the same tensors, interleaved round by
round (median of R rounds; compare ratios, not absolutes):

  triton             generated fused Triton module (make_module(backend="triton"); CUDA only)
  native             native PyTorch module, where one exists (silu, mish, gelu, elu)
  composite          the activation written with plain torch ops, autograd does the rest
  compile(composite) torch.compile of that composite
  eager              generated eager module (backend="eager")
  compile            generated module with backend="compile"
  autograd.Function  a hand-written eager autograd.Function (exp2: the issue's reference point)

rational and exponential run with their parameter ``a`` learnable (per-layer), so their fused backward also
reduces the parameter gradient. Columns: median fwd+bwd ms; GB/s = the minimal traffic of fwd+bwd (read x,
write y; read x and grad, write grad_x: 5 tensors) over the time; % of the bandwidth of ``x.clone()`` (2
tensors) -- the practical roofline; ratios to native and to compile(composite); peak memory above the
inputs (CUDA: max_memory_allocated; CPU: bytes autograd saves for backward).

Without CUDA the triton row prints "no CUDA: skipped (run on a GPU)" and the rest runs at a smaller default
size (4M elements), which is the CPU table the issue asks for.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import actsym
from actsym.backends import make_module
from actsym.catalog import native_module

ISSUE_NAMES = ["silu", "mish", "gelu", "elu", "exp2", "rational", "exponential"]


def _safe_neg(x):
    return torch.clamp(x, max=0)


class Composite(torch.nn.Module):
    """The activation in plain torch ops (the way one writes it by hand); ``a`` learnable where it has one."""

    FORMS = {
        "silu": lambda x, a: x * torch.sigmoid(x),
        "mish": lambda x, a: x * torch.tanh(torch.nn.functional.softplus(x)),
        "gelu": lambda x, a: 0.5 * x * (1 + torch.erf(x * 0.7071067811865476)),
        "elu": lambda x, a: torch.where(x > 0, x, torch.expm1(_safe_neg(x))),
        "exp2": lambda x, a: torch.where(x >= 0, (1 - torch.exp(-x.clamp(min=0))) * (1 + x), torch.expm1(_safe_neg(x))),
        "rational": lambda x, a: torch.where(x >= 0, x, a * _safe_neg(x) / (a - _safe_neg(x))),
        "exponential": lambda x, a: torch.where(x >= 0, x, torch.exp(a) * _safe_neg(x) / (torch.exp(a) - _safe_neg(x))),
    }

    def __init__(self, name: str):
        super().__init__()
        self.name = name
        params = actsym.get(name).params
        self.a = torch.nn.Parameter(torch.tensor(params["a"].init)) if "a" in params else None

    def forward(self, x):
        a = self.a.to(x.dtype) if self.a is not None else None
        return self.FORMS[self.name](x, a)


class ExP2Function(torch.autograd.Function):
    """A hand-written eager autograd.Function for ExP2 (saves x, recomputes in backward)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x >= 0, (1 - torch.exp(-x)) * (1 + x), torch.exp(x) - 1)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.where(x >= 0, torch.exp(-x) * (1 + x) + 1 - torch.exp(-x), torch.exp(x))


class HandWritten(torch.nn.Module):
    def forward(self, x):
        return ExP2Function.apply(x)


def variants(name: str, device: str, compile_: bool) -> dict:
    """label -> nn.Module (or a string saying why the row is skipped)."""
    out = {}
    if device == "cuda":
        out["triton"] = make_module(name, backend="triton")
    else:
        out["triton"] = "no CUDA: skipped (run on a GPU)"
    native = native_module(name)
    if native is not None:
        out["native"] = native
    out["composite"] = Composite(name)
    if compile_:
        out["compile(composite)"] = torch.compile(Composite(name))
    out["eager"] = make_module(name, backend="eager")
    if compile_:
        out["compile"] = make_module(name, backend="compile")
    if name == "exp2":
        out["autograd.Function"] = HandWritten()
    return {k: v.to(device) if isinstance(v, torch.nn.Module) else v for k, v in out.items()}


class Timer:
    """Median wall time of a callable on CUDA (events) or CPU (perf_counter)."""

    def __init__(self, device: str):
        self.device = device

    def __call__(self, fn) -> float:
        if self.device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end) / 1e3
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t


def fwd_bwd(module, x, g):
    def step():
        x.grad = None
        for p in module.parameters():
            p.grad = None
        module(x).backward(g)

    return step


def peak_bytes(module, x, g, device: str) -> int:
    step = fwd_bwd(module, x, g)
    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    seen: dict[int, int] = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x)
    return sum(seen.values())


def bench_one(name: str, dtype: torch.dtype, numel: int, repeat: int, device: str, compile_: bool) -> dict:
    torch._dynamo.reset()  # fresh compile caches: Composite.forward is one code object (recompile limit 8)
    torch.manual_seed(0)
    x = (torch.randn(numel, device=device) * 3).to(dtype).requires_grad_()
    g = torch.randn(numel, device=device).to(dtype)
    timer = Timer(device)
    mods = variants(name, device, compile_)
    runnable = {k: m for k, m in mods.items() if isinstance(m, torch.nn.Module)}  # parameters stay float32
    steps = {k: fwd_bwd(m, x, g) for k, m in runnable.items()}
    for step in steps.values():  # warm-up (compiles, autotuning)
        step()
        step()
    clone_t, times = [], {k: [] for k in steps}
    for _ in range(repeat):
        clone_t.append(timer(lambda: x.detach().clone()))
        for k, step in steps.items():
            times[k].append(timer(step))
    nbytes = numel * x.element_size()
    clone_gbs = 2 * nbytes / statistics.median(clone_t) / 1e9
    rows = {}
    for k, m in mods.items():
        if not isinstance(m, torch.nn.Module):
            rows[k] = {"skipped": m}
            continue
        t = statistics.median(times[k])
        gbs = 5 * nbytes / t / 1e9
        rows[k] = {"ms": t * 1e3, "GB/s": gbs, "roofline": gbs / clone_gbs, "peak_MB": peak_bytes(m, x, g, device) / 2**20}
    for ref in ("native", "compile(composite)"):
        if ref in rows and "ms" in rows[ref]:
            for r in rows.values():
                if "ms" in r:
                    r[f"x {ref}"] = r["ms"] / rows[ref]["ms"]
    return {"name": name, "dtype": str(dtype)[6:], "numel": numel, "clone_GB/s": clone_gbs, "rows": rows}


def print_table(res: dict) -> None:
    print(f"\n{res['name']}  {res['dtype']}  numel={res['numel']:,}  clone: {res['clone_GB/s']:.0f} GB/s")
    print(f"  {'variant':<20}{'ms':>9}{'GB/s':>9}{'%clone':>8}{'x native':>10}{'x comp(c)':>11}{'peak MB':>9}")
    for k, r in res["rows"].items():
        if "skipped" in r:
            print(f"  {k:<20}{r['skipped']}")
            continue
        xn = f"{r['x native']:.2f}" if "x native" in r else "-"
        xc = f"{r['x compile(composite)']:.2f}" if "x compile(composite)" in r else "-"
        print(f"  {k:<20}{r['ms']:>9.3f}{r['GB/s']:>9.1f}{100 * r['roofline']:>7.0f}%{xn:>10}{xc:>11}{r['peak_MB']:>9.1f}")


def main(argv=None) -> int:
    cuda = torch.cuda.is_available()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--numel", type=int, default=2**26 if cuda else 2**22)
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--names", default=",".join(ISSUE_NAMES))
    ap.add_argument("--repeat", type=int, default=20 if cuda else 5)
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows (slow to compile on CPU)")
    ap.add_argument("--json", help="write the results (with the spec hashes and torch version) here")
    args = ap.parse_args(argv)
    device = "cuda" if cuda else "cpu"
    print(f"device: {torch.cuda.get_device_name() if cuda else 'cpu'}  torch {torch.__version__}")
    if not cuda:
        print("no CUDA: triton rows skipped (run on a GPU); eager/compile rows at numel", f"{args.numel:,}")
    results = []
    for name in args.names.split(","):
        for dt in args.dtypes.split(","):
            res = bench_one(name, getattr(torch, dt), args.numel, args.repeat, device, not args.no_compile)
            res["source_hash"] = actsym.get(name).source_hash
            print_table(res)
            results.append(res)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": device, "torch": torch.__version__, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
