"""Forward+backward time and saved-tensor memory: generated vs native vs naive composite vs torch.compile.

Usage: python bench/bench_activations.py [--numel 16777216] [--repeat 5] [--names silu,mish,elu,gelu,exp2]
       [--no-compile] [--baseline DIR] [--json out.json]

All variants of one activation are timed side by side in the same process, interleaved round by round, and
the table reports the median time of each plus ratios (machines are noisy; compare ratios, not absolutes).
Variants: the generated module with backend="eager" (in-place code when autograd is off) and
backend="compile" (torch.compile of the generated code, compiled during warm-up), the native module, the
naive composite and torch.compile(composite). ``--baseline DIR`` adds the generated modules found in DIR
(e.g. an older ``generated/``) as "baseline", for before/after tables measured in one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import actsym
from actsym.activation import load_source
from actsym.catalog import native_module

#: The "naive composite": how one would write the activation with plain torch ops and let autograd do the rest.
COMPOSITES = {
    "silu": lambda x: x * torch.sigmoid(x),
    "mish": lambda x: x * torch.tanh(torch.log1p(torch.exp(x))),
    "elu": lambda x: torch.where(x > 0, x, torch.exp(x) - 1),
    "gelu": lambda x: 0.5 * x * (1 + torch.erf(x / 2**0.5)),
    "exp2": lambda x: torch.where(x >= 0, (1 - torch.exp(-x)) * (1 + x), torch.exp(x) - 1),
    "swish": lambda x: x * torch.sigmoid(1.0 * x),
    "rational": lambda x: torch.where(x >= 0, x, 1.0 * x / (1.0 - x)),
}


def _floats(e):
    """Numeric subexpressions (sqrt(2)) as floats: SymPy's torch printer passes them to torch as Python numbers."""
    return e.replace(lambda t: t.is_number and not t.is_Atom, lambda t: t.evalf(17))


def naive_pair(name: str):
    """(f, df/dx) as plain torch code lambdified from the *source* expression (parameters at their initial
    values) and its plain SymPy derivative (Dirac deltas dropped): what a researcher writes by hand."""
    import sympy as sp

    from actsym.derive import _plain

    spec = actsym.get(name).spec
    e = _floats(_plain(spec.expr).subs({p: spec.params[p.name].init for p in spec.param_symbols}))
    d = sp.diff(e, spec.x).replace(lambda t: isinstance(t, sp.DiracDelta), lambda t: sp.S.Zero)
    return sp.lambdify(spec.x, e, modules="torch"), sp.lambdify(spec.x, _floats(d), modules="torch")


