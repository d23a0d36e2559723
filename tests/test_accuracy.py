"""The accuracy meter (actsym.accuracy): ulps, sampling, the reference, and that it catches inaccuracy."""

import math
from types import SimpleNamespace

import mpmath
import sympy as sp
import torch

import actsym
from actsym.accuracy import _exact, measure, sample_points, ulp
from actsym.spec import make_spec


def test_ulp_matches_nextafter():
    for v in (1.0, 3.5, 1e-300, 1e300, 0.1):
        assert ulp(v, torch.float64) == math.nextafter(v, math.inf) - v
    f = torch.tensor([1.0, 3.5, 1e-30], dtype=torch.float32)
    nxt = torch.nextafter(f, torch.tensor(math.inf, dtype=torch.float32))
    assert [ulp(v, torch.float32) for v in f.tolist()] == (nxt.double() - f.double()).tolist()


def test_samples_span_the_whole_range_and_include_branch_points():
    pts = sample_points(torch.float32, 400, extra=[0.5])
    mags = [abs(p) for p in pts if p]
    assert min(mags) < 1e-30 and max(mags) > 1e30 and 0.5 in pts and 0.0 in pts
    assert any(p < 0 for p in pts) and any(p > 0 for p in pts)


def test_reference_survives_cancellation():
    x = sp.Symbol("x", real=True)
    fn = sp.lambdify([x], sp.exp(x) - 1, modules="mpmath")
    v = _exact(fn, 1e-60, [])
    assert abs(v / mpmath.mpf(1e-60) - 1) < 1e-15


def _fake(expr, functional):
    return SimpleNamespace(spec=make_spec("fake", expr), functional=functional)


def test_meter_catches_cancellation_and_nonfinite_results():
    naive = _fake("expm1(x)", lambda x: torch.exp(x) - 1)  # loses every bit near 0
    r = measure(naive, torch.float64, n=200)
    assert r.functions[0].max_bits > 40 and abs(r.functions[0].worst_x) < 1e-8
    overflow = _fake("x*exp(x)/(exp(x) + 2)", lambda x: x * torch.exp(x) / (torch.exp(x) + 2))
    r = measure(overflow, torch.float64, n=200)
    assert r.functions[0].nonfinite and all(x0 > 700 for x0, _, _ in r.functions[0].nonfinite)


def test_generated_relu_and_elu_are_exact_to_a_bit():
    for name in ("relu", "elu"):
        for dtype in (torch.float32, torch.float64):
            r = measure(actsym.get(name), dtype, n=200)
            assert r.nonfinite == 0 and all(f.max_bits <= 1 for f in r.functions), r.lines()
