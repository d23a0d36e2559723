"""Animations of the 2-D toy study (matplotlib, Agg): GIF via Pillow, MP4 too when ffmpeg is on PATH.

* :func:`animate_activation_grid` – a regular grid of the plane mapped by the activation alone
  (2-D → 2-D, interpolating identity → f; a vector activation such as softmax acts on the pair).
* :func:`animate_training` – every hidden layer's image of the plane and of the data, across training
  (3-unit layers are drawn in 3-D), plus the decision function on the input plane.
* :func:`animate_layers` – the trained network moving the plane stage by stage: affine map, then the
  activation, layer after layer (interpolated), so folding/bending/collapsing is visible as it happens.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.animation import FFMpegWriter, FuncAnimation, PillowWriter  # noqa: E402

from actsym.activation import Activation  # noqa: E402

CLASS_COLORS = np.array(["#d62728", "#1f77b4"])  # class 0 red, class 1 blue


def mp4_available() -> bool:
    """True when matplotlib can write MP4 (ffmpeg on PATH). Checked at call time, never at import."""
    return shutil.which("ffmpeg") is not None


def save_animation(anim: FuncAnimation, base: Path, fps: int, dpi: int) -> dict[str, Path | None]:
    """``base.gif`` always; ``base.mp4`` when ffmpeg exists (else the ``mp4`` entry is None)."""
    base = Path(base)
    base.parent.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path | None] = {"gif": base.with_suffix(".gif"), "mp4": None}
    anim.save(paths["gif"], writer=PillowWriter(fps=fps), dpi=dpi)
    if mp4_available():
        paths["mp4"] = base.with_suffix(".mp4")
        anim.save(paths["mp4"], writer=FFMpegWriter(fps=fps), dpi=dpi)
    plt.close(anim._fig)
    return paths


def _ease(t: float) -> float:
    return 0.5 - 0.5 * np.cos(np.pi * t)


def _line_colors(n_lines: int) -> list:
    """Vertical grid lines in blues, horizontal ones in oranges (light, so the data stays visible)."""
    half = n_lines // 2
    return [plt.cm.Blues(0.35 + 0.5 * i / max(1, half - 1)) for i in range(half)] + [
        plt.cm.Oranges(0.35 + 0.5 * i / max(1, n_lines - half - 1)) for i in range(n_lines - half)]


def _bounds(*arrays: np.ndarray, pad: float = 0.08) -> tuple[np.ndarray, np.ndarray]:
    v = np.concatenate([a.reshape(-1, a.shape[-1]) for a in arrays])
    v = v[np.isfinite(v).all(1)]
    lo, hi = v.min(0), v.max(0)
    span = np.maximum(hi - lo, 1e-3)
    return lo - pad * span, hi + pad * span


def draw_state(ax, points: np.ndarray | None, labels: np.ndarray | None, grid: np.ndarray | None,
               title: str = "") -> None:
    """Grid polylines and data points in 2-D or 3-D (by the last dimension), limits from both."""
    ax.cla()
    dim = (points if points is not None else grid).shape[-1]
    arrays = [a for a in (points, grid) if a is not None]
    lo, hi = _bounds(*arrays)
    if grid is not None:
        for line, c in zip(grid, _line_colors(len(grid))):
            ax.plot(*line[:, :dim].T, color=c, lw=0.7, alpha=0.9)
    if points is not None:
        colors = CLASS_COLORS[labels.astype(int)] if labels is not None else "k"
        ax.scatter(*points[:, :dim].T, c=colors, s=5, alpha=0.8, linewidths=0)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    if dim == 3:
        ax.set_zlim(lo[2], hi[2])
        ax.tick_params(labelsize=6, pad=0)
    else:
        ax.tick_params(labelsize=7)
    ax.set_title(title, fontsize=9)


def _apply_activation(act, pts: torch.Tensor) -> torch.Tensor:
    """The activation on [..., 2] points: a vector activation across the pair, else elementwise."""
    from actsym.viz.plane import activation_factory

    _, make = activation_factory(act)
    with torch.no_grad():
        return make()(pts)


def animate_activation_grid(act: Activation | str, base, extent: float = 3.0, lines: int = 17, points: int = 80,
                            frames: int = 24, hold: int = 6, fps: int = 8, dpi: int = 80) -> dict[str, Path | None]:
    """Identity → f on a grid of [-extent, extent]²: frame k shows (1 − t) p + t f(p), t eased from 0 to 1.
    Dots on a disk are coloured by their angle, so folds (|x|: colours land on top of each other) and
    collapses (softmax: everything on the line y₁ + y₂ = 1) are easy to see."""
    from actsym.viz.plane import activation_factory, plane_grid

    label, _ = activation_factory(act)
    grid = plane_grid(extent, lines, points)
    ticks = torch.linspace(-extent, extent, 25)
    lattice = torch.stack(torch.meshgrid(ticks, ticks, indexing="xy"), -1).reshape(-1, 2)
    lattice = lattice[lattice.norm(dim=1) <= extent]
    hue = (torch.atan2(lattice[:, 1], lattice[:, 0]).numpy() / (2 * np.pi)) % 1.0
    dot_colors = plt.cm.hsv(hue)
    mapped = _apply_activation(act, grid.reshape(-1, 2)).reshape(grid.shape).numpy()
    dots_mapped = _apply_activation(act, lattice).numpy()
    grid, lattice = grid.numpy(), lattice.numpy()
    lo, hi = _bounds(grid, mapped)
    fig, ax = plt.subplots(figsize=(4.2, 4.4))
    ts = [0.0] * hold + [_ease(k / max(1, frames - 1)) for k in range(frames)] + [1.0] * hold

    def update(k):
        t = ts[k]
        draw_state(ax, None, None, (1 - t) * grid + t * mapped, f"{label} on the plane   t = {t:.2f}")
        ax.scatter(*((1 - t) * lattice + t * dots_mapped).T, c=dot_colors, s=6, linewidths=0, zorder=3)
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_aspect("equal", adjustable="box")

    anim = FuncAnimation(fig, update, frames=len(ts))
    return save_animation(anim, base, fps, dpi)


def _layer_axes(fig, dims: list[int], extra: int = 1):
    n = len(dims) + extra
    axes = []
    for i, d in enumerate(dims + [2] * extra):
        axes.append(fig.add_subplot(1, n, i + 1, projection="3d" if d == 3 else None))
    return axes


def _decision(ax, snap, data) -> None:
    ax.cla()
    e = data["extent"]
    ax.imshow(snap.prob, origin="lower", extent=(-e, e, -e, e), cmap="RdBu", vmin=0, vmax=1, alpha=0.55)
    ax.contour(np.linspace(-e, e, snap.prob.shape[1]), np.linspace(-e, e, snap.prob.shape[0]), snap.prob,
               levels=[0.5], colors="k", linewidths=0.8)
    X, y = data["X"].numpy(), data["y"].numpy()
    ax.scatter(X[:, 0], X[:, 1], c=CLASS_COLORS[y.astype(int)], s=4, linewidths=0)
    ax.set_xlim(-e, e)
    ax.set_ylim(-e, e)
    ax.set_title(f"decision  acc {snap.train_acc:.2f}", fontsize=9)
    ax.tick_params(labelsize=7)


def _draw_snapshot(fig, axes, snap, data) -> None:
    y = data["y"].numpy()
    for i, ax in enumerate(axes[:-1]):
        draw_state(ax, snap.points[i], y, snap.grid[i] if snap.grid else None,
                   "input plane" if i == 0 else f"after layer {i}")
    _decision(axes[-1], snap, data)
    fig.suptitle(f"{data['label']}: epoch {snap.epoch}   loss {snap.loss:.3f}   train acc {snap.train_acc:.3f}",
                 fontsize=10)


def animate_training(hist, data, base, hold: int = 4, fps: int = 8, dpi: int = 80) -> dict[str, Path | None]:
    """One frame per snapshot: the input plane, each hidden layer's image of it, the decision function."""
    first = hist.snapshots[0]
    dims = [p.shape[-1] for p in first.points]
    fig = plt.figure(figsize=(2.9 * (len(dims) + 1), 3.3))
    axes = _layer_axes(fig, dims)
    frames = hist.snapshots + [hist.snapshots[-1]] * hold  # hold the end

    def update(k):
        _draw_snapshot(fig, axes, frames[k], data)

    anim = FuncAnimation(fig, update, frames=len(frames))
    return save_animation(anim, base, fps, dpi)


