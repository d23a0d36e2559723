"""Accuracy table (issue 10): bits of error of every generated function of the catalog (and the literature
corpus when it is present) over the whole float range, float32 and float64, measured with actsym.accuracy
(log-uniform sampling of magnitudes, 40+-digit mpmath reference of the user's expression).

    python bench/accuracy.py [--points 300] [--names a,b] [--corpus] [--out docs/accuracy.md]

Columns per dtype: mean / max bits of error of f, df/dx, df/dp (worst over the parameters), and the number
of points where the result is inf/NaN although the exact value is finite and representable.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

import actsym
from actsym.accuracy import measure
from actsym.properties import boundaries


def row(act, n: int) -> list[str]:
    cells = [act.name]
    for dtype in (torch.float32, torch.float64):
        r = measure(act, dtype, n=n, branch_points=boundaries(act))
        f, gx, *gp = r.functions
        cells += [f"{f.mean_bits:.2f} / {f.max_bits:.0f}", f"{gx.mean_bits:.2f} / {gx.max_bits:.0f}"]
        cells.append(" ".join(f"{g.what[2:]} {g.mean_bits:.2f}/{g.max_bits:.0f}" for g in gp) or "–")
        cells.append(str(r.nonfinite))
    return cells


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=300)
    ap.add_argument("--names", default="")
    ap.add_argument("--corpus", action="store_true", help="also the literature corpus (actsym.corpus_names())")
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    names = [n for n in args.names.split(",") if n] or list(actsym.names())
    if args.corpus and hasattr(actsym, "corpus_names"):
        names += list(actsym.corpus_names())
    head = ["activation", "f32 f", "f32 f'", "f32 df/dp", "f32 non-finite", "f64 f", "f64 f'", "f64 df/dp",
            "f64 non-finite"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    t0 = time.perf_counter()
    for n in names:
        try:
            cells = row(actsym.get(n), args.points)
        except Exception as e:  # noqa: BLE001 - a refused entry is a row, not a crash
            cells = [n, f"refused: {(str(e).splitlines() or [type(e).__name__])[0][:80]}"] + [""] * (len(head) - 2)
        lines.append("| " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    meta = (f"Measured {time.strftime('%Y-%m-%d')} with `python bench/accuracy.py --points {args.points}` on "
            f"{platform.machine()}, torch {torch.__version__}, Python {platform.python_version()} "
            f"({time.perf_counter() - t0:.0f} s). Cells: mean / max bits of error (0 = exact; 53 = no correct "
            "bit in float64, 24 in float32); non-finite: points where the result is inf/NaN but the exact "
            "value is finite and representable.")
    if args.out:
        text = "# Accuracy of the generated code\n\n" + meta + "\n\n" + "\n".join(lines) + "\n"
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
