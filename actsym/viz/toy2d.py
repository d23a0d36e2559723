"""The 2-D toy study: a seeded 2-D binary data set, a narrow MLP (2–3 units per hidden layer, so every
layer's output can be drawn), full-batch Adam on the CPU, and snapshots of how each layer maps the input
plane (a grid of lines) and the data, across training.

    summary = toy2d("abs", layers=3, units=3, epochs=1500, out_dir="out/toy2d/abs", seed=0)

Any activation works: a catalog name, an expression in ``x``, or a vector activation (``softmax``,
``normalized:<g>``) applied across the units of a layer.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from actsym.activation import Activation
from actsym.viz.plane import activation_factory, plane_grid  # noqa: F401 - re-exported

# ------------------------------------------------------------------------------------------------------
# settings
# ------------------------------------------------------------------------------------------------------

SETTINGS = {
    "dataset": "rings",  # rings | spirals | moons
    "n_train": 400,  # points (half per class)
    "n_test": 400,
    "noise": 0.08,  # std of Gaussian jitter, in input units
    "lr": 0.01,  # Adam, full batch
    "snapshots": 40,  # recorded states across training (= animation frames)
    "grid_lines": 15,  # lines per direction of the input-plane grid
    "grid_points": 60,  # points per grid line
    "layer_steps": 8,  # interpolation frames per stage in layers.gif (x3 for activation_grid.gif)
    "hold": 4,  # repeated frames at the ends of an animation / between stages
}

DATASETS = ("rings", "spirals", "moons")

# ------------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------------


def make_dataset(kind: str = "rings", n: int = 400, seed: int = 0, noise: float = 0.08
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(X [n, 2] float32, y [n] float32 in {0, 1})``, classes balanced, deterministic for a seed.

    rings: a disk (radius < 1) inside a ring (1.5–2.3); spirals: two interleaved 1.5-turn spirals;
    moons: two interleaved half circles.
    """
    if kind not in DATASETS:
        raise ValueError(f"unknown dataset {kind!r}; choose from {', '.join(DATASETS)}")
    if n < 2:
        raise ValueError("need at least 2 points")
    g = torch.Generator().manual_seed(seed)
    half = n // 2
    y = torch.cat([torch.zeros(n - half), torch.ones(half)])
    u = torch.rand(n, generator=g, dtype=torch.float64)
    if kind == "rings":
        r = torch.where(y == 0, torch.sqrt(u) * 1.0, 1.5 + 0.8 * u)
        a = 2 * math.pi * torch.rand(n, generator=g, dtype=torch.float64)
        X = torch.stack([r * torch.cos(a), r * torch.sin(a)], 1)
    elif kind == "spirals":
        t = 0.25 + 2.75 * u  # radius and angle grow together
        a = t * 3 * math.pi / 2.75 + math.pi * y
        X = torch.stack([t * torch.cos(a), t * torch.sin(a)], 1)
    else:
        a = math.pi * u
        X = torch.stack([torch.cos(a), torch.sin(a)], 1)
        X = torch.where((y == 1)[:, None], torch.stack([1 - torch.cos(a), 0.5 - torch.sin(a)], 1), X)
        X = (X - torch.tensor([0.5, 0.25], dtype=torch.float64)) * 1.6
    X = X + noise * torch.randn(n, 2, generator=g, dtype=torch.float64)
    return X.float(), y


# ------------------------------------------------------------------------------------------------------
# model
# ------------------------------------------------------------------------------------------------------


class ToyMLP(nn.Module):
    """2 → units → … → units → 1 (logit); :meth:`trace` returns every hidden layer's output."""

    def __init__(self, make_act, layers: int = 3, units: int = 3):
        super().__init__()
        sizes = [2] + [units] * layers
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.acts = nn.ModuleList(make_act() for _ in range(layers))
        self.head = nn.Linear(units, 1)

    def trace(self, x: torch.Tensor, pre: bool = False) -> list[torch.Tensor]:
        """[x, h1, h2, …, logit]; with ``pre`` also the pre-activations: [x, z1, h1, z2, h2, …, logit]."""
        out = [x]
        for lin, act in zip(self.linears, self.acts):
            z = lin(out[-1])
            if pre:
                out.append(z)
            out.append(act(z))
        out.append(self.head(out[-1]).squeeze(-1))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trace(x)[-1]


# ------------------------------------------------------------------------------------------------------
# training with snapshots
# ------------------------------------------------------------------------------------------------------


@dataclass
class Snapshot:
    """One recorded state: per hidden layer the mapped data points and grid lines."""

    epoch: int
    loss: float
    train_acc: float
    points: list[np.ndarray]  # [x, h1, …] each [n, d]
    grid: list[np.ndarray]  # [plane, h1, …] each [lines, points, d]
    prob: np.ndarray  # P(y=1) on the display raster [res, res]


@dataclass
class History:
    snapshots: list[Snapshot] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def _accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float(((logits > 0).float() == y).float().mean())


