"""``actsym plot``, ``signal``, ``toy2d``: pictures and signal propagation (:mod:`actsym.viz`,
:mod:`actsym.analysis`; matplotlib and scipy are imported only when a command runs)."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from actsym.cli.common import UsageError, activation_from_args, add_activation_arguments

# ------------------------------------------------------------------------------------------------------
# ``actsym plot NAME|EXPR [--range LO HI] [--format png --format svg] [--values b=0.5,1,2] --out DIR``
# ------------------------------------------------------------------------------------------------------


def add_plot_arguments(parser) -> None:
    from actsym.viz.plots import FORMATS

    add_activation_arguments(parser, "catalog name or expression in x")
    parser.add_argument("--range", nargs=2, type=float, default=(-5.0, 5.0), metavar=("LO", "HI"),
                        help="x range (default -5 5)")
    parser.add_argument("--format", action="append", choices=FORMATS, help="png, svg, pdf (default png and svg)")
    parser.add_argument("--values", action="append", metavar="K=V1,V2,...",
                        help="values of a learnable parameter for the ∂f/∂θ row (repeatable)")
    parser.add_argument("--dpi", type=int, default=130)
    parser.add_argument("--out", default="out/plots", help="output directory (default out/plots)")


def _parse_values(items) -> dict[str, list[float]]:
    out = {}
    for item in items or []:
        key, sep, rest = item.partition("=")
        try:
            vals = [float(v) for v in rest.split(",") if v.strip()]
        except ValueError:
            vals = []
        if not sep or not key or not vals or not all(math.isfinite(v) for v in vals):
            raise UsageError(f"--values expects NAME=V1,V2,... with numbers, got {item!r}")
        out[key.strip()] = vals
    return out


def cmd_plot(args) -> int:
    lo, hi = args.range
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise UsageError(f"--range needs finite LO < HI, got {lo:g} {hi:g}")
    if args.dpi <= 0 or args.dpi > 1200:
        raise UsageError("--dpi must be in 1..1200")
    values = _parse_values(args.values)
    from actsym.viz.plots import plot_activation

    act = activation_from_args(args)
    learnable = [k for k, p in act.params.items() if p.learnable]
    unknown = set(values) - set(learnable)
    if unknown:
        raise UsageError(f"--values: {act.name} has no learnable parameter {sorted(unknown)[0]!r}")
    for path in plot_activation(act, args.out, (lo, hi), tuple(args.format or ("png", "svg")), values, args.dpi):
        print(f"wrote {path}")
    return 0


# ------------------------------------------------------------------------------------------------------
# ``actsym signal NAME|EXPR [--no-symbolic] [--edge-of-chaos] [--sigma-b2 S]``
# ------------------------------------------------------------------------------------------------------


def add_signal_arguments(parser) -> None:
    add_activation_arguments(parser, "catalog name or expression in x")
    parser.add_argument("--no-symbolic", action="store_true", help="skip the exact SymPy integrals")
    parser.add_argument("--edge-of-chaos", action="store_true",
                        help="also search the σ_w² with χ(q*) = 1 (for σ_b² = 0, or --sigma-b2)")
    parser.add_argument("--sigma-b2", type=float, default=None, metavar="S",
                        help="bias variance for the edge-of-chaos search (implies --edge-of-chaos)")


def cmd_signal(args) -> int:
    if args.sigma_b2 is not None and not (args.sigma_b2 >= 0 and math.isfinite(args.sigma_b2)):
        raise UsageError("--sigma-b2 must be a finite number >= 0")
    from actsym.analysis.signal import critical_sigma_w2, fixed_point, format_signal_report, signal_report

    act = activation_from_args(args)
    print(format_signal_report(signal_report(act, symbolic=not args.no_symbolic)), end="")
    if args.edge_of_chaos or args.sigma_b2 is not None:
        sb2 = args.sigma_b2 or 0.0
        crit = critical_sigma_w2(act, sb2)
        if crit is None:
            print(f"  edge of chaos    none for σ_w² in [0.05, 20] at σ_b² = {sb2:g}")
        else:
            fp = fixed_point(act, crit, sb2)
            print(f"  edge of chaos    σ_w² = {crit:.6g} (σ_w = {math.sqrt(crit):.6g}) at σ_b² = {sb2:g}, "
                  f"q* = {fp.q:.6g}")
    return 0


# ------------------------------------------------------------------------------------------------------
# ``actsym toy2d ACT [--layers 3 --units 3 --epochs N --seed S --dataset rings] --out DIR``
# ------------------------------------------------------------------------------------------------------


def add_toy2d_arguments(parser) -> None:
    from actsym.viz.toy2d import DATASETS, SETTINGS

    parser.add_argument("activation", metavar="ACT",
                        help="catalog name, expression in x, softmax, or normalized:<g> (vector activations)")
    parser.add_argument("--layers", type=int, default=3, help="hidden layers (default 3)")
    parser.add_argument("--units", type=int, default=3, choices=(2, 3), help="units per hidden layer (2 or 3)")
    parser.add_argument("--epochs", type=int, default=1500, help="full-batch Adam steps (default 1500)")
    parser.add_argument("--seed", type=int, action="append", help="seed (repeatable: one run per seed)")
    parser.add_argument("--dataset", choices=DATASETS, default=SETTINGS["dataset"])
    parser.add_argument("--lr", type=float, default=SETTINGS["lr"])
    parser.add_argument("--no-animation", action="store_true", help="train and write final.png/summary only")
    parser.add_argument("--grid-only", action="store_true",
                        help="no training: only the activation-on-the-plane animation (activation_grid.gif)")
    parser.add_argument("--fps", type=int, default=8)
    parser.add_argument("--frames", type=int, default=24, help="frames of the --grid-only animation (default 24)")
    parser.add_argument("--out", default="out/toy2d", help="output directory (default out/toy2d)")


def cmd_toy2d(args) -> int:
    if not 1 <= args.layers <= 8:
        raise UsageError("--layers must be in 1..8")
    if not 1 <= args.epochs <= 200_000:
        raise UsageError("--epochs must be in 1..200000")
    if not (args.lr > 0 and math.isfinite(args.lr)):
        raise UsageError("--lr must be a positive number")
    if not 1 <= args.fps <= 60:
        raise UsageError("--fps must be in 1..60")
    if args.grid_only:
        from actsym.viz.animate import animate_activation_grid, mp4_available

        if not 2 <= args.frames <= 500:
            raise UsageError("--frames must be in 2..500")
        for fmt, path in animate_activation_grid(args.activation, Path(args.out) / "activation_grid",
                                                 frames=args.frames, hold=min(6, args.frames // 4),
                                                 fps=args.fps).items():
            if path:
                print(f"wrote {path}")
            elif fmt == "mp4" and not mp4_available():
                print("note: MP4 skipped: ffmpeg not found on PATH (GIF written)")
        return 0
    from actsym.viz.toy2d import toy2d

    seeds = args.seed or [0]
    accs = []
    for seed in seeds:
        out = Path(args.out) / (f"seed{seed}" if len(seeds) > 1 else "")
        s = toy2d(args.activation, args.layers, args.units, args.epochs, out, seed, args.dataset,
                  animate=not args.no_animation, fps=args.fps, lr=args.lr)
        accs.append(s["test_acc"])
        print(f"{s['activation']} seed {seed}: train acc {s['train_acc']:.3f}, test acc {s['test_acc']:.3f}, "
              f"loss {s['final_loss']:.4f} ({s['train_seconds']:.1f} s)")
        for key, path in s["files"].items():
            if path:
                print(f"  {key:<22} {path}")
        for note in s["notes"]:
            print(f"  note: {note}")
    if len(accs) > 1:
        print(f"test accuracy over {len(accs)} seeds: {statistics.mean(accs):.3f} ± {statistics.stdev(accs):.3f}")
    return 0
