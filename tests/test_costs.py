"""``sim.costs``: a claim run on probes records every point of its sweeps and a positive cost."""

from __future__ import annotations

from sim.claims.gap import gap3_points
from sim.config import Config
from sim.costs import estimate, format_costs, point_seconds
from sim.sweep import Point


def test_probe_run_sees_every_point_of_the_claim() -> None:
    cost = estimate("GAP-3", "quick")
    points = gap3_points("quick")
    assert cost.error == ""
    assert cost.points == len(points)
    assert cost.samples == sum(p.samples for p in points)
    assert cost.simulation_s > 0 and cost.other_s >= 0
    assert "GAP-3" in format_costs([cost]) and "total" in format_costs([cost])


def test_point_seconds_grows_with_samples() -> None:
    small = Point(Config(T=16, d=16, depth=2), 10, seed=1)
    big = Point(Config(T=16, d=16, depth=2), 100000, seed=1)
    point_seconds(small)  # loads the compiled kernels
    result, seconds_small = point_seconds(small)
    assert result.samples <= 10 and seconds_small > 0
    assert point_seconds(big)[1] > 10 * seconds_small
