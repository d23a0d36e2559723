"""Figures of the evaluation report: training curves, firing statistics, the activations and their derivatives.

Matplotlib (Agg) is optional: :func:`_matplotlib` returns ``None`` without it and the report says so.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

Block = tuple  # as in report.py: ("img", path, caption) | ("p", text)


def _matplotlib():
    """``matplotlib.pyplot`` with the Agg backend, or ``None`` when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _curve_plot(plt, path: Path, names, by_act, all_epochs) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    positive_loss = False
    for name in names:
        runs = [r for r in by_act[name] if all_epochs.get(r["id"])]
        if not runs:
            continue
        max_ep = max(len(all_epochs[r["id"]]) for r in runs)
        for ax, key in zip(axes, ("test_acc", "train_loss", "test_loss"), strict=True):
            xs, mean, lo, hi = [], [], [], []
            for i in range(max_ep):
                vals = [all_epochs[r["id"]][i][key] for r in runs
                        if i < len(all_epochs[r["id"]]) and all_epochs[r["id"]][i][key] is not None
                        and math.isfinite(all_epochs[r["id"]][i][key])]  # a diverged epoch is not a point
                if vals:
                    xs.append(i + 1)
                    mean.append(sum(vals) / len(vals))
                    lo.append(min(vals))
                    hi.append(max(vals))
            positive_loss |= key == "train_loss" and any(m > 0 for m in mean)
            (line,) = ax.plot(xs, mean, label=f"{name} (n={len(runs)})")
            ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.15)
    for ax, title in zip(axes, ("test accuracy", "train loss", "test loss"), strict=True):
        ax.set_title(title + " (mean; band = min..max over seeds)")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    if positive_loss:  # log scale needs a positive value (every run may have diverged)
        axes[1].set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _firing_plot(plt, path: Path, names, by_act, all_epochs) -> bool:
    shown = [n for n in names if any(e["firing"] for r in by_act[n] for e in all_epochs.get(r["id"], []))]
    if not shown:
        return False
    fig, axes = plt.subplots(2, len(shown), figsize=(4 * len(shown), 6), squeeze=False)
    for col, name in enumerate(shown):
        run = next(r for r in by_act[name] if any(e["firing"] for e in all_epochs.get(r["id"], [])))
        eps = [e for e in all_epochs[run["id"]] if e["firing"]]
        layers = list(eps[-1]["firing"])
        cmap = plt.get_cmap("viridis")
        for row, key in enumerate(("pos", "neg")):
            ax = axes[row][col]
            for j, layer in enumerate(layers):
                ax.plot([e["epoch"] for e in eps], [e["firing"].get(layer, {}).get(key) for e in eps],
                        color=cmap(j / max(len(layers) - 1, 1)), lw=1)
            ax.set_title(f"{name} (seed {run['seed']}): fraction {'> 0' if key == 'pos' else '< 0'}", fontsize=9)
            ax.set_ylim(-0.02, 1.02)
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def _function_plot(plt, path: Path, names, by_act, handles) -> list[str]:
    """f and f' of each activation at its initial parameters; f' from autograd on the module."""
    import torch

    from .activations import resolve
    known = {h.name: h for h in (handles or [])}
    fig, (ax_f, ax_d) = plt.subplots(1, 2, figsize=(12, 4))
    missing = []
    x = torch.linspace(-5, 5, 1001).reshape(-1, 1)
    for name in names:
        h = known.get(name)
        if h is None:  # rebuild from the stored name: "swish(beta=2)" → swish with its params; else an expression
            m = re.match(r"^([A-Za-z_][\w\-]*)(\(.*\))?$", name)
            try:
                params = by_act[name][0]["params"] or None
                h = resolve(m.group(1), params if m.group(2) else None) if m else resolve(name)
            except Exception:
                try:  # last resort: the stored SymPy expression text
                    h = resolve(by_act[name][0]["expr"], by_act[name][0]["params"] or None)
                except Exception:
                    missing.append(name)
                    continue
        xg = x.clone().requires_grad_(True)
        try:
            y = h.make(None)(xg)
            (dy,) = torch.autograd.grad(y.sum(), xg)
        except Exception:  # noqa: BLE001 - an activation that cannot be evaluated is listed, not plotted
            missing.append(name)
            continue
        ax_f.plot(x.flatten(), y.detach().flatten(), label=name)
        ax_d.plot(x.flatten(), dy.flatten(), label=name)
    for ax, title in ((ax_f, "f(x)"), (ax_d, "f'(x) (autograd)")):
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.axhline(0, color="k", lw=0.5)
        ax.axvline(0, color="k", lw=0.5)
    ax_f.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return missing


def _plots(fig_dir: Path, names, by_act, all_epochs, handles) -> list[Block]:
    plt = _matplotlib()
    blocks: list[Block] = []
    curves = fig_dir / "curves.png"
    _curve_plot(plt, curves, names, by_act, all_epochs)
    blocks.append(("img", curves, "Training curves"))
    firing = fig_dir / "firing.png"
    if _firing_plot(plt, firing, names, by_act, all_epochs):
        blocks.append(("img", firing, "Firing statistics per layer per epoch (one seed; colour = depth, "
                                      "dark = first layer)"))
    funcs = fig_dir / "functions.png"
    missing = _function_plot(plt, funcs, names, by_act, handles)
    blocks.append(("img", funcs, "Activation functions and derivatives at their initial parameters"))
    if missing:
        blocks.append(("p", f"*Could not rebuild {', '.join(missing)} for the function plot.*"))
    return blocks
