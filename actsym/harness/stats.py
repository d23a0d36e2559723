"""Small-sample statistics for seed-paired comparisons.

* :func:`summary` — mean, sample std and a 95 % t confidence interval of the mean.
* :func:`paired` — mean difference A − B over seeds present in both, paired t-test p-value, the
  t CI and a seeded bootstrap CI of the mean difference, and a ``significant`` flag.

The Student-t distribution comes from ``scipy.stats`` when it is importable; otherwise from the
regularised incomplete beta function (Lentz continued fraction), accurate to ~1e-10.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

try:  # optional: the fallback below gives the same numbers
    from scipy import stats as _scipy_stats
except ImportError:  # pragma: no cover - exercised only without scipy
    _scipy_stats = None


# ----------------------------------------------------------------------------------------------
# Student t without scipy


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(ln_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(ln_front) * _betacf(b, a, 1.0 - x) / b


def t_sf2(t: float, df: float) -> float:
    """Two-sided p-value P(|T| ≥ |t|) of Student's t with ``df`` degrees of freedom."""
    if math.isnan(t):
        return float("nan")
    if _scipy_stats is not None:
        return float(2 * _scipy_stats.t.sf(abs(t), df))
    return _betainc(df / 2.0, 0.5, df / (df + t * t))


def t_ppf(q: float, df: float) -> float:
    """Quantile of Student's t (``q`` in (0.5, 1))."""
    if _scipy_stats is not None:
        return float(_scipy_stats.t.ppf(q, df))
    lo, hi = 0.0, 1.0
    while t_sf2(hi, df) / 2 > 1 - q:
        hi *= 2.0
    for _ in range(200):  # bisection on the upper tail
        mid = (lo + hi) / 2
        if t_sf2(mid, df) / 2 > 1 - q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


# ----------------------------------------------------------------------------------------------
# summaries


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2


def summary(values: Sequence[float], level: float = 0.95) -> Summary:
    """Mean, sample standard deviation (ddof 1) and t confidence interval of the mean."""
    xs = [float(v) for v in values]
    n = len(xs)
    if n == 0:
        nan = float("nan")
        return Summary(0, nan, nan, nan, nan)
    mean = sum(xs) / n
    if n == 1:
        return Summary(1, mean, float("nan"), float("nan"), float("nan"))
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_ppf(0.5 + level / 2, n - 1) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half)


@dataclass(frozen=True)
class Paired:
    n: int
    mean_diff: float
    std_diff: float
    t: float
    p_value: float
    ci_low: float
    ci_high: float
    boot_low: float
    boot_high: float
    significant: bool


def bootstrap_ci(diffs: Sequence[float], level: float = 0.95, n_boot: int = 10_000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``diffs`` (resampling seeds, seeded RNG)."""
    xs = [float(d) for d in diffs]
    n = len(xs)
    if n < 2:
        return float("nan"), float("nan")
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(xs, k=n)) / n for _ in range(n_boot))
    lo_i = int(math.floor((1 - level) / 2 * n_boot))
    hi_i = min(int(math.ceil((1 + level) / 2 * n_boot)) - 1, n_boot - 1)
    return means[lo_i], means[hi_i]


#: fewest paired seeds for which a difference may be called significant
MIN_SEEDS_FOR_SIGNIFICANCE = 5


def paired(a: Sequence[float], b: Sequence[float], level: float = 0.95, alpha: float = 0.05,
           n_boot: int = 10_000, seed: int = 0) -> Paired:
    """Paired comparison of equal-length ``a`` and ``b`` (same seeds, same order): A − B.

    ``significant`` requires n ≥ MIN_SEEDS_FOR_SIGNIFICANCE, p < ``alpha`` and a bootstrap CI that excludes 0
    (with fewer pairs the bootstrap distribution has a handful of distinct values and the t-test's normality
    assumption cannot be checked: no claim is made).
    """
    if len(a) != len(b):
        raise ValueError("paired samples must have equal length")
    diffs = [float(x) - float(y) for x, y in zip(a, b, strict=True)]
    n = len(diffs)
    s = summary(diffs, level)
    if n < 2:
        nan = float("nan")
        return Paired(n, s.mean, nan, nan, nan, nan, nan, nan, nan, False)
    if s.std == 0.0:
        t = 0.0 if s.mean == 0.0 else math.copysign(math.inf, s.mean)
        p = 1.0 if s.mean == 0.0 else 0.0
    else:
        t = s.mean / (s.std / math.sqrt(n))
        p = t_sf2(t, n - 1)
    lo, hi = bootstrap_ci(diffs, level, n_boot, seed)
    significant = n >= MIN_SEEDS_FOR_SIGNIFICANCE and p < alpha and (lo > 0 or hi < 0)
    return Paired(n, s.mean, s.std, t, p, s.ci_low, s.ci_high, lo, hi, significant)
