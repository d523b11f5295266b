"""What a profile costs in CPU time, estimated without running its simulations in full.

``estimate(claim_id, profile)`` runs the claim with its sweeps replaced by *probes*: every point is
simulated with a few samples, timed (``point_seconds``: fixed cost plus marginal cost per sample),
and the probe's per-sample values are repeated up to the point's sample count so that the claim's
statistics and theory run to the end. The claim's other work (theory, quadratures, fits) is timed
as it runs. Verdicts from such a run mean nothing and are discarded.

The probes also project what the profile can *detect*. Each probe has at least ``min_samples``
samples (default 8), so the repeated values carry the probe's own per-sample spread, and the
claim's comparisons on them have standard errors of the full sample count: their detectable
discrepancies (``sim.stats``) are projections of the profile's, noisy by the probe's small
sample but of the right size (``Cost.detectable``, one ``Projection`` per comparison). A claim is
summarised by its *exact* comparisons, those that decide its verdict (``Comparison.role``): the
largest relative detectable discrepancy and how many exceed ``TARGET`` = 1%. Its *reference*
comparisons (asymptotic laws reported beside the verdict) are counted apart. A comparison whose
prediction is 0 and that states no ``scale`` (``sim.stats.Comparison``) has no relative
discrepancy (it is infinite); its absolute detectable one is kept. Comparisons that the claim
computes outside its sweeps run for real; direct Monte Carlo it runs through
``sim.sweep.map_samples`` is timed as simulation (``DIRECT``), as a cluster runs it in blocks on
the workers.

Times are the process's CPU time (``time.process_time``), so a busy machine does not inflate
them; run it with one numba thread so that they are seconds on one core:
``NUMBA_NUM_THREADS=1 python -m sim.costs --profile full [CLAIM ...]``.

Estimates keep every point's key, cost and samples by sweep (``Cost.sweeps``): a point several
claims share is probed once and counted once in totals (``Cost.shared_s``), ``--save FILE`` /
``--load FILE ...`` keep estimates made in separate processes and put them together, and
``wall_seconds`` models the wall time of ``sigprop verify`` on a number of workers.
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

from sim.markdown import markdown_table
from sim.montecarlo import Result, simulate
from sim.sweep import Point, sample_blocks

#: the discrepancy every ``full``-profile comparison must be able to detect (issue 8)
TARGET = 0.01
#: fewest samples a probe keeps, so that its values carry a per-sample spread
MIN_SAMPLES = 8
#: relative jitter of the tiled probe values (``_probe_sweep``)
JITTER = 1e-15


@dataclass(frozen=True)
class Projection:
    """The projected sensitivity of one comparison of a claim."""

    label: str  # the comparison's label and params
    relative: float  # detectable / |prediction|; inf when the prediction is 0
    absolute: float  # detectable, in the comparison's own units
    role: str  # "exact" (decides the verdict) or "reference" (reported beside it)
    #: the comparison's stated finite-size bias budget (same units): the part of ``absolute``
    #: that more samples cannot shrink
    bias: float = 0.0

    @property
    def bias_limited(self) -> bool:
        """Whether the bias budget alone exceeds ``TARGET`` of the prediction (so no sample
        count reaches the target; only a sharper theory would)."""
        # bias / |prediction| > TARGET, with |prediction| = absolute / relative (no division:
        # relative and absolute are 0 together)
        return self.relative != float("inf") and self.bias * self.relative > TARGET * self.absolute


@dataclass
class Cost:
    """Estimated CPU seconds of one claim under one profile."""

    claim: str
    profile: str
    points: int = 0
    samples: int = 0
    simulation_s: float = 0.0  # estimated: probe time x samples / probe, summed over points
    #: the part of ``simulation_s`` from points an earlier claim already counted (set by
    #: ``account_shared``; a full run computes a shared point once, the cache serves it)
    shared_s: float = 0.0
    other_s: float = 0.0  # measured: the claim's own work outside its simulations
    error: str = ""  # set when the claim could not run to the end on probe values
    note: str = ""  # where the numbers come from, when not from probes
    kinds: dict[str, float] = field(default_factory=dict)
    #: the projected sensitivity of each comparison
    detectable: list[Projection] = field(default_factory=list)
    #: per ``sweep`` call of the claim, in order: ``(result key, estimated seconds, samples)``
    #: of each point the claim had not swept before (the schedule ``wall_seconds`` models)
    sweeps: list[list[tuple[str, float, int]]] = field(default_factory=list)

    def of_role(self, role: str) -> list[Projection]:
        return [p for p in self.detectable if p.role == role]

    @property
    def largest_detectable(self) -> float:
        """The largest projected relative detectable discrepancy of the exact comparisons (NaN
        without any)."""
        return max((p.relative for p in self.of_role("exact")), default=float("nan"))

    @property
    def above_target(self) -> int:
        """How many exact comparisons cannot detect a ``TARGET`` relative discrepancy."""
        return sum(p.relative > TARGET for p in self.of_role("exact"))

    @property
    def bias_limited(self) -> int:
        """How many exact comparisons no sample count brings to ``TARGET``: their stated
        bias budget alone exceeds it (``Projection.bias_limited``)."""
        return sum(p.bias_limited for p in self.of_role("exact"))

    @property
    def reference_above_target(self) -> int:
        """How many reference comparisons cannot detect a ``TARGET`` relative discrepancy."""
        return sum(p.relative > TARGET for p in self.of_role("reference"))

    @property
    def total_s(self) -> float:
        return self.simulation_s + self.other_s


def _timed(point: Point, n: int) -> tuple[Result, float]:
    start = time.process_time()
    result = simulate(point.config, n, point.seed, point.kind, progress=False)
    return result, time.process_time() - start


def point_seconds(point: Point, target: float = 0.2, min_samples: int = 1
                  ) -> tuple[Result, float]:
    """A small run of ``point`` and the estimated seconds of the whole point: one sample is
    timed; if it is shorter than ``target``, runs of ``k = 4, 16, 64, ...`` samples follow until
    the ``k - 1`` extra samples take ``target`` seconds (or ``k`` reaches the point's samples),
    and the cost is the fixed part plus ``samples`` times the marginal cost per sample. The
    returned run has at least ``min(min_samples, samples)`` samples."""
    small, t1 = _timed(point, 1)
    floor = min(min_samples, point.samples)
    if t1 >= target or point.samples == 1:
        if floor > 1:
            small = _timed(point, floor)[0]
        return small, t1 * point.samples
    k = 1
    while True:
        k = min(point.samples, 4 * k)
        small, tk = _timed(point, k)
        if (tk - t1 >= target and k >= floor) or k == point.samples:
            break
    per_sample = max(tk - t1, 0.0) / (k - 1)
    return small, max(t1 - per_sample, 0.0) + per_sample * point.samples


#: probes already run, by result key: ``(probe result, estimated seconds of the point)``
Probes = dict[str, tuple[Result, float]]


def _probe_sweep(cost: Cost, min_samples: int = MIN_SAMPLES, probes: Probes | None = None
                 ) -> Any:
    """A stand-in for ``sim.sweep.sweep`` that probes each point (``point_seconds``).

    A point is counted once per claim, as a real run computes it once (the cache serves it
    again); ``probes`` (shared between claims) reuses a point's probe."""
    from sim.cache import result_key

    warm: set[tuple[str, str]] = set()
    probes = {} if probes is None else probes
    counted: set[str] = set()

    def fake_sweep(points: Iterable[Point], **_: Any) -> list[Result]:
        results = []
        computed = []
        cost.sweeps.append(computed)
        for point in points:
            start = time.process_time()
            key = result_key(point.config, point.samples, point.seed, point.kind)
            if key not in probes:
                if (point.kind, point.config.dtype) not in warm:  # load the compiled kernels
                    simulate(point.config, 1, point.seed, point.kind, progress=False)
                    warm.add((point.kind, point.config.dtype))
                probes[key] = point_seconds(point, min_samples=min_samples)
            small, seconds = probes[key]
            if key not in counted:
                counted.add(key)
                computed.append((key, seconds, point.samples))
                cost.points += 1
                cost.samples += point.samples
                cost.simulation_s += seconds
                cost.kinds[point.kind] = cost.kinds.get(point.kind, 0.0) + seconds
            cost.other_s -= time.process_time() - start  # not the claim's own work
            n = small.samples
            values = np.tile(small.values, (-(-point.samples // n), 1, 1))[:point.samples]
            # a relative jitter of a few ulps keeps standard errors positive, so statistics run
            # on; it must stay far below any scale a claim resolves (PM-1 takes sqrt(1 - a^2) of
            # alignments a within 5e-13 of 1: a 1e-6 jitter pushed them past 1)
            jitter = np.random.default_rng(cost.points).standard_normal(values.shape)
            values = values * (1.0 + JITTER * jitter)
            results.append(Result(point.config, point.samples, point.seed, values, point.kind))
        return results

    return fake_sweep


#: ``Cost.kinds`` entry of the direct Monte Carlo a claim runs through ``map_samples``, and
#: the prefix of its keys in ``Cost.sweeps`` (not sweep points: totals do not count them as such)
DIRECT = "direct (map_samples)"
MAP_KEY = "map_samples:"


def _timed_map(cost: Cost) -> Any:
    """A stand-in for ``sim.sweep.map_samples`` that runs it for real in this process and counts
    its CPU time as simulation (a sweep call of one point of its own, which a cluster splits
    into blocks like a sweep's), not as the claim's own work."""
    import hashlib

    from sim import sweep as sweep_module

    def fake_map(fn: Any, samples: int, *args: Any, executor: Any = "serial",
                 blocks: int | None = None, **kwargs: Any) -> Any:
        start = time.process_time()
        out = sweep_module.map_samples(fn, samples, *args, **kwargs)
        seconds = time.process_time() - start
        what = repr((fn.__module__, fn.__qualname__, samples, args, sorted(kwargs.items())))
        key = MAP_KEY + hashlib.sha256(what.encode()).hexdigest()
        cost.sweeps.append([(key, seconds, samples)])
        cost.samples += samples
        cost.simulation_s += seconds
        cost.kinds[DIRECT] = cost.kinds.get(DIRECT, 0.0) + seconds
        cost.other_s -= seconds
        return out

    return fake_map


def estimate(claim_id: str, profile: str = "full", min_samples: int = MIN_SAMPLES,
             probes: Probes | None = None) -> Cost:
    """The estimated CPU cost of ``claim_id`` under ``profile``, and the projected detectable
    discrepancies of its comparisons (module docstring). Pass the same ``probes`` dict to the
    estimates of several claims to probe a shared point once; ``account_shared`` then sets
    what each claim shares with the claims before it."""
    import importlib

    from sim.claims import all_claims, get_claim

    claim = get_claim(claim_id)
    cost = Cost(claim.id, profile)
    fake = _probe_sweep(cost, min_samples, probes)
    modules = {getattr(c.run, "__module__", "") for c in all_claims().values()}
    fakes = {"sweep": fake, "map_samples": _timed_map(cost)}
    patches = [mock.patch.object(importlib.import_module(m), name, stand_in)
               for m in sorted(modules) if m.startswith("sim.claims.")
               for name, stand_in in fakes.items() if hasattr(importlib.import_module(m), name)]
    start = time.process_time()
    try:
        for p in patches:
            p.start()
        result = claim.run(profile, executor="serial")
        cost.detectable = [Projection(f"{c.label} {c.params}", c.detectable_relative,
                                      c.detectable, c.role, c.bias) for c in result.comparisons]
    except Exception as exc:  # probe values can break a claim's statistics; keep what ran
        cost.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        for p in patches:
            p.stop()
    cost.other_s += time.process_time() - start
    return cost


def cost_to_dict(cost: Cost) -> dict[str, Any]:
    """``cost`` as JSON-ready data (``cost_from_dict`` inverts it)."""
    return asdict(cost)


def cost_from_dict(data: dict[str, Any]) -> Cost:
    """The ``Cost`` that ``cost_to_dict`` wrote."""
    data = dict(data)
    data["detectable"] = [Projection(**p) for p in data.get("detectable", [])]
    data["sweeps"] = [[(k, float(t), int(n)) for k, t, n in sweep]
                      for sweep in data.get("sweeps", [])]
    return Cost(**data)


def account_shared(costs: Sequence[Cost]) -> None:
    """Set every ``shared_s`` from the points' keys, in the order of ``costs``: the seconds of
    the points a claim above already counted (estimates made in separate processes, then put
    together)."""
    seen: set[str] = set()
    for c in costs:
        mine = {k: t for sweep in c.sweeps for k, t, _ in sweep}
        c.shared_s = sum(t for k, t in mine.items() if k in seen)
        seen.update(mine)


def list_schedule(seconds: Sequence[float], workers: int) -> float:
    """Makespan of tasks of ``seconds`` handed out in their order, each to the first free of
    ``workers`` equal workers (greedy list scheduling, as a Dask scheduler hands out a sweep's
    points); at most ``sum/workers + max`` (Graham)."""
    if workers < 1:
        raise ValueError(f"workers={workers!r} must be >= 1")
    free = [0.0] * min(workers, max(len(seconds), 1))
    for t in seconds:
        heapq.heapreplace(free, free[0] + t)
    return max(free)


def wall_seconds(costs: Sequence[Cost], workers: int, blocks: bool = True) -> float:
    """Modelled wall time of ``sigprop verify`` of ``costs``' claims, in their order, on
    ``workers`` workers: claims run one after another; each claim's own work (``other_s``:
    theory, fits, direct Monte Carlo outside sweeps) runs on the client, and each sweep
    call's points not computed before are ``list_schedule``d (a point computed before is a
    cache hit), each point as the blocks of samples ``sim.sweep.sample_blocks(samples,
    workers)`` (what a sweep on a Dask cluster submits) or, with ``blocks=False``, whole.
    Communication and scheduler overhead are not modelled (milliseconds per task, against
    seconds to hours)."""
    seen: set[str] = set()
    total = 0.0
    for c in costs:
        total += c.other_s
        for sweep in c.sweeps:
            tasks = []
            for key, t, n in sweep:
                if key in seen:
                    continue
                seen.add(key)
                tasks += ([t * (b - a) / n for a, b in sample_blocks(n, workers)] if blocks
                          else [t])
            total += list_schedule(tasks, workers)
    return total


def format_scaling(costs: Sequence[Cost], workers: Sequence[int] = (1, 2, 8, 64, 256)) -> str:
    """A Markdown table of ``wall_seconds`` for each worker count, with points split into blocks
    of samples and whole: hours, speedup over one worker and efficiency (speedup / workers)."""
    one = wall_seconds(costs, 1)
    rows = []
    for w in workers:
        t, whole = wall_seconds(costs, w), wall_seconds(costs, w, blocks=False)
        rows.append((w, f"{t / 3600:.2f}", f"{one / t:.1f}", f"{one / t / w:.0%}",
                     f"{whole / 3600:.2f}", f"{one / whole / w:.0%}"))
    return markdown_table(("workers", "wall time (h)", "speedup", "efficiency",
                           "whole points: wall time (h)", "whole points: efficiency"), rows)


def format_costs(costs: Sequence[Cost]) -> str:
    """A Markdown table of ``costs`` with a total row (CPU hours). A claim's simulation cost is
    that of running it alone, with the part other claims above it already count in brackets;
    the total counts every point once."""
    def counts(exact: int, reference: int, costs: Sequence[Cost]) -> tuple[str, str]:
        n_exact = sum(len(c.of_role("exact")) for c in costs)
        n_ref = sum(len(c.of_role("reference")) for c in costs)
        limited = sum(c.bias_limited for c in costs)
        note = f" ({limited} bias-limited)" if limited else ""
        return f"{exact} of {n_exact}{note}", f"{reference} of {n_ref}"

    def simulation(c: Cost) -> str:
        shared = f" ({c.shared_s / 3600:.3f} shared)" if c.shared_s else ""
        return f"{c.simulation_s / 3600:.3f}{shared}"

    rows: list[tuple[object, ...]] = [
        (c.claim, c.points, c.samples, simulation(c),
         f"{c.other_s / 3600:.3f}", _percent(c.largest_detectable),
         *counts(c.above_target, c.reference_above_target, [c]),
         "; ".join(t for t in (c.note, c.error) if t)) for c in costs]
    # the total counts a point shared by several claims once, as a full run computes it once
    unique = {k: n for c in costs for sweep in c.sweeps for k, _, n in sweep}
    points, samples = ((sum(not k.startswith(MAP_KEY) for k in unique), sum(unique.values()))
                       if unique else
                       (sum(c.points for c in costs), sum(c.samples for c in costs)))
    rows.append(("**total**", points, samples,
                 f"**{sum(c.simulation_s - c.shared_s for c in costs) / 3600:.2f}**",
                 f"**{sum(c.other_s for c in costs) / 3600:.2f}**", "",
                 *counts(sum(c.above_target for c in costs),
                         sum(c.reference_above_target for c in costs), costs), ""))
    return markdown_table(("claim", "points", "samples", "simulation (CPU h)", "other (CPU h)",
                           "largest detectable (exact)", f"exact > {TARGET:.0%}",
                           f"reference > {TARGET:.0%}", "note"), rows)


def _percent(x: float) -> str:
    return "-" if x != x else "inf" if x == float("inf") else f"{100 * x:.2g}%"


def save_costs(costs: Sequence[Cost], path: str) -> None:
    """Write ``costs`` to ``path`` as JSON (``load_costs`` reads them)."""
    from sim.cache import atomic_write

    text = json.dumps([cost_to_dict(c) for c in costs], separators=(",", ":")).encode()
    atomic_write(Path(path), lambda f: f.write(text))


def load_costs(paths: Iterable[str]) -> list[Cost]:
    """The costs in the ``save_costs`` files ``paths``, in order, with ``shared_s`` accounted
    over all of them (``account_shared``)."""
    costs = []
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
            costs += [cost_from_dict(d) for d in data]
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"{path}: not a file of saved costs ({exc})") from exc
    account_shared(costs)
    return costs


def main(argv: Sequence[str] | None = None) -> int:
    from sim.claims import all_claims

    parser = argparse.ArgumentParser(prog="python -m sim.costs",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("claims", nargs="*", help="claim ids (default: all)")
    parser.add_argument("--profile", default="full")
    parser.add_argument("--min-samples", type=int, default=MIN_SAMPLES,
                        help="fewest samples per probe (their spread projects the detectable "
                             "discrepancy)")
    parser.add_argument("--worst", type=int, default=0, metavar="N",
                        help="also list each claim's N least sensitive comparisons")
    parser.add_argument("--save", metavar="FILE",
                        help="write the estimates to FILE (JSON), after every claim")
    parser.add_argument("--load", metavar="FILE", nargs="+",
                        help="print the tables of estimates saved by --save (no probes run; "
                             "points shared between files counted once)")
    args = parser.parse_args(argv)
    if args.min_samples < 2:
        parser.error("--min-samples must be >= 2 (one sample has no spread)")
    if args.load:
        if args.claims:
            parser.error("--load takes no claim ids")
        try:
            costs = load_costs(args.load)
        except ValueError as exc:
            print(f"sim.costs: {exc}", file=sys.stderr)
            return 2
    else:
        costs, probes = [], {}
        for claim_id in args.claims or list(all_claims()):
            cost = estimate(claim_id, args.profile, args.min_samples, probes)
            costs.append(cost)
            account_shared(costs)
            print(f"{cost.claim}: {cost.points} points, simulation {cost.simulation_s:.1f} s "
                  f"({cost.shared_s:.1f} s shared), other {cost.other_s:.1f} s, largest "
                  f"detectable {_percent(cost.largest_detectable)} {cost.error}",
                  file=sys.stderr, flush=True)
            for p in sorted(cost.detectable, key=lambda p: -p.relative)[:args.worst]:
                limited = f", bias {p.bias:.3g}: bias-limited" if p.bias_limited else ""
                print(f"    {_percent(p.relative)} (absolute {p.absolute:.3g}, {p.role}"
                      f"{limited})  {p.label}", file=sys.stderr, flush=True)
            if args.save:
                save_costs(costs, args.save)
    print(format_costs(costs))
    print()
    print(format_scaling(costs))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