def final_figure(hist, data, path, dpi: int = 100) -> Path:
    """Static picture of the last snapshot plus the loss curve (for reports)."""
    snap = hist.snapshots[-1]
    dims = [p.shape[-1] for p in snap.points]
    fig = plt.figure(figsize=(2.9 * (len(dims) + 2), 3.3))
    axes = _layer_axes(fig, dims, extra=2)
    _draw_snapshot(fig, axes[:-1], snap, data)
    axes[-1].plot(hist.losses, lw=1)
    axes[-1].set_yscale("log")
    axes[-1].set_title("training loss (BCE)", fontsize=9)
    axes[-1].tick_params(labelsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def _pad(a: np.ndarray, d: int) -> np.ndarray:
    return a if a.shape[-1] == d else np.concatenate([a, np.zeros((*a.shape[:-1], d - a.shape[-1]))], -1)


def animate_layers(model, data, base, steps: int = 8, hold: int = 3, fps: int = 8, dpi: int = 80
                   ) -> dict[str, Path | None]:
    """The trained network as a movie: input → affine 1 → activation 1 → affine 2 → … (interpolated)."""
    from actsym.viz.plane import plane_grid

    X, y = data["X"], data["y"].numpy()
    grid = plane_grid(data["extent"], data.get("grid_lines", 15), data.get("grid_points", 60))
    with torch.no_grad():
        pts = [t.numpy() for t in model.trace(X, pre=True)[:-1]]
        gl = [t.reshape(*grid.shape[:2], -1).numpy() for t in model.trace(grid.reshape(-1, 2), pre=True)[:-1]]
    d = max(p.shape[-1] for p in pts)
    pts, gl = [_pad(p, d) for p in pts], [_pad(g, d) for g in gl]
    names = ["input"] + [f"{'affine' if i % 2 == 0 else 'activation'} {i // 2 + 1}" for i in range(len(pts) - 1)]
    frames = [(0, 0.0)] * max(1, hold)
    for s in range(len(pts) - 1):
        frames += [(s, _ease((k + 1) / steps)) for k in range(steps - 1)] + [(s + 1, 0.0)] * max(1, hold)
    fig = plt.figure(figsize=(4.6, 4.4))
    ax = fig.add_subplot(1, 1, 1, projection="3d" if d == 3 else None)

    def update(k):
        s, t = frames[k]
        nxt = min(s + 1, len(pts) - 1)
        p = (1 - t) * pts[s] + t * pts[nxt]
        g = (1 - t) * gl[s] + t * gl[nxt]
        stage = names[s] if t == 0 else f"{names[s]} → {names[nxt]}"
        draw_state(ax, p, y, g, f"{data['label']}: {stage}")

    anim = FuncAnimation(fig, update, frames=len(frames))
    return save_animation(anim, base, fps, dpi)
