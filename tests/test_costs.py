"""``sim.costs``: a claim run on probes records every point of its sweeps and a positive cost."""

from __future__ import annotations

import numpy as np
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
    """PM-1 fits rates to sines from misalignments ``g = 1 - a`` down to 1e-11: the probes'
    positivity jitter must not push any ``g`` below 0. (A 1e-6 jitter of ``a`` itself, within
    5e-13 of 1, once pushed it past 1, and every projection failed with a NaN standard error;
    the sines no longer come from ``a``, so the twin is a jitter of order 1.)"""
    import math

    import sim.costs

    cost = estimate("PM-1", "quick")
    assert cost.detectable and all(math.isfinite(p.relative) for p in cost.detectable)
    monkeypatch.setattr(sim.costs, "JITTER", 3.0)
    assert not estimate("PM-1", "quick").detectable  # the twin: negative g break the fit


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


def test_a_point_shared_by_claims_is_probed_and_totalled_once() -> None:
    """REM-1 and REM-2 judge the same rows sweep: with one ``probes`` dict the second estimate
    reuses the first's probes and counts their whole cost as shared, so the total is one sweep,
    not two (the twin: separate estimates, whose naive sum is twice as much)."""
    from sim.claims.rem import rows_points
    from sim.costs import Cost, account_shared

    probes: dict = {}
    first = estimate("REM-1", "quick", probes=probes)
    second = estimate("REM-2", "quick", probes=probes)
    account_shared([first, second])
    points = rows_points("quick")
    assert len(probes) == len(points) == first.points == second.points
    assert first.shared_s == 0 and second.shared_s == second.simulation_s > 0
    assert second.simulation_s == first.simulation_s  # the same probes, not new ones
    total = format_costs([first, second]).splitlines()[-1]
    assert f"**{first.simulation_s / 3600:.2f}**" in total
    alone = estimate("REM-2", "quick")
    assert alone.shared_s == 0
    naive = Cost("x", "quick", simulation_s=first.simulation_s + alone.simulation_s)
    assert naive.simulation_s > 1.5 * first.simulation_s


def test_a_point_repeated_within_a_claim_is_counted_once() -> None:
    """A real run computes a repeated point once (the sweep and the cache deduplicate it)."""
    from sim.costs import Cost, _probe_sweep

    point = Point(Config(T=8, d=8, depth=1), 100, seed=3)
    cost = Cost("x", "quick")
    fake = _probe_sweep(cost)
    fake([point, point])
    fake([point])
    assert cost.points == 1 and cost.samples == 100 and cost.shared_s == 0


def test_list_schedule_hands_points_out_in_order() -> None:
    """Greedy list scheduling: [4, 1, 1] on 2 workers takes 4 (the perfect split, 3, is not
    reachable), on 1 worker the sum, and never more than Graham's sum/W + max."""
    from sim.costs import list_schedule

    assert list_schedule([4, 1, 1], 2) == 4
    assert list_schedule([1, 1, 4], 2) == 5  # order matters: the long point comes last
    assert list_schedule([4, 1, 1], 1) == 6
    assert list_schedule([], 8) == 0
    rng = np.random.default_rng(0)
    for _ in range(20):
        t = list(rng.exponential(size=rng.integers(1, 40)))
        w = int(rng.integers(1, 10))
        assert max(max(t), sum(t) / w) <= list_schedule(t, w) <= sum(t) / w + max(t) + 1e-12
    with pytest.raises(ValueError):
        list_schedule([1.0], 0)


def test_wall_time_model_serves_repeated_points_from_the_cache() -> None:
    """A claim's own work runs on the client, each sweep is scheduled, and a point an earlier
    sweep or claim computed costs nothing: the total counts it once (16 hours, not 20)."""
    from sim.costs import Cost, account_shared, wall_seconds

    h = 3600.0
    a = Cost("A", "full", other_s=10 * h, simulation_s=8 * h,
             sweeps=[[("p", 4 * h, 10), ("q", 4 * h, 10)]])
    b = Cost("B", "full", other_s=1 * h, simulation_s=12 * h,
             sweeps=[[("p", 4 * h, 10)], [("r", 8 * h, 5)]])
    assert wall_seconds([a, b], 1) == (10 + 8 + 1 + 0 + 8) * h
    # whole points: q and p side by side, r alone on one worker
    assert wall_seconds([a, b], 2, blocks=False) == (10 + 4 + 1 + 0 + 8) * h
    # blocks of samples (sample_blocks): p and q as 5 + 5 samples, 2 hours each; r's 5
    # samples as 2 + 3, 3.2 and 4.8 hours
    assert wall_seconds([a, b], 2) == pytest.approx((10 + 4 + 1 + 0 + 4.8) * h)
    # 8 workers: p and q as 1,1,1,2,1,1,1,2 samples (0.4 or 0.8 h), greedily 1.6 h; r as 5
    # blocks of one sample, 1.6 h
    assert wall_seconds([a, b], 8) == pytest.approx((10 + 1.6 + 1 + 0 + 1.6) * h)
    account_shared([a, b])
    assert (a.shared_s, b.shared_s) == (0.0, 4 * h)
    total = format_costs([a, b]).splitlines()[-1]
    assert total.startswith("| **total** | 3 | 25 | **16.00** |")  # unique points


def test_saved_costs_load_back(tmp_path) -> None:
    from sim.costs import Cost, Projection, load_costs, save_costs

    cost = Cost("A", "full", points=1, samples=10, simulation_s=2.5, other_s=1.0,
                kinds={"order": 2.5}, detectable=[Projection("x", 0.01, 0.2, "exact", 0.1)],
                sweeps=[[("p", 2.5, 10)]])
    save_costs([cost], str(tmp_path / "c.json"))
    assert load_costs([str(tmp_path / "c.json")]) == [cost]
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="bad.json"):
        load_costs([str(tmp_path / "bad.json")])


def test_direct_monte_carlo_counts_as_simulation() -> None:
    """``map_samples`` in a claim runs for real under ``estimate``; its CPU time is a one-point
    sweep call of its own (blocks on a cluster), not the claim's own client work."""
    from sim.costs import DIRECT, Cost, _timed_map, wall_seconds
    from sim.hcni import wo_singular_values
    from sim.sweep import map_samples

    cost = Cost("X", "full")
    fake = _timed_map(cost)
    out = fake(wo_singular_values, 40, 8, 2, seed=1, executor="serial")
    assert out.tobytes() == map_samples(wo_singular_values, 40, 8, 2, seed=1).tobytes()
    [[(key, seconds, samples)]] = cost.sweeps
    assert key.startswith("map_samples:") and samples == 40 and seconds > 0
    assert cost.simulation_s == cost.kinds[DIRECT] == seconds == -cost.other_s
    # on 4 workers it runs in 4 blocks of 10 samples: a quarter of the time
    assert wall_seconds([cost], 4) == pytest.approx(-seconds + seconds / 4)
    # its samples count in the total, but it is not a sweep point
    assert format_costs([cost]).splitlines()[-1].startswith("| **total** | 0 | 40 |")