def seed_function(name: str):
    """A "seed-style" hand-written autograd.Function (the reference articles' pattern): forward computes f
    with torch ops and saves x, backward computes grad * df/dx with torch ops."""
    f, df = naive_pair(name)

    class Seed(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return f(x)

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * df(x)

    return Seed.apply


def saved_bytes(fn, x) -> int:
    """Bytes of distinct tensors autograd saves for backward when running fn(x)."""
    seen: dict[int, int] = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(x)
    return sum(seen.values())


def fwd_bwd(fn, x, g):
    x.grad = None
    y = fn(x)
    y.backward(g)


def baseline_module(name: str, directory: str):
    path = Path(directory) / f"{name}.py"
    if not path.exists():
        return None
    act = actsym.get(name)
    return getattr(load_source(path.read_text(), f"baseline_{name}"), act.class_name)()


def bench_one(name: str, numel: int, repeat: int, use_compile: bool, baseline: str | None = None) -> dict:
    torch.manual_seed(0)
    x = (torch.randn(numel) * 3).requires_grad_(True)
    g = torch.randn(numel)
    variants = {"generated": actsym.get(name).module()}
    if use_compile:
        variants["gen(compile)"] = actsym.get(name).module(backend="compile")
    if baseline and baseline_module(name, baseline) is not None:
        variants["baseline"] = baseline_module(name, baseline)
    native = native_module(name)
    if native is not None:
        variants["native"] = native
    composite = COMPOSITES.get(name)
    if composite is None:
        try:
            composite = naive_pair(name)[0]
        except Exception:  # noqa: BLE001 - SymPy's torch printer lacks a function: no composite column
            composite = None
    if composite is not None:
        variants["composite"] = composite
        if use_compile:
            variants["compile(composite)"] = torch.compile(composite)
    try:
        variants["seed Function"] = seed_function(name)
    except Exception:  # noqa: BLE001 - as above
        pass
    times: dict[str, list[float]] = {k: [] for k in variants}
    for fn in variants.values():  # warm-up (and compilation)
        fwd_bwd(fn, x, g)
    for _ in range(repeat):
        for k, fn in variants.items():
            t0 = time.perf_counter()
            fwd_bwd(fn, x, g)
            times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    mem = {k: saved_bytes(fn, x) for k, fn in variants.items() if "compile" not in k}
    return {"name": name, "numel": numel, "median_s": med, "saved_bytes": mem}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--numel", type=int, default=1 << 24)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--names", default="silu,mish,elu,gelu,exp2")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--baseline", help="directory of older generated modules to time as 'baseline'")
    ap.add_argument("--threads", type=int, help="torch.set_num_threads (1 avoids thread-pool stalls on a busy machine)")
    ap.add_argument("--json")
    ap.add_argument("--markdown", help="write the table (with machine, versions and command) to this file")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, {args.numel:,} elements, fwd+bwd")
    cols = ["baseline", "generated", "gen(compile)", "native", "composite", "compile(composite)", "seed Function"]
    heads = {"compile(composite)": "compile(c)"}
    header = f"{'activation':<10} " + " ".join(f"{heads.get(c, c):>12}" for c in cols)
    header += f"  {'gen/native':>10} {'composite/gen':>13} {'cgen/native':>11}  saved MB gen/native/composite"
    print(header)
    rows = []
    for name in args.names.split(","):
        r = bench_one(name, args.numel, args.repeat, not args.no_compile, args.baseline)
        rows.append(r)
        m, mem = r["median_s"], r["saved_bytes"]

        def ms(k, m=m):
            return f"{m[k] * 1e3:10.1f}ms" if k in m else f"{'-':>12}"

        def ratio(a, b, width, m=m):
            return f"{m[a] / m[b]:{width}.2f}" if a in m and b in m else f"{'-':>{width}}"

        mbs = "/".join(f"{mem[k] / 2**20:.0f}" if k in mem else "-" for k in ("generated", "native", "composite"))
        print(
            f"{name:<10} " + " ".join(ms(c) for c in cols)
            + f"  {ratio('generated', 'native', 10)} {ratio('composite', 'generated', 13)}"
            + f" {ratio('gen(compile)', 'native', 11)}  {mbs}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    if args.markdown:
        write_markdown(Path(args.markdown), rows, cols, args, argv)


def write_markdown(path: Path, rows: list[dict], cols: list[str], args, argv) -> None:
    """docs/benchmarks.md: median times and the ratios to the native module and to the generated default,
    all measured side by side in this one run."""
    import os
    import platform
    import sys

    command = "python bench/bench_activations.py " + " ".join(argv if argv is not None else sys.argv[1:])
    cpu = platform.processor() or platform.machine()
    lines = [
        "# Benchmarks: forward + backward of one activation",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} with `{command}` on {cpu}, {os.cpu_count()} cores, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}, Python {platform.python_version()}; "
        f"float32, {args.numel:,} elements, median of {args.repeat} interleaved rounds. All variants of a row were "
        "timed side by side in the same process (machines are noisy: compare ratios, not absolute times).",
        "",
        "Variants: *generated* = the default module (`actsym.get(name).module()`), *gen(compile)* = "
        "`backend=\"compile\"`, *native* = PyTorch's own module, *composite* = plain torch ops with autograd, "
        "*compile(composite)* = `torch.compile` of it, *seed Function* = a hand-written `autograd.Function` "
        "(forward and hand-derived backward in plain torch ops, saving x: the reference articles' pattern).",
        "",
        "| activation | " + " | ".join(f"{c} (ms)" for c in cols if any(c in r["median_s"] for r in rows))
        + " | generated / native | seed / generated | generated / compile(composite) |",
    ]
    used = [c for c in cols if any(c in r["median_s"] for r in rows)]
    lines.append("|" + "---|" * (len(used) + 4))

    def ratio(m, a, b):
        return f"{m[a] / m[b]:.2f}" if a in m and b in m else "–"

    for r in rows:
        m = r["median_s"]
        cells = [f"{m[c] * 1e3:.1f}" if c in m else "–" for c in used]
        lines.append(f"| {r['name']} | " + " | ".join(cells) + f" | {ratio(m, 'generated', 'native')} | "
                     f"{ratio(m, 'seed Function', 'generated')} | {ratio(m, 'generated', 'compile(composite)')} |")
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
