"""``sim.costs``: a claim run on probes records every point of its sweeps and a positive cost."""

from __future__ import annotations

import pytest

from sim.claims.gap import gap3_points
from sim.config import Config
from sim.costs import estimate, format_costs, point_seconds
from sim.stats import ROLES
from sim.sweep import Point


def test_probe_run_sees_every_point_of_the_claim() -> None:
    cost = estimate("GAP-3", "quick")
    points = gap3_points("quick")
    assert cost.error == ""
    assert cost.points == len(points)
    assert cost.samples == sum(p.samples for p in points)
    assert cost.simulation_s > 0 and cost.other_s >= 0
    assert "GAP-3" in format_costs([cost]) and "total" in format_costs([cost])
    assert cost.detectable and {p.role for p in cost.detectable} <= set(ROLES)
    assert all(p.absolute > 0 for p in cost.detectable)


def test_point_seconds_grows_with_samples() -> None:
    small = Point(Config(T=16, d=16, depth=2), 10, seed=1)
    big = Point(Config(T=16, d=16, depth=2), 100000, seed=1)
    point_seconds(small)  # loads the compiled kernels
    result, seconds_small = point_seconds(small)
    assert result.samples <= 10 and seconds_small > 0
    assert point_seconds(big)[1] > 10 * seconds_small


def test_probe_keeps_min_samples_even_for_slow_points() -> None:
    point = Point(Config(T=16, d=16, depth=2), 1000, seed=1)
    result, _ = point_seconds(point, target=0.0, min_samples=8)
    assert result.samples == 8


def test_probe_projects_the_full_standard_error() -> None:
    """The tiled probe's SE of an observable is the full run's SE up to the probe's noise; a
    projection off by 10x (one sample's zero spread, or no tiling) would fail."""
    from sim.costs import Cost, _probe_sweep
    from sim.montecarlo import simulate

    point = Point(Config(T=8, d=8, depth=1), 20000, seed=3)
    probe = _probe_sweep(Cost("x", "quick"), min_samples=64)([point])[0]
    full = simulate(point.config, point.samples, point.seed, progress=False)
    projected, actual = probe.estimate("cosine", 1).se, full.estimate("cosine", 1).se
    assert probe.samples == point.samples
    assert 0.6 < projected / actual < 1.6


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning",
                            "ignore:invalid value:RuntimeWarning")  # the twin's log(0)
def test_probe_jitter_keeps_resolved_scales(monkeypatch) -> None:
    """PM-1 fits rates to ``sqrt(1 - a^2)`` of alignments ``a`` within 5e-13 of 1: the probes'
    positivity jitter must not push them past 1 (a 1e-6 jitter did, and every projection of the
    claim failed with a NaN standard error)."""
    import math

    import sim.costs

    cost = estimate("PM-1", "quick")
    assert cost.detectable and all(math.isfinite(p.relative) for p in cost.detectable)
    monkeypatch.setattr(sim.costs, "JITTER", 1e-6)
    assert not estimate("PM-1", "quick").detectable  # the twin: the old jitter breaks it


def test_summary_is_over_exact_comparisons_and_keeps_zero_predictions() -> None:
    """A reference comparison (an asymptotic law beside the verdict) neither sets the claim's
    largest detectable discrepancy nor counts against the target; a zero prediction keeps its
    absolute detectable discrepancy. Counting the reference one as exact would give 30%."""
    import math

    from sim.costs import Cost, Projection

    cost = Cost("x", "full", detectable=[
        Projection("rate", 0.005, 0.001, "exact"),
        Projection("asymptotic law", 0.30, 0.06, "reference"),
        Projection("zero law", math.inf, 0.002, "reference")])
    assert cost.largest_detectable == 0.005 and cost.above_target == 0
    assert cost.reference_above_target == 2
    assert cost.of_role("reference")[1].absolute == 0.002
    table = format_costs([cost])
    assert "0.5%" in table and "0 of 1" in table and "2 of 2" in table


def test_bias_limited_comparisons_are_told_apart() -> None:
    """A comparison whose stated bias budget alone exceeds 1% of its prediction cannot reach
    the target at any sample count; one just above it because of its standard error can. The
    twin: the same detectable discrepancy with a budget of 0.9% is not bias-limited."""
    from sim.costs import Cost, Projection

    # prediction 0.2 in both: detectable 0.006 = 3%
    limited = Projection("theory-limited", 0.03, 0.006, "exact", bias=0.0024)  # 1.2%
    sampled = Projection("sample-limited", 0.03, 0.006, "exact", bias=0.0018)  # 0.9%
    assert limited.bias_limited and not sampled.bias_limited
    cost = Cost("x", "full", detectable=[limited, sampled])
    assert cost.above_target == 2 and cost.bias_limited == 1
    assert "2 of 2 (1 bias-limited)" in format_costs([cost])
    assert Cost("y", "full", detectable=[sampled]).bias_limited == 0
    assert not Projection("exact identity", 0.0, 0.0, "exact").bias_limited  # no 0/0
