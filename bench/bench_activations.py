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
    if name in COMPOSITES:
        variants["composite"] = COMPOSITES[name]
        if use_compile:
            variants["compile(composite)"] = torch.compile(COMPOSITES[name])
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
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, {args.numel:,} elements, fwd+bwd")
    cols = ["baseline", "generated", "gen(compile)", "native", "composite", "compile(composite)"]
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


if __name__ == "__main__":
    main()
