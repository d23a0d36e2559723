"""Signal propagation: Gaussian moments, init gains and fixed points against known values."""

import math

import numpy as np
import pytest
import sympy as sp
import torch
from scipy import integrate

import actsym
from actsym.analysis.gauss import moments, symbolic_moments
from actsym.analysis.signal import (
    fixed_point,
    init_gain,
    init_weights_,
    normalizing_fixed_point,
    selu,
    signal_report,
    torch_gain,
)


def _quad(g):
    """E[g(z)] by adaptive quadrature (independent of the library's Gauss-Legendre nodes)."""
    pdf = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    return sum(integrate.quad(lambda z: g(z) * pdf(z), a, b, epsabs=1e-14, epsrel=1e-13)[0]
               for a, b in [(-np.inf, 0), (0, np.inf)])


def test_relu_gain_is_sqrt2_exactly():
    exact = symbolic_moments(actsym.get("relu"))
    assert exact["second"] == sp.Rational(1, 2)
    assert sp.simplify(1 / sp.sqrt(exact["second"]) - sp.sqrt(2)) == 0
    assert abs(init_gain("relu") - math.sqrt(2)) < 1e-10
    assert torch_gain(actsym.get("relu")) == pytest.approx(math.sqrt(2))


def test_tanh_unit_variance_gain():
    g = init_gain("tanh")
    assert abs(g - 1.5933) < 1e-3
    reference = 1 / math.sqrt(_quad(lambda z: math.tanh(z) ** 2))
    assert abs(g - reference) < 1e-10
    assert g < torch_gain(actsym.get("tanh")) == pytest.approx(5 / 3)


def test_selu_self_normalizing_fixed_point():
    act = selu()
    m = moments(act)
    assert abs(m.mean) < 1e-9 and abs(m.second - 1) < 1e-9
    fp = normalizing_fixed_point(act, start=(0.5, 1.5))
    assert abs(fp["mean"]) < 1e-8 and abs(fp["variance"] - 1) < 1e-8
    assert fp["norm"] < 1  # attracting (Klambauer et al. report 0.7877)
    assert fp["norm"] == pytest.approx(0.7877, abs=1e-3)
    assert fixed_point(act, 1.0).q == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("name", ["gelu", "elu", "exp2", "sin"])
def test_quadrature_matches_scipy_quad(name):
    act = actsym.get(name)
    f = lambda z: float(act.functional(torch.tensor([z], dtype=torch.float64))[0])  # noqa: E731
    m = moments(act)
    assert m.second == pytest.approx(_quad(lambda z: f(z) ** 2), rel=1e-10)
    assert m.mean == pytest.approx(_quad(f), rel=1e-9, abs=1e-12)


def test_symbolic_moments_sin_and_elu_agree_with_numeric():
    exact = symbolic_moments(actsym.get("sin"))
    assert sp.simplify(exact["second"] - (1 - sp.exp(-2)) / 2) == 0
    for name in ("sin", "elu"):
        m, ex = moments(actsym.get(name)), symbolic_moments(actsym.get(name))
        assert float(ex["deriv_second"]) == pytest.approx(m.deriv_second, rel=1e-12)
    assert symbolic_moments(actsym.get("tanh"))["second"] is None  # no closed form: not attempted


def test_variance_map_fixed_points():
    relu = actsym.get("relu")
    fp = fixed_point(relu, 2.0, q0=3.0)  # marginal: every q is fixed, χ = 1
    assert fp.q == pytest.approx(3.0) and fp.chi == pytest.approx(1.0)
    assert fixed_point(relu, 2.5).q == math.inf
    tanh = fixed_point("tanh", (5 / 3) ** 2)
    assert tanh.converged and tanh.q == pytest.approx(1.17848, abs=1e-4) and tanh.chi > 1
    assert fixed_point("tanh", 0.5).q == 0.0  # ordered phase: the signal dies


def test_fixed_point_stability():
    g = {n: init_gain(n) for n in ("relu", "tanh", "gelu")}
    assert fixed_point("relu", g["relu"] ** 2).stability == "marginal"
    assert fixed_point("tanh", g["tanh"] ** 2).stability == "stable"
    gelu = fixed_point("gelu", g["gelu"] ** 2)  # relu-like for large q: the unit fixed point repels
    assert gelu.q == pytest.approx(1.0) and gelu.stability == "unstable" and gelu.map_slope > 1.1


def test_layer_statistics_probe():
    from actsym.analysis.probe import layer_statistics

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Tanh(), torch.nn.Linear(64, 10))
    stats = layer_statistics(net, torch.randn(32, 64))
    assert [s["layer"] for s in stats] == ["0", "2"]
    assert all(s["grad_ratio"] > 0 and s["in_q"] > 0 for s in stats)
    assert all(p.grad is not None for p in net.parameters())


def test_report_lines():
    report = signal_report("relu")
    assert report["gain_exact"] == sp.sqrt(2)
    assert report["at_gain"].q == pytest.approx(1.0)


def test_init_weights_keeps_deep_relu_variance():
    torch.manual_seed(0)
    layers = []
    for _ in range(12):
        layers += [torch.nn.Linear(256, 256), actsym.get("relu").module()]
    net = torch.nn.Sequential(*layers[:-1])
    x = torch.randn(2048, 256)
    with torch.no_grad():
        default = net(x).pow(2).mean().item()  # PyTorch's default Linear init: std 1/sqrt(3 fan_in)
        assert init_weights_(net, init_gain("relu")) == 12
        init_weights_(net[0], 1.0)  # raw inputs are not activation outputs
        computed = net(x).pow(2).mean().item()
    assert default < 0.01  # q shrinks by 1/6 per layer down to the bias variance (~1e-3)
    assert 0.5 < computed < 2.0  # preserved up to finite-width fluctuations


def test_cli_handler(capsys):
    import argparse

    from actsym.analysis.signal import signal_lines
    from actsym.cli import UsageError
    from actsym.cli.analysis import add_signal_arguments, cmd_signal

    p = argparse.ArgumentParser()
    add_signal_arguments(p)
    assert cmd_signal(p.parse_args(["relu"])) == 0
    out = capsys.readouterr().out
    assert "init gain         1.4142135624  = sqrt(2)" in out and "edge of chaos" in out
    with pytest.raises(UsageError):
        cmd_signal(p.parse_args(["relu", "--sigma-b2", "-1"]))
    assert any(line.startswith("  init gain") for line in signal_lines("tanh"))
