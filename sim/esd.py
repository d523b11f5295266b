"""Calibrated comparison of an empirical spectral distribution (ESD) with a law.

Values within one matrix (its eigenvalues) are dependent, so a KS test on all values pooled is
not calibrated. Here the matrix is the sampling unit: at ``K`` fixed points ``x_k`` (the law's
quantiles at ``k/(K + 1)``) each matrix ``i`` gives its ESD ``F_i(x_k)`` (the fraction of its
values ``<= x_k``); matrices are independent, so the mean ESD over ``n`` matrices has a standard
error from their spread. Each point is a two-sided Student-t test (``n - 1`` degrees of freedom)
of ``mean F(x_k) - F(x_k)`` against that error plus a stated ``bias`` budget, Bonferroni over the
``K`` points and the run's ``n_tests`` comparisons.

The ESD passes when every point passes. It reports the KS distance on the grid,
``sup_k |mean F(x_k) - F(x_k)|``, the smallest KS distance it detects with probability
``sim.stats.POWER`` and, as the discrepancy the resolution standard refers to, the smallest
relative mis-scaling ``eps`` of the law (``x -> x (1 +- eps)``) it detects with that power
(``detectable_scale``). ``as_comparison`` folds the test into a ``sim.stats.Comparison`` at the
worst point whose ``detectable_relative`` is ``detectable_scale``: an ESD comparison that
cannot detect a 5% mis-scaling of the law cannot confirm.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from sim.stats import FAMILY_RATE, POWER, Comparison, critical_z

CDF = Callable[[np.ndarray], np.ndarray]
POINTS = 24


@dataclass(frozen=True)
class EsdTest:
    """Outcome of ``esd_test``; arrays have one entry per grid point ``x_k``."""

    points: np.ndarray
    law: np.ndarray  # F(x_k)
    mean: np.ndarray  # mean ESD over matrices at x_k
    se: np.ndarray  # its standard error
    bias: float
    z_crit: float
    dof: int
    ks: float  # max_k |mean - law|
    ks_detectable: float
    detectable_scale: float
    passed: bool

    @property
    def z(self) -> np.ndarray:
        return (self.mean - self.law) / self.se

    @property
    def worst(self) -> int:
        """Index of the point with the largest ``|z|``."""
        return int(np.argmax(np.abs(self.z)))

    def as_comparison(self, params: dict[str, Any] | None = None, label: str = "") -> Comparison:
        """The test as a ``Comparison`` at its worst point (prediction ``F(x_k)``, estimate the
        mean ESD there); ``detectable`` is ``detectable_scale * F(x_k)``, so
        ``detectable_relative`` is the smallest detectable mis-scaling of the law; ``extra``
        holds the KS distances and the grid."""
        k = self.worst
        extra = {"ks": self.ks, "ks_detectable": self.ks_detectable,
                 "detectable_scale": self.detectable_scale, "points": len(self.points),
                 "worst_x": float(self.points[k])}
        return Comparison(dict(params or {}), float(self.law[k]), float(self.mean[k]),
                          float(self.se[k]), self.bias, float(self.z[k]), self.z_crit,
                          self.detectable_scale * abs(float(self.law[k])), self.passed, label,
                          extra, self.dof)


def mean_esd(values: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ESD at ``points`` over the rows of ``values`` (``matrices x values per matrix``) and
    its standard error. The error is floored at ``1/(values per matrix x matrices)``, the
    resolution of the mean, so a point no matrix straddles is not infinitely sharp."""
    values = np.asarray(values, dtype=float)
    n, m = values.shape
    if n < 2:
        raise ValueError(f"an ESD test needs at least 2 matrices, got {n}")
    per = (values[:, :, None] <= np.asarray(points)[None, None, :]).mean(axis=1)  # n x K
    se = per.std(axis=0, ddof=1) / np.sqrt(n)
    return per.mean(axis=0), np.maximum(se, 1.0 / (m * n))


def esd_test(values: np.ndarray, cdf: CDF, quantile: CDF, *, points: int = POINTS,
             bias: float = 0.0, n_tests: int = 1, family_rate: float = FAMILY_RATE) -> EsdTest:
    """Test the ESD of ``values`` (``matrices x values per matrix``) against the law with
    ``cdf`` and ``quantile`` (see the module docstring); ``bias`` is a budget on
    ``|E F_i(x) - F(x)|`` at every point."""
    if bias < 0:
        raise ValueError(f"bias={bias!r} must be >= 0")
    values = np.asarray(values, dtype=float)
    probs = np.arange(1, points + 1) / (points + 1)
    grid = np.asarray(quantile(probs), dtype=float)
    law = np.asarray(cdf(grid), dtype=float)
    mean, se = mean_esd(values, grid)
    dof = values.shape[0] - 1
    z_crit = critical_z(n_tests * points, family_rate, dof)
    reach = z_crit + float(sps.t(dof).ppf(POWER))
    diff = np.abs(mean - law)
    passed = bool(np.all(diff <= z_crit * se + bias))
    detect = reach * se + bias
    return EsdTest(grid, law, mean, se, float(bias), z_crit, dof, float(diff.max()),
                   float(detect.min()), detectable_scale(cdf, grid, law, detect), passed)


def detectable_scale(cdf: CDF, grid: np.ndarray, law: np.ndarray, detect: np.ndarray) -> float:
    """Smallest ``eps`` such that both mis-scaled laws ``F(x/(1 +- eps))`` differ from ``F`` at
    some grid point by at least ``detect`` there (bisection; ``inf`` if not within 100%)."""

    def seen(eps: float) -> bool:
        up = np.abs(np.asarray(cdf(grid / (1 + eps))) - law) >= detect
        down = np.abs(np.asarray(cdf(grid / (1 - eps))) - law) >= detect if eps < 1 else up
        return bool(np.any(up) and np.any(down))

    lo, hi = 0.0, 0.99
    if not seen(hi):
        return float("inf")
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if seen(mid) else (mid, hi)
    return hi


def scaled(cdf: CDF, quantile: CDF, factor: float) -> tuple[CDF, CDF]:
    """The law of ``factor * X`` (the mutation twin of an ESD comparison)."""
    return (lambda xs: cdf(np.asarray(xs) / factor)), (lambda p: factor * np.asarray(quantile(p)))
