r"""Signal propagation through deep random networks, and the initialization gain of an activation.

Setting (mean-field analysis of a wide random network): pre-activations ``h_{l+1} = W f(h_l) + b`` with
weights ``W_ij ~ N(0, σ_w²/n)`` and biases ``b_i ~ N(0, σ_b²)``. Each unit of ``h_l`` is then ~ N(0, q_l)
with the **variance map**

    q_{l+1} = σ_w² E[f(√q_l z)²] + σ_b²,        z ~ N(0, 1).

Its stable fixed point q* is the variance a deep network settles to. The **slope**
``χ = σ_w² E[f'(√q* z)²]`` multiplies the squared norm of a small perturbation (and of back-propagated
gradients) per layer: χ < 1 ordered (perturbations and gradients vanish), χ > 1 chaotic (they explode);
χ = 1 is the *edge of chaos* (Poole et al. 2016, Schoenholz et al. 2017).

**Init gain.** ``gain = 1 / sqrt(E[f(z)²])`` is the σ_w that makes q = 1 a fixed point with σ_b = 0: unit-
variance pre-activations stay unit variance, layer after layer. This is the rule behind He/Kaiming
(``E[relu(z)²] = 1/2`` → gain √2 exactly) and gives ≈ 1.5925 for tanh.

**Why PyTorch uses 5/3 for tanh.** ``torch.nn.init.calculate_gain('tanh') = 5/3`` is a heuristic
constant, not the result of this (or any stated) variance computation. The unit-variance rule asks for
E[(σ_w tanh(z))²] = 1 and gives 1.5925. 5/3 is about 5 % larger: the variance map then settles at
q* ≈ 1.178 instead of 1, with slope χ ≈ 1.210 there (1.178 at the 1.5925 gain), i.e. slightly further on
the chaotic side, which offsets some of tanh's saturation. Neither value puts a tanh network at χ = 1
(for σ_b = 0 that happens only as σ_w → 1, where q* → 0), and the gradient-preserving rule
``1/sqrt(E[f'(z)²])`` gives yet another value (≈ 1.467). For ReLU all three rules coincide at √2.
:func:`signal_report` prints each of these numbers for any activation.

**SELU** (Klambauer et al. 2017) is built so that with ``Σw = 0`` and ``Σw² = 1`` the map of (mean,
variance) of the activations has the stable fixed point (0, 1): E[selu(z)] = 0 and E[selu(z)²] = 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import sympy as sp
from scipy import optimize

from actsym.activation import Activation
from actsym.analysis.common import as_activation
from actsym.analysis.gauss import moments, symbolic_moments

#: Klambauer et al. (2017), eq. (14)/(15) values: α01 and λ01.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946

#: ``torch.nn.init.calculate_gain`` for catalog names that PyTorch knows (prelu: leaky_relu with a=0.25).
_TORCH_NAMES = {"relu": ("relu", None), "tanh": ("tanh", None), "sigmoid": ("sigmoid", None),
                "selu": ("selu", None), "prelu": ("leaky_relu", 0.25)}


def selu() -> Activation:
    """SELU declared with its standard constants (both fixed)."""
    from actsym.api import define

    return define(
        "selu", "scale*Piecewise((x, x > 0), (alpha*(exp(x) - 1), True))",
        params={"scale": (SELU_SCALE, False), "alpha": (SELU_ALPHA, False)},
        reference="Klambauer et al., arXiv:1706.02515",
    )


# ------------------------------------------------------------------------------------------------------
# gains
# ------------------------------------------------------------------------------------------------------


def init_gain(act: Activation | str, params: Mapping[str, float] | None = None) -> float:
    """Variance-preserving gain ``1/sqrt(E[f(z)²])``, z ~ N(0, 1): use as ``std = gain/sqrt(fan_in)``
    (e.g. ``nn.init.kaiming_normal_(w, nonlinearity="linear")`` times ``gain``, or :func:`init_weights_`)."""
    m = moments(as_activation(act), params=params)
    if not (m.second > 0 and math.isfinite(m.second)):
        raise ValueError(f"E[f(z)^2] = {m.second}: no variance-preserving gain")
    return 1.0 / math.sqrt(m.second)


def torch_gain(act: Activation) -> float | None:
    """What ``torch.nn.init.calculate_gain`` says for this activation, when it knows it."""
    import torch

    entry = _TORCH_NAMES.get(act.name)
    return None if entry is None else float(torch.nn.init.calculate_gain(*entry))


def init_weights_(model, gain: float, bias: float = 0.0) -> int:
    """Re-initialize every ``nn.Linear``/``nn.Conv*`` weight as N(0, gain²/fan_in) and biases to
    ``bias``; returns the number of layers touched. (Apply the activation's gain to the layers *after*
    an activation; the harness may choose to scale the first layer with gain 1 instead.)"""
    import torch
    from torch import nn

    count = 0
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            fan_in = m.weight[0].numel()
            with torch.no_grad():
                m.weight.normal_(0.0, gain / math.sqrt(fan_in))
                if m.bias is not None:
                    m.bias.fill_(bias)
            count += 1
    return count


# ------------------------------------------------------------------------------------------------------
# variance map, fixed point, edge of chaos
# ------------------------------------------------------------------------------------------------------


_Q_TINY = 1e-200  # stands for q -> 0+ (x = sqrt(q) z stays representable)


@dataclass(frozen=True)
class FixedPoint:
    """Fixed point of the variance map reached from ``q0``, the slope χ there, and ``map_slope`` =
    dq_{l+1}/dq_l at q* (< 1: an attracting fixed point; > 1: repelling, so a finite-width network's
    variance drifts away from it layer after layer; = 1: marginal, as for ReLU at gain √2)."""

    q: float
    chi: float
    converged: bool
    iterations: int
    map_slope: float = math.nan

    @property
    def stability(self) -> str:
        if not math.isfinite(self.map_slope):
            return "unknown"
        if abs(self.map_slope - 1) < 1e-6:
            return "marginal"
        return "stable" if self.map_slope < 1 else "unstable"


def variance_map(act: Activation, q: float, sigma_w2: float, sigma_b2: float = 0.0) -> float:
    """q_{l+1} = σ_w² E[f(√q z)²] + σ_b²."""
    return sigma_w2 * moments(act, q=q).second + sigma_b2


def chi(act: Activation, q: float, sigma_w2: float) -> float:
    """χ = σ_w² E[f'(√q z)²]: per-layer growth factor of perturbations and gradients at variance q."""
    return sigma_w2 * moments(act, q=q).deriv_second


def map_slope(act: Activation, q: float, sigma_w2: float, rel: float = 1e-4) -> float:
    """dq_{l+1}/dq_l of the variance map at q (central difference; the quadrature is smooth in q)."""
    if not (math.isfinite(q) and q > 0):
        return math.nan
    h = rel * q
    return sigma_w2 * (moments(act, q=q + h).second - moments(act, q=q - h).second) / (2 * h)


def _finish(act: Activation, q: float, sigma_w2: float, converged: bool, iterations: int) -> FixedPoint:
    return FixedPoint(q, chi(act, max(q, _Q_TINY), sigma_w2), converged, iterations, map_slope(act, q, sigma_w2))


def fixed_point(act: Activation | str, sigma_w2: float, sigma_b2: float = 0.0, q0: float = 1.0,
                tol: float = 1e-12, max_iter: int = 60, q_max: float = 1e8) -> FixedPoint:
    """The fixed point of the variance map reached from ``q0`` and χ there.

    Iterates the map; when that is slow (near the edge of chaos convergence is only algebraic), brackets
    the root of ``map(q) - q`` in the direction the iteration moves and finishes with Brent's method.
    q = 0 is reported when the variance decays to zero (χ is then the limit q → 0⁺), q = inf when it
    grows without bound.
    """
    act = as_activation(act)

    def h(v: float) -> float:
        return variance_map(act, v, sigma_w2, sigma_b2) - v

    q, prev = float(q0), float(q0)
    for i in range(1, max_iter + 1):
        prev, q = q, variance_map(act, q, sigma_w2, sigma_b2)
        if not math.isfinite(q) or q > q_max:
            return FixedPoint(math.inf, math.inf, False, i)
        if abs(q - prev) <= tol * q:
            return _finish(act, q, sigma_w2, True, i)
    if q < prev:  # decreasing: the fixed point is below q
        lo = q
        while h(lo) < 0:
            lo *= 1e-3
            if lo < _Q_TINY:
                return FixedPoint(0.0, chi(act, _Q_TINY, sigma_w2), True, max_iter)
        hi = q
    else:
        hi = q
        while h(hi) > 0:
            hi *= 10
            if hi > q_max:
                return FixedPoint(math.inf, math.inf, False, max_iter)
        lo = q
    if lo == hi:
        return _finish(act, q, sigma_w2, True, max_iter)
    q = optimize.brentq(h, lo, hi, xtol=1e-15, rtol=1e-12)
    return _finish(act, q, sigma_w2, True, max_iter)


def critical_sigma_w2(act: Activation | str, sigma_b2: float = 0.0, lo: float = 0.05, hi: float = 20.0
                      ) -> float | None:
    """The σ_w² where χ(q*) = 1 (edge of chaos) for this σ_b², or None if χ - 1 keeps its sign."""
    act = as_activation(act)

    def excess(s2: float) -> float:
        fp = fixed_point(act, s2, sigma_b2)
        return (fp.chi if math.isfinite(fp.chi) else 1e6) - 1.0

    a, b = excess(lo), excess(hi)
    if not (a < 0 < b or b < 0 < a):
        return None
    try:
        return float(optimize.brentq(excess, lo, hi, xtol=1e-10))
    except RuntimeError:  # χ(q*) not monotone in σ_w² (e.g. several fixed points, as for sin)
        return None


def mean_variance_map(act: Activation | str, mu: float, nu: float, omega: float = 0.0, tau: float = 1.0
                      ) -> tuple[float, float]:
    """Klambauer's map of the activations' (mean, variance) through one layer: the next pre-activation is
    ~ N(μω, ντ) (ω = Σw, τ = Σw², biases zero); returns (E f, Var f) of that."""
    act = as_activation(act)
    m = moments(act, q=nu * tau, loc=mu * omega)
    return m.mean, m.variance


def normalizing_fixed_point(act: Activation | str, start=(0.5, 1.5), omega: float = 0.0, tau: float = 1.0,
                            steps: int = 200) -> dict:
    """Iterate :func:`mean_variance_map` from ``start``; also the Jacobian at the end point (central
    differences) and its largest singular value (< 1: a stable, attracting fixed point)."""
    act = as_activation(act)
    mu, nu = start
    for _ in range(steps):
        new = mean_variance_map(act, mu, nu, omega, tau)
        done = abs(new[0] - mu) + abs(new[1] - nu) < 1e-13
        mu, nu = new
        if done:
            break
    eps = 1e-5
    jac = np.zeros((2, 2))
    for j in range(2):
        d = np.zeros(2)
        d[j] = eps
        hi = mean_variance_map(act, mu + d[0], nu + d[1], omega, tau)
        lo = mean_variance_map(act, mu - d[0], nu - d[1], omega, tau)
        jac[:, j] = (np.array(hi) - np.array(lo)) / (2 * eps)
    return {"mean": mu, "variance": nu, "jacobian": jac, "norm": float(np.linalg.norm(jac, 2))}


# ------------------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------------------


def signal_report(act: Activation | str, symbolic: bool = True, critical: bool = False) -> dict:
    """Moments under N(0, 1) (numeric, and exact where SymPy manages), gains, the fixed point and slope
    for σ_w = gain and for PyTorch's gain (σ_b = 0); with ``critical`` also the edge-of-chaos σ_w² for
    σ_b² = 0 (seconds to a minute: a root search over fixed points)."""
    act = as_activation(act)
    m = moments(act)
    exact = symbolic_moments(act) if symbolic else {}
    gain = 1.0 / math.sqrt(m.second) if 0 < m.second < math.inf else math.nan
    tg = torch_gain(act)
    report = {
        "activation": act.name,
        "mean": m.mean, "second": m.second, "deriv_second": m.deriv_second, "variance": m.variance,
        "exact": {k: v for k, v in exact.items() if v is not None},
        "gain": gain,
        "gain_exact": (1 / sp.sqrt(exact["second"])) if exact.get("second") is not None else None,
        "gain_backward": 1.0 / math.sqrt(m.deriv_second) if 0 < m.deriv_second < math.inf else math.nan,
        "torch_gain": tg,
        "at_gain": fixed_point(act, gain**2) if math.isfinite(gain) else None,
        "at_torch_gain": fixed_point(act, tg**2) if tg else None,
        "critical_sigma_w2": critical_sigma_w2(act) if critical else None,
    }
    return report


def _exact(report: dict, key: str) -> str:
    e = report["exact"].get(key)
    return f"  = {sp.sstr(sp.nsimplify(e) if e.is_Rational else e)}" if e is not None else ""


def format_signal_report(report: dict) -> str:
    """Text block for ``actsym show`` / ``actsym signal`` (one fact per line)."""
    lines = [f"signal propagation for {report['activation']} (z ~ N(0, 1), σ_b = 0)"]
    lines.append(f"  E[f(z)]          {_num(report['mean'])}{_exact(report, 'mean')}")
    lines.append(f"  E[f(z)^2]        {_num(report['second'])}{_exact(report, 'second')}")
    lines.append(f"  E[f'(z)^2]       {_num(report['deriv_second'])}{_exact(report, 'deriv_second')}")
    ge = report["gain_exact"]
    lines.append(f"  init gain        {_num(report['gain'], 'undefined')}"
                 + (f"  = {sp.sstr(sp.simplify(ge))}" if ge is not None else "") + "   (1/sqrt(E[f(z)^2]))")
    lines.append(f"  backward gain    {_num(report['gain_backward'], 'undefined')}   (1/sqrt(E[f'(z)^2]))")
    for key, label in (("at_gain", "σ_w = init gain"), ("at_torch_gain", "σ_w = torch gain")):
        fp = report[key]
        if fp is None:
            continue
        extra = f" {report['torch_gain']:.6f}" if key == "at_torch_gain" else ""
        slope = f" (map slope {fp.map_slope:.4g}: {fp.stability})" if math.isfinite(fp.map_slope) else ""
        lines.append(f"  {label}{extra}: q* = {fp.q:.6g}{slope}, χ = {fp.chi:.6g}"
                     + ("" if fp.converged else " (not converged)") + f" -> {_regime(fp.chi)}")
    crit = report["critical_sigma_w2"]
    if crit is not None:  # only when asked for
        lines.append(f"  edge of chaos    σ_w² = {crit:.6g} (σ_w = {math.sqrt(crit):.6g}) gives χ(q*) = 1")
    return "\n".join(lines) + "\n"


def _num(v: float, missing: str = "diverges") -> str:
    """Fixed 10 decimals for ordinary values; ``missing`` for inf/nan (E over N(0,1) does not exist)."""
    if not math.isfinite(v):
        return f"{missing:>13}"
    return f"{v: .10f}" if abs(v) < 1e6 else f"{v: .6e}"


def _regime(c: float) -> str:
    if not math.isfinite(c):
        return "diverges"
    if abs(c - 1) < 1e-6:
        return "edge of chaos"
    return f"{'ordered' if c < 1 else 'chaotic'} side (gradients x{c:.4g} per layer)"


def signal_lines(act: Activation | str) -> list[str]:
    """Lines for ``actsym show`` (no edge-of-chaos search; about a second)."""
    return format_signal_report(signal_report(act)).splitlines()