def train(model: ToyMLP, X: torch.Tensor, y: torch.Tensor, epochs: int, lr: float = 0.01,
          snapshots: int = 40, grid: torch.Tensor | None = None, raster: torch.Tensor | None = None) -> History:
    """Full-batch Adam with BCE-with-logits; ``snapshots`` states spread evenly over training (epoch 0
    included). Only the optimization steps are timed."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.BCEWithLogitsLoss()
    marks = set(np.linspace(0, epochs, max(2, snapshots)).round().astype(int).tolist())
    hist = History()
    for epoch in range(epochs + 1):
        if epoch in marks:
            hist.snapshots.append(_snapshot(model, epoch, X, y, grid, raster, loss_fn))
        if epoch == epochs:
            break
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(X), y)
        loss.backward()
        opt.step()
        hist.seconds += time.perf_counter() - t0
        hist.losses.append(loss.item())
    return hist


@torch.no_grad()
def _snapshot(model, epoch, X, y, grid, raster, loss_fn) -> Snapshot:
    pts = model.trace(X)
    gl = [] if grid is None else [t.reshape(*grid.shape[:2], -1).numpy() for t in model.trace(grid.reshape(-1, 2))[:-1]]
    prob = np.zeros((0, 0)) if raster is None else torch.sigmoid(model(raster.reshape(-1, 2))).reshape(
        raster.shape[:2]).numpy()
    return Snapshot(epoch, float(loss_fn(pts[-1], y)), _accuracy(pts[-1], y), [p.numpy() for p in pts[:-1]], gl, prob)


# ------------------------------------------------------------------------------------------------------
# the study
# ------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def single_thread():
    """Tiny tensors: intra-op threads only add synchronization (several times slower on a busy CPU)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run(act: Activation | str, layers: int = 3, units: int = 3, epochs: int = 1500, seed: int = 0,
        dataset: str | None = None, **overrides):
    """Data, model and training only (no files): ``(model, history, data dict, settings)``."""
    s = {**SETTINGS, **({"dataset": dataset} if dataset else {}), **overrides}
    if layers < 1 or units < 1 or epochs < 1:
        raise ValueError("layers, units and epochs must be >= 1")
    label, make = activation_factory(act)
    X, y = make_dataset(s["dataset"], s["n_train"], seed, s["noise"])
    Xt, yt = make_dataset(s["dataset"], s["n_test"], seed + 10_000, s["noise"])
    extent = float(X.abs().max()) * 1.1
    grid = plane_grid(extent, s["grid_lines"], s["grid_points"])
    axis = torch.linspace(-extent, extent, 120)
    raster = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1)
    torch.manual_seed(seed)
    model = ToyMLP(make, layers, units)
    with single_thread():
        hist = train(model, X, y, epochs, s["lr"], s["snapshots"], grid, raster)
        with torch.no_grad():
            test_acc = _accuracy(model(Xt), yt)
    data = {"X": X, "y": y, "extent": extent, "label": label, "test_acc": test_acc,
            "grid_lines": s["grid_lines"], "grid_points": s["grid_points"]}
    return model, hist, data, s


def toy2d(act: Activation | str, layers: int = 3, units: int = 3, epochs: int = 1500, out_dir="out/toy2d",
          seed: int = 0, dataset: str | None = None, animate: bool = True, fps: int = 8, dpi: int = 80,
          **overrides) -> dict:
    """Train, then write ``<out_dir>/training.gif`` (layer-by-layer deformation across training),
    ``layers.gif`` (the trained network morphing the plane stage by stage), ``activation_grid.gif`` (the
    activation alone on the plane), ``final.png`` and ``summary.json``; MP4 next to each GIF when ffmpeg is
    available. Returns the summary (accuracies, loss, paths, timing)."""
    from actsym.viz import animate as anim

    model, hist, data, s = run(act, layers, units, epochs, seed, dataset, **overrides)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    last = hist.snapshots[-1]
    summary = {
        "activation": data["label"], "dataset": s["dataset"], "layers": layers, "units": units,
        "epochs": epochs, "seed": seed, "lr": s["lr"],
        "final_loss": last.loss, "train_acc": last.train_acc, "test_acc": data["test_acc"],
        "train_seconds": round(hist.seconds, 3), "files": {}, "notes": [],
    }
    summary["files"]["final"] = str(anim.final_figure(hist, data, out / "final.png", dpi=dpi))
    if animate:
        for key, written in (
            ("training", anim.animate_training(hist, data, out / "training", hold=s["hold"], fps=fps, dpi=dpi)),
            ("layers", anim.animate_layers(model, data, out / "layers", steps=s["layer_steps"], hold=s["hold"],
                                           fps=fps, dpi=dpi)),
            ("activation_grid", anim.animate_activation_grid(act, out / "activation_grid", lines=s["grid_lines"],
                                                             points=s["grid_points"], frames=s["layer_steps"] * 3,
                                                             hold=s["hold"], fps=fps, dpi=dpi)),
        ):
            for fmt, path in written.items():
                summary["files"][f"{key}_{fmt}"] = str(path) if path else None
        if not anim.mp4_available():
            summary["notes"].append("MP4 skipped: ffmpeg not found on PATH (GIF written)")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    summary["files"]["summary"] = str(out / "summary.json")
    return summary
