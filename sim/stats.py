"""Calibrated comparison of a prediction with a Monte-Carlo estimate.

A ``Comparison`` is a two-sided z-test of ``estimate - prediction`` against the standard error,
widened by a stated finite-size ``bias`` budget, at a family-wise false-fail rate ``family_rate``
split over the run's ``n_tests`` comparisons (Bonferroni):

    passed  <=>  |estimate - prediction| <= z_crit * se + bias,   z_crit = Phi^{-1}(1 - rate/(2 n))

When the standard error is itself estimated from few samples, pass ``dof`` (samples - 1): the
critical value and the power quantile then come from Student's t with ``dof`` degrees of freedom.
``detectable`` is the smallest discrepancy the comparison rejects with probability ``POWER``
(80%): ``(z_crit + Phi^{-1}(POWER)) * se + bias``. It is reported absolutely and relative to the
comparison's ``scale``: ``|prediction|``, unless the comparison states another (a difference
predicted to be 0 is a discrepancy between its terms, so its scale is their size); a comparison
whose relative detectable discrepancy exceeds ``RESOLUTION`` (5%) cannot confirm anything.

A comparison's ``role`` says how a claim uses it (``ROLES``):

- ``"exact"``: the comparisons a claim's verdict is decided on (``sim.claims.decide``): its exact
  finite-size theory in the stated regime (or, where there is none, the finite-size form of the
  law it states); a rejection refutes the claim;
- ``"reference"``: reported beside the exact ones: an asymptotic or approximate law (expected to
  deviate at finite size), or a prediction the profile cannot resolve at ``RESOLUTION``. Its
  rejection is a finding about that law: it never refutes the claim (at most it keeps it from
  ``confirmed``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats

FAMILY_RATE = 1e-6
POWER = 0.8
RESOLUTION = 0.05
#: how a claim uses a comparison (see the module docstring)
ROLES = ("exact", "reference")


def _reference(dof: int | None):
    if dof is None:
        return stats.norm
    if isinstance(dof, bool) or int(dof) != dof or dof < 1:
        raise ValueError(f"dof={dof!r} must be an integer >= 1 (or None for a known SE)")
    return stats.t(int(dof))


def critical_z(n_tests: int = 1, family_rate: float = FAMILY_RATE,
               dof: int | None = None) -> float:
    """Two-sided Bonferroni critical value for ``n_tests`` comparisons (Student's t with ``dof``
    degrees of freedom when given)."""
    if n_tests < 1:
        raise ValueError(f"n_tests={n_tests!r} must be >= 1")
    if not 0 < family_rate < 1:
        raise ValueError(f"family_rate={family_rate!r} must be in (0, 1)")
    return float(_reference(dof).isf(family_rate / (2 * n_tests)))


@dataclass(frozen=True)
class Comparison:
    """Prediction against estimate at one parameter point (see the module docstring)."""

    params: dict[str, Any]
    prediction: float
    estimate: float
    se: float
    bias: float
    z: float
    z_crit: float
    detectable: float
    passed: bool
    label: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    dof: int | None = None  # degrees of freedom of se (None: known se, normal reference)
    role: str = "exact"  # one of ROLES: decides the verdict, or reported beside
    scale: float | None = None  # what a relative discrepancy is relative to (None: |prediction|)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role={self.role!r} must be one of {', '.join(ROLES)}")
        if self.scale is not None and not (self.scale > 0 and math.isfinite(self.scale)):
            raise ValueError(f"scale={self.scale!r} must be positive and finite (or None)")

    @property
    def detectable_relative(self) -> float:
        scale = abs(self.prediction) if self.scale is None else self.scale
        return self.detectable / scale if scale else math.inf

    @property
    def resolved(self) -> bool:
        """True when the comparison could detect a ``RESOLUTION`` relative discrepancy."""
        return self.detectable_relative <= RESOLUTION

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["detectable_relative"] = self.detectable_relative
        return {k: _jsonable(v) for k, v in d.items()}


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (np.floating, float)):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def compare(prediction: float, estimate: float, se: float, *, bias: float = 0.0,
            n_tests: int = 1, family_rate: float = FAMILY_RATE,
            params: dict[str, Any] | None = None, label: str = "",
            dof: int | None = None, role: str = "exact",
            scale: float | None = None) -> Comparison:
    """Compare ``prediction`` with ``estimate +- se`` (see the module docstring); ``role`` is
    ``"exact"`` (decides the verdict) or ``"reference"`` (reported beside); ``scale`` is what
    the relative detectable discrepancy refers to (default ``|prediction|``)."""
    if not (se > 0 and math.isfinite(se)):
        raise ValueError(f"se={se!r} must be positive and finite")
    if bias < 0:
        raise ValueError(f"bias={bias!r} must be >= 0")
    z_crit = critical_z(n_tests, family_rate, dof)
    diff = float(estimate) - float(prediction)
    passed = bool(math.isfinite(diff) and abs(diff) <= z_crit * se + bias)
    detectable = (z_crit + float(_reference(dof).ppf(POWER))) * se + bias
    return Comparison(dict(params or {}), float(prediction), float(estimate), float(se),
                      float(bias), diff / se, z_crit, detectable, passed, label, dof=dof,
                      role=role, scale=None if scale is None else float(scale))


@dataclass(frozen=True)
class ExponentFit:
    """Weighted least-squares fit ``log y = a + b log x`` with a confidence interval on ``b``."""

    slope: float
    intercept: float
    slope_se: float
    interval: tuple[float, float]
    level: float

    def contains(self, value: float) -> bool:
        return self.interval[0] <= value <= self.interval[1]


def fit_power_law(x: np.ndarray, y: np.ndarray, y_se: np.ndarray, *,
                  level: float = 1 - FAMILY_RATE) -> ExponentFit:
    """Fit ``y = C x^b`` by weighted least squares on logs (``se(log y) = y_se / y``).

    The interval is a Student-t interval at ``level`` with the residual scatter folded in
    (scale by ``sqrt(chi2/dof)`` when that exceeds 1), so a misfit widens it, never shrinks it."""
    x, y, y_se = (np.asarray(a, dtype=float) for a in (x, y, y_se))
    if x.size < 3:
        raise ValueError("a power-law fit needs at least 3 points")
    if np.any(y <= 0) or np.any(x <= 0):
        raise ValueError("a power-law fit needs positive x and y")
    lx, ly, w = np.log(x), np.log(y), (y / y_se) ** 2
    design = np.column_stack([np.ones_like(lx), lx])
    cov = np.linalg.inv(design.T @ (w[:, None] * design))
    coef = cov @ design.T @ (w * ly)
    resid = ly - design @ coef
    dof = x.size - 2
    chi2 = float(np.sum(w * resid**2))
    scale = max(1.0, chi2 / dof) if dof > 0 else 1.0
    slope_se = float(np.sqrt(cov[1, 1] * scale))
    t = float(stats.t.ppf(0.5 + level / 2, dof)) if dof > 0 else math.inf
    b = float(coef[1])
    return ExponentFit(b, float(coef[0]), slope_se, (b - t * slope_se, b + t * slope_se), level)
