"""Statistics: known values, scipy vs the built-in t distribution, paired tests, bootstrap."""

from __future__ import annotations

import math

import pytest

from actsym.harness import stats


@pytest.mark.parametrize("df,q,expected", [(1, 0.975, 12.706204736), (4, 0.975, 2.776445105), (9, 0.975, 2.262157163),
                                           (30, 0.975, 2.042272456), (4, 0.995, 4.604094871)])
def test_t_quantiles_known_values(df, q, expected, monkeypatch):
    assert stats.t_ppf(q, df) == pytest.approx(expected, rel=1e-8)
    monkeypatch.setattr(stats, "_scipy_stats", None)  # the fallback gives the same numbers
    assert stats.t_ppf(q, df) == pytest.approx(expected, rel=1e-7)


@pytest.mark.parametrize("t,df,expected", [(2.0, 5, 0.1019395), (0.5, 3, 0.6514480), (3.5, 10, 0.0057265)])
def test_two_sided_p_fallback(t, df, expected, monkeypatch):
    monkeypatch.setattr(stats, "_scipy_stats", None)
    assert stats.t_sf2(t, df) == pytest.approx(expected, abs=1e-7)
    assert stats.t_sf2(-t, df) == pytest.approx(expected, abs=1e-7)


def test_summary_known_values():
    s = stats.summary([1.0, 2.0, 3.0, 4.0, 5.0])
    assert s.n == 5 and s.mean == 3.0
    assert s.std == pytest.approx(math.sqrt(2.5))
    half = 2.776445105 * math.sqrt(2.5) / math.sqrt(5)
    assert (s.ci_low, s.ci_high) == pytest.approx((3 - half, 3 + half))
    one = stats.summary([0.7])
    assert one.mean == 0.7 and math.isnan(one.std) and math.isnan(one.ci_low)
    assert stats.summary([]).n == 0


def test_paired_t_test_known_example():
    # differences 1, 2, 3, 4, 5 → mean 3, sd sqrt(2.5), t = 3 / (sqrt(2.5)/sqrt(5)) = 4.2426, df 4, p = 0.01324
    a = [11.0, 12.0, 13.0, 14.0, 15.0]
    b = [10.0, 10.0, 10.0, 10.0, 10.0]
    p = stats.paired(a, b)
    assert p.n == 5 and p.mean_diff == 3.0
    assert p.t == pytest.approx(4.242640687)
    assert p.p_value == pytest.approx(0.013236, abs=1e-5)
    assert p.boot_low >= 1.0 and p.boot_high <= 5.0 and p.boot_low < 3.0 < p.boot_high
    assert p.significant


def test_paired_not_significant_and_degenerate_cases():
    noisy = stats.paired([1.0, 2.0, 3.0, 4.0], [1.5, 1.5, 3.5, 3.5])
    assert not noisy.significant and noisy.p_value > 0.5
    same = stats.paired([0.9, 0.8], [0.9, 0.8])
    assert same.mean_diff == 0.0 and same.p_value == 1.0 and not same.significant
    single = stats.paired([0.9], [0.8])
    assert single.n == 1 and not single.significant and math.isnan(single.p_value)
    with pytest.raises(ValueError):
        stats.paired([1.0], [1.0, 2.0])


def test_bootstrap_is_seeded():
    diffs = [0.1, -0.2, 0.3, 0.05, 0.0, 0.2]
    assert stats.bootstrap_ci(diffs, seed=3) == stats.bootstrap_ci(diffs, seed=3)
    lo, hi = stats.bootstrap_ci(diffs, n_boot=2000)
    assert min(diffs) <= lo < sum(diffs) / len(diffs) < hi <= max(diffs)
