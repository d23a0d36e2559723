"""Plots of f, f′, f″ (and ∂f/∂θ for learnable parameters at several values) with branch points marked.

Numbers come from the generated torch code in float64; derivatives from autograd through the generated
backward (written with differentiable ops, so f″ works). Each curve is evaluated segment by segment
between branch points, so a jump in f′ is drawn as a jump, not as a steep line.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import sympy as sp  # noqa: E402
import torch  # noqa: E402
from matplotlib.mathtext import MathTextParser  # noqa: E402

from actsym.activation import Activation  # noqa: E402
from actsym.analysis.common import as_activation, derivatives, param_values  # noqa: E402
from actsym.analysis.gauss import kinks_of  # noqa: E402

FORMATS = ("png", "svg", "pdf")
_PARSER = MathTextParser("path")


def mathtext(expr: sp.Expr) -> str:
    """The expression as matplotlib mathtext (``cases`` are not supported: one ``if`` per branch);
    plain text when mathtext cannot parse it."""
    if isinstance(expr, sp.Piecewise):
        parts = []
        for e, c in expr.args:
            cond = "otherwise" if c is sp.true else f"if ${sp.latex(c)}$"
            parts.append(f"${sp.latex(e)}$ {cond}")
        text = ";  ".join(parts)
    else:
        text = f"${sp.latex(expr)}$"
    try:
        for chunk in text.split("$")[1::2]:
            _PARSER.parse(f"${chunk}$")
    except ValueError:
        return sp.sstr(expr)
    return text


def default_values(init: float) -> list[float]:
    """Parameter values shown by default: half, once and twice the initial value (or -1, 0, 1 at 0)."""
    return [-1.0, 0.0, 1.0] if init == 0 else [init / 2, init, 2 * init]


def _grid(lo: float, hi: float, kinks: Sequence[float], n: int) -> np.ndarray:
    """Points on [lo, hi], segment by segment between kinks, NaN between segments (pen up)."""
    edges = [lo, *[k for k in kinks if lo < k < hi], hi]
    parts = []
    for a, b in zip(edges[:-1], edges[1:]):
        m = max(8, int(n * (b - a) / (hi - lo)))
        eps = 1e-9 * (hi - lo)
        parts += [np.linspace(a + (eps if a != lo else 0), b - (eps if b != hi else 0), m), [np.nan]]
    return np.concatenate(parts[:-1])


def _evaluate(act: Activation, xs: np.ndarray, values: Mapping[str, float], wrt: str | None = None
              ) -> list[np.ndarray]:
    """[f, f', f''] at xs (NaN kept); with ``wrt`` a parameter name: [f, f', ∂f/∂wrt]."""
    out = [np.full_like(xs, np.nan) for _ in range(3)]
    ok = np.isfinite(xs)
    x = torch.from_numpy(xs[ok])
    if wrt is None:
        fn = lambda t: act.functional(t, *values.values())  # noqa: E731
        res = derivatives(fn, x, order=2)
    else:
        theta = torch.full_like(x, values[wrt], requires_grad=True)
        args = [theta if k == wrt else v for k, v in values.items()]
        xg = x.clone().requires_grad_(True)
        f = act.functional(xg, *args)
        dx, dtheta = torch.autograd.grad(f.sum(), (xg, theta), allow_unused=True)
        res = [f.detach(), *(torch.zeros_like(x) if g is None else g for g in (dx, dtheta))]
    for o, r in zip(out, res):
        o[ok] = r.numpy()
    return out


def _ylim(ax, arrays: list[np.ndarray]) -> None:
    """Keep poles and exponential tails from flattening everything else (1st–99th percentile, padded)."""
    v = np.concatenate([a[np.isfinite(a)] for a in arrays]) if arrays else np.array([])
    if v.size == 0:
        return
    lo, hi = np.percentile(v, [1, 99])
    full_lo, full_hi = v.min(), v.max()
    if full_hi - full_lo <= 4 * max(hi - lo, 1e-12):
        lo, hi = full_lo, full_hi
    if hi - lo < 1e-9 * max(1.0, abs(hi)):  # constant: centre it with a unit window
        lo, hi = lo - 1, hi + 1
    pad = 0.08 * (hi - lo)
    ax.set_ylim(lo - pad, hi + pad)


def _mark_kinks(ax, kinks: Sequence[float], lo: float, hi: float) -> None:
    for k in kinks:
        if lo <= k <= hi:
            ax.axvline(k, color="0.55", ls="--", lw=0.9, zorder=0)


def activation_figure(act: Activation | str, x_range=(-5.0, 5.0), param_values_: Mapping | None = None,
                      points: int = 600, width: float = 4.0):
    """The figure: row 1 f, f′, f″ at the initial parameters; one more row per learnable parameter θ with
    f, f′ and ∂f/∂θ for several θ. Branch points are dashed vertical lines (and dots on f)."""
    act = as_activation(act)
    lo, hi = map(float, x_range)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"x range must be finite with lo < hi, got {x_range}")
    kinks = kinks_of(act)
    xs = _grid(lo, hi, kinks, points)
    base = param_values(act)
    learnable = [k for k, p in act.params.items() if p.learnable]
    choices = {k: list((param_values_ or {}).get(k) or default_values(base[k])) for k in learnable}
    unknown = set(param_values_ or {}) - set(learnable)
    if unknown:
        raise KeyError(f"{act.name} has no learnable parameter(s) {', '.join(sorted(unknown))}")
    rows = 1 + len(learnable)
    fig, axes = plt.subplots(rows, 3, figsize=(3 * width, 3.1 * rows + 0.6), squeeze=False)
    f, f1, f2 = _evaluate(act, xs, base)
    inside = [k for k in kinks if lo <= k <= hi]
    second = "f″(x)  (deltas at branch points not drawn)" if inside else "f″(x)"
    for ax, ys, label, color in zip(axes[0], (f, f1, f2), ("f(x)", "f′(x)", second), ("C0", "C1", "C2")):
        ax.plot(xs, ys, color=color, lw=1.8)
        ax.set_title(label)
        _ylim(ax, [ys])
    for k in inside:
        kv = _evaluate(act, np.array([k]), base)[0][0]
        axes[0][0].plot([k], [kv], "o", color="k", ms=4, zorder=3, label=f"branch point x = {k:g}")
    if inside:
        axes[0][0].legend(fontsize=8, loc="best")
    cmap = plt.get_cmap("viridis")
    for row, name in enumerate(learnable, start=1):
        vals = choices[name]
        curves = [_evaluate(act, xs, {**base, name: v}, wrt=name) for v in vals]
        for j, (ax, label) in enumerate(zip(axes[row], (f"f(x; {name})", f"∂f/∂x ({name} varies)",
                                                          f"∂f/∂{name}"))):
            for i, (v, c) in enumerate(zip(vals, curves)):
                ax.plot(xs, c[j], color=cmap(i / max(1, len(vals) - 1) * 0.85), lw=1.5, label=f"{name} = {v:g}")
            ax.set_title(label)
            _ylim(ax, [c[j] for c in curves])
        axes[row][0].legend(fontsize=8, loc="best")
    for ax in axes.ravel():
        _mark_kinks(ax, kinks, lo, hi)
        ax.axhline(0, color="0.8", lw=0.7, zorder=0)
        ax.set_xlim(lo, hi)
        ax.grid(alpha=0.25)
        ax.set_xlabel("x")
    fixed = ", ".join(f"{k} = {v:g}" for k, v in base.items())
    fig.suptitle(f"{act.name}:  f(x) = {mathtext(act.expr)}" + (f"   ({fixed})" if fixed else ""), fontsize=12)
    fig.tight_layout()
    return fig


def plot_activation(act: Activation | str, out_dir, x_range=(-5.0, 5.0), formats=("png", "svg"),
                    param_values: Mapping[str, Sequence[float]] | None = None, dpi: int = 130) -> list[Path]:
    """Write ``<out_dir>/<name>.<fmt>`` for each format; returns the paths. SVG/PDF carry no date, so
    the files are reproducible."""
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ValueError(f"unsupported format {bad[0]!r}; choose from {', '.join(FORMATS)}")
    act = as_activation(act)
    fig = activation_figure(act, x_range, param_values)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    with plt.rc_context({"svg.hashsalt": "actsym"}):
        for fmt in formats:
            path = out / f"{act.name}.{fmt}"
            meta = {"Date": None} if fmt in ("svg", "pdf") else {}
            fig.savefig(path, format=fmt, dpi=dpi, metadata=meta)
            paths.append(path)
    plt.close(fig)
    return paths


def activation_png(act: Activation | str, x_range=(-5.0, 5.0), dpi: int = 100, **kwargs) -> bytes:
    """The same figure as PNG bytes (for embedding in reports, e.g. base64 in HTML)."""
    fig = activation_figure(act, x_range, **kwargs)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()
