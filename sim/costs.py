"""What a profile costs in CPU time, estimated without running its simulations in full.

``estimate(claim_id, profile)`` runs the claim with its sweeps replaced by *probes*: every point is
simulated with a few samples, timed (``point_seconds``: fixed cost plus marginal cost per sample),
and the probe's per-sample values are repeated up to the point's sample count so that the claim's
statistics and theory run to the end. The claim's other work (theory, quadratures, fits) is timed
as it runs. Verdicts from such a run mean nothing and are discarded.

Times are the process's CPU time (``time.process_time``), so a busy machine does not inflate
them; run it with one numba thread so that they are seconds on one core:
``NUMBA_NUM_THREADS=1 python -m sim.costs --profile full [CLAIM ...]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import numpy as np

from sim.markdown import markdown_table
from sim.montecarlo import Result, simulate
from sim.sweep import Point


@dataclass
class Cost:
    """Estimated CPU seconds of one claim under one profile."""

    claim: str
    profile: str
    points: int = 0
    samples: int = 0
    simulation_s: float = 0.0  # estimated: probe time x samples / probe, summed over points
    other_s: float = 0.0  # measured: the claim's own work outside its simulations
    error: str = ""  # set when the claim could not run to the end on probe values
    kinds: dict[str, float] = field(default_factory=dict)

    @property
    def total_s(self) -> float:
        return self.simulation_s + self.other_s


def _timed(point: Point, n: int) -> tuple[Result, float]:
    start = time.process_time()
    result = simulate(point.config, n, point.seed, point.kind, progress=False)
    return result, time.process_time() - start


def point_seconds(point: Point, target: float = 0.2) -> tuple[Result, float]:
    """A small run of ``point`` and the estimated seconds of the whole point: one sample is
    timed; if it is shorter than ``target``, runs of ``k = 4, 16, 64, ...`` samples follow until
    the ``k - 1`` extra samples take ``target`` seconds (or ``k`` reaches the point's samples),
    and the cost is the fixed part plus ``samples`` times the marginal cost per sample."""
    small, t1 = _timed(point, 1)
    if t1 >= target or point.samples == 1:
        return small, t1 * point.samples
    k = 1
    while True:
        k = min(point.samples, 4 * k)
        small, tk = _timed(point, k)
        if tk - t1 >= target or k == point.samples:
            break
    per_sample = max(tk - t1, 0.0) / (k - 1)
    return small, max(t1 - per_sample, 0.0) + per_sample * point.samples


def _probe_sweep(cost: Cost) -> Any:
    """A stand-in for ``sim.sweep.sweep`` that probes each point (``point_seconds``)."""
    warm: set[tuple[str, str]] = set()

    def fake_sweep(points: Iterable[Point], **_: Any) -> list[Result]:
        results = []
        for point in points:
            start = time.process_time()
            if (point.kind, point.config.dtype) not in warm:  # load the compiled kernels
                simulate(point.config, 1, point.seed, point.kind, progress=False)
                warm.add((point.kind, point.config.dtype))
            small, seconds = point_seconds(point)
            cost.points += 1
            cost.samples += point.samples
            cost.simulation_s += seconds
            cost.kinds[point.kind] = cost.kinds.get(point.kind, 0.0) + seconds
            cost.other_s -= time.process_time() - start  # not the claim's own work
            n = small.samples
            values = np.tile(small.values, (-(-point.samples // n), 1, 1))[:point.samples]
            # a relative jitter of 1e-6 keeps standard errors positive, so statistics run on
            jitter = np.random.default_rng(cost.points).standard_normal(values.shape)
            values = values * (1.0 + 1e-6 * jitter)
            results.append(Result(point.config, point.samples, point.seed, values, point.kind))
        return results

    return fake_sweep


def estimate(claim_id: str, profile: str = "full") -> Cost:
    """The estimated CPU cost of ``claim_id`` under ``profile`` (module docstring)."""
    import importlib

    from sim.claims import all_claims, get_claim

    claim = get_claim(claim_id)
    cost = Cost(claim.id, profile)
    fake = _probe_sweep(cost)
    modules = {getattr(c.run, "__module__", "") for c in all_claims().values()}
    patches = [mock.patch.object(importlib.import_module(m), "sweep", fake)
               for m in sorted(modules) if m.startswith("sim.claims.")
               and hasattr(importlib.import_module(m), "sweep")]
    start = time.process_time()
    try:
        for p in patches:
            p.start()
        claim.run(profile, executor="serial")
    except Exception as exc:  # probe values can break a claim's statistics; keep what ran
        cost.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        for p in patches:
            p.stop()
    cost.other_s += time.process_time() - start
    return cost


def format_costs(costs: Sequence[Cost]) -> str:
    """A Markdown table of ``costs`` with a total row (CPU hours)."""
    rows: list[tuple[object, ...]] = [
        (c.claim, c.points, c.samples, f"{c.simulation_s / 3600:.3f}",
         f"{c.other_s / 3600:.3f}", c.error) for c in costs]
    rows.append(("**total**", sum(c.points for c in costs), sum(c.samples for c in costs),
                 f"**{sum(c.simulation_s for c in costs) / 3600:.2f}**",
                 f"**{sum(c.other_s for c in costs) / 3600:.2f}**", ""))
    return markdown_table(("claim", "points", "samples", "simulation (CPU h)", "other (CPU h)",
                           "note"), rows)


def main(argv: Sequence[str] | None = None) -> int:
    from sim.claims import all_claims

    parser = argparse.ArgumentParser(prog="python -m sim.costs",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("claims", nargs="*", help="claim ids (default: all)")
    parser.add_argument("--profile", default="full")
    args = parser.parse_args(argv)
    costs = []
    for claim_id in args.claims or list(all_claims()):
        cost = estimate(claim_id, args.profile)
        print(f"{cost.claim}: {cost.points} points, simulation {cost.simulation_s:.1f} s, "
              f"other {cost.other_s:.1f} s {cost.error}", file=sys.stderr, flush=True)
        costs.append(cost)
    print(format_costs(costs))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
