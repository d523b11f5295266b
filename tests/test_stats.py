"""The calibrated comparison: it passes on truth at the stated rate, fails on a wrong
prediction, and reports what it could detect."""

import math

import numpy as np
import pytest

from sim import stats


def test_critical_value_is_bonferroni_two_sided() -> None:
    z = stats.critical_z(10, 1e-6)
    from scipy.stats import norm

    assert math.isclose(2 * norm.sf(z) * 10, 1e-6, rel_tol=1e-9)


def test_compare_passes_truth_and_rejects_ten_percent() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 1.0, 10_000)
    est, se = x.mean(), x.std(ddof=1) / math.sqrt(x.size)
    assert stats.compare(2.0, est, se).passed
    assert not stats.compare(2.2, est, se).passed  # mutation twin: 10% off


def test_false_fail_rate_is_calibrated() -> None:
    """At a per-test rate of 5%, about 5% of true comparisons fail (binomial bounds)."""
    rng = np.random.default_rng(1)
    fails = 0
    n = 4000
    for _ in range(n):
        x = rng.normal(0.0, 1.0, 50)
        c = stats.compare(0.0, x.mean(), x.std(ddof=1) / math.sqrt(50), family_rate=0.05)
        fails += not c.passed
    # t-distributed z at n=50 inflates slightly; the bound allows 0.035 .. 0.075
    assert 0.035 < fails / n < 0.075


def test_student_t_is_calibrated_for_few_samples() -> None:
    """With 5 samples per estimate the normal critical value fails far too often; Student's t
    with 4 degrees of freedom holds the stated 5% rate."""
    rng = np.random.default_rng(3)
    n, m = 4000, 5
    fails_t = fails_normal = 0
    for _ in range(n):
        x = rng.normal(0.0, 1.0, m)
        se = x.std(ddof=1) / math.sqrt(m)
        fails_t += not stats.compare(0.0, x.mean(), se, family_rate=0.05, dof=m - 1).passed
        fails_normal += not stats.compare(0.0, x.mean(), se, family_rate=0.05).passed
    assert 0.04 < fails_t / n < 0.06
    assert fails_normal / n > 0.08
    assert stats.critical_z(1, 0.05, dof=4) > stats.critical_z(1, 0.05)
    with pytest.raises(ValueError, match="dof"):
        stats.critical_z(1, 0.05, dof=0)


def test_detectable_is_the_80_percent_power_discrepancy() -> None:
    c = stats.compare(1.0, 1.0, 0.01, n_tests=1)
    rng = np.random.default_rng(2)
    shifted = 1.0 + c.detectable + rng.normal(0, 0.01, 20_000)
    power = np.mean([not stats.compare(1.0, e, 0.01).passed for e in shifted])
    assert abs(power - 0.8) < 0.02
    assert c.detectable_relative == pytest.approx(c.detectable)


def test_bias_budget_widens_and_is_reported() -> None:
    assert not stats.compare(1.0, 1.05, 0.001).passed
    c = stats.compare(1.0, 1.05, 0.001, bias=0.05)
    assert c.passed and c.detectable > 0.05


def test_scale_sets_what_a_relative_discrepancy_refers_to() -> None:
    """A difference predicted 0 has no relative discrepancy of its own (infinite); with the size
    of its terms as ``scale`` it has one, and a bad scale is refused."""
    zero = stats.compare(0.0, 0.0, 0.001)
    assert zero.detectable_relative == float("inf") and not zero.resolved
    scaled = stats.compare(0.0, 0.0, 0.001, scale=0.8)
    assert scaled.detectable_relative == pytest.approx(scaled.detectable / 0.8)
    assert scaled.resolved and scaled.to_dict()["scale"] == 0.8
    assert stats.compare(2.0, 2.0, 0.001).detectable_relative == pytest.approx(
        stats.compare(2.0, 2.0, 0.001, scale=2.0).detectable_relative)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="scale="):
            stats.compare(0.0, 0.0, 0.001, scale=bad)


def test_unresolved_comparison_is_flagged() -> None:
    assert not stats.compare(1.0, 1.0, 0.05).resolved
    assert stats.compare(1.0, 1.0, 0.001).resolved


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_se_is_rejected(bad: float) -> None:
    with pytest.raises(ValueError, match="se="):
        stats.compare(1.0, 1.0, bad)


def test_power_law_fit_recovers_exponent_and_rejects_wrong_one() -> None:
    rng = np.random.default_rng(3)
    x = np.geomspace(16, 4096, 12)
    y_true = 3.0 * x**-0.5
    se = 0.002 * y_true
    y = y_true + rng.normal(0, se)
    fit = stats.fit_power_law(x, y, se)
    assert fit.contains(-0.5)
    assert not fit.contains(-0.55)  # wrong exponent by 10%


def test_role_defaults_to_exact_and_is_validated() -> None:
    c = stats.compare(1.0, 1.0, 0.01)
    assert c.role == "exact"
    assert stats.compare(1.0, 1.0, 0.01, role="reference").role == "reference"
    with pytest.raises(ValueError, match="role"):
        stats.compare(1.0, 1.0, 0.01, role="approx")


def test_role_round_trips_through_pickle_and_json() -> None:
    import json
    import pickle

    c = stats.compare(1.0, 1.02, 0.01, params={"T": 8}, label="x", role="reference", dof=9)
    assert pickle.loads(pickle.dumps(c)) == c
    assert json.loads(json.dumps(c.to_dict()))["role"] == "reference"


def test_twins_keep_the_role_and_with_role_filters() -> None:
    from sim.claims import mutation_twins, with_role

    cs = [stats.compare(1.0, 1.0, 0.001, label="a"),
          stats.compare(2.0, 2.0, 0.001, label="b", role="reference")]
    twins = mutation_twins(cs, 2)
    assert [t.role for t in twins] == ["exact", "reference"]
    assert with_role(cs) == cs[:1] and with_role(cs, "reference") == cs[1:]
    with pytest.raises(ValueError, match="role"):
        with_role(cs, "deciding")
