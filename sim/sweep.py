"""Sweeps: a grid of Monte-Carlo points run through an executor and the result cache.

Conventions:

- A ``Point`` is one ``simulate(config, samples, seed, kind)`` call. Its result depends on the
  point alone (bit for bit), so the executor, the worker and thread counts and the blocks of
  samples it is split into never change it.
- ``sweep`` returns one ``Result`` per point, in the order of ``points``. Points already cached
  are loaded; duplicates are computed once; each computed point is written to the cache as soon
  as it finishes, so an interrupted sweep resumes by recomputing only the missing points. A
  point split into blocks of samples (on a cluster) also caches each finished block, so it
  resumes by computing only its missing samples.
- ``executor``: ``"serial"`` (in this process), ``"processes"`` (a local process pool, the
  default) or any ``concurrent.futures.Executor``-like object whose ``submit`` returns futures
  with ``.result()`` (a thread pool, or ``dask.distributed.Client.get_executor()``:
  ``sim.cluster``).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from sim import montecarlo
from sim.cache import Cache, result_key
from sim.config import Config
from sim.montecarlo import Result, check_run, get_kind
from sim.progress import progress_bar
from sim.version import VERSION

EXECUTORS = ("serial", "processes")


@dataclass(frozen=True)
class Point:
    """One Monte-Carlo run: ``samples`` samples of ``config`` under ``seed``, measuring ``kind``."""

    config: Config
    samples: int
    seed: int = 0
    kind: str = "forward"

    def __post_init__(self) -> None:
        if not isinstance(self.config, Config):
            raise ValueError(f"Point.config must be a sim.config.Config, got "
                             f"{type(self.config).__name__}")
        check_run(self.samples, self.seed)
        get_kind(self.kind)


def run_point(point: Point) -> Result:
    """Simulate one point (no progress bar). A top-level function, so executors can pickle it."""
    return montecarlo.simulate(point.config, point.samples, point.seed, point.kind,
                               progress=False)


def run_block(point: Point, start: int, stop: int) -> tuple[str, np.ndarray]:
    """``(sigprop version, values)`` of samples ``start .. stop - 1`` of ``point``: those rows
    of ``run_point(point).values``, bit for bit (``montecarlo.sample_values``). A top-level
    function, so executors can pickle it."""
    return _versioned(montecarlo.sample_values,
                      (point.config, point.seed, point.kind, start, stop), {})


def sample_blocks(samples: int, parts: int) -> list[tuple[int, int]]:
    """``min(parts, samples)`` contiguous ``(start, stop)`` ranges of near-equal size covering
    ``0 .. samples - 1`` in order."""
    if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
        raise ValueError(f"parts={parts!r} must be an integer >= 1")
    n = min(parts, samples)
    edges = [samples * i // n for i in range(n + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def missing_blocks(samples: int, have: Iterable[tuple[int, int]],
                   parts: int) -> list[tuple[int, int]]:
    """Contiguous ``(start, stop)`` blocks, in order, covering the samples ``0 .. samples - 1``
    outside the disjoint ranges ``have``: each gap is split by ``sample_blocks`` in proportion
    to its size, about ``parts`` blocks in all and at least one per gap (with ``have`` empty,
    exactly ``sample_blocks(samples, parts)``)."""
    gaps, at = [], 0
    for start, stop in sorted(have):
        if start > at:
            gaps.append((at, start))
        at = max(at, stop)
    if at < samples:
        gaps.append((at, samples))
    return [(a + s, a + t) for a, b in gaps
            for s, t in sample_blocks(b - a, max(1, round(parts * (b - a) / samples)))]


def map_samples(fn: Any, samples: int, *args: Any, executor: Any = "serial",
                blocks: int | None = None, progress: bool | None = None, **kwargs: Any) -> Any:
    """``fn(*args, samples=samples, start=0, **kwargs)``, computed in blocks of samples on
    ``executor``: for direct Monte Carlo outside sweeps whose every sample is seeded by its
    index alone, so that ``fn(*args, samples=n, start=a, **kwargs)`` returns samples ``a .. a +
    n - 1`` (an array, or a dict of arrays, with ``n`` rows). On ``"serial"`` or
    ``"processes"`` (or with one block) this is one call in this process; on an executor
    object, ``blocks`` tasks (default ``sim.cluster.default_blocks(executor)``) whose rows are
    concatenated in order: the same bits, with a progress bar over blocks on a terminal unless
    ``progress=False``. ``fn`` must be a module-level function (pickled to workers). Not
    cached: a claim recomputes it when it runs again."""
    check_run(samples, 0)
    _check_blocks(blocks)
    if isinstance(executor, str):
        parts = 1
    else:
        from sim.cluster import default_blocks

        parts = blocks or default_blocks(executor)
    if parts == 1:
        return fn(*args, samples=samples, start=0, **kwargs)
    futures = {executor.submit(_versioned, fn, args, {**kwargs, "samples": b - a, "start": a}):
               i for i, (a, b) in enumerate(sample_blocks(samples, parts))}
    out: dict[int, tuple[str, Any]] = {}
    try:
        with progress_bar(len(futures), "blocks", progress) as bar:
            for future in _completed(list(futures)):
                out[futures[future]] = future.result()
                bar.update(1)
    except BaseException:
        for future in futures:
            future.cancel()
        raise
    rows = [_unversioned(out[i], a, b, getattr(fn, "__name__", fn))
            for i, (a, b) in enumerate(sample_blocks(samples, parts))]
    if isinstance(rows[0], dict):
        return {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
    return np.concatenate(rows)


def _check_blocks(blocks: int | None) -> None:
    if blocks is not None and (isinstance(blocks, bool) or not isinstance(blocks, int)
                               or blocks < 1):
        raise ValueError(f"blocks={blocks!r} must be an integer >= 1 or None")


def _check_version(version: str) -> None:
    """Refuse work a worker did under another sigprop version."""
    if version != VERSION:
        raise RuntimeError(f"a worker returned a result of sigprop version {version}, but "
                           f"this process runs {VERSION}; install the same version everywhere")


def _versioned(fn: Any, args: tuple, kwargs: dict[str, Any]) -> tuple[str, Any]:
    """``(sigprop version, fn(*args, **kwargs))``: a block task on a worker (``run_block``,
    ``map_samples``)."""
    return VERSION, fn(*args, **kwargs)


def _unversioned(task: Any, start: int, stop: int, what: Any) -> Any:
    """The values of a ``_versioned`` block task for samples ``start .. stop - 1`` (an array,
    or a dict of arrays, ``stop - start`` rows each); refused if they are from another sigprop
    version or have another row count. ``what`` names the work in the error."""
    if not (isinstance(task, tuple) and len(task) == 2):
        raise TypeError(f"the executor returned {type(task).__name__}, not a block of samples")
    version, values = task
    _check_version(version)
    for v in (values.values() if isinstance(values, dict) else (values,)):
        if len(v) != stop - start:
            raise RuntimeError(f"{what} returned {len(v)} rows for samples {start} .. "
                               f"{stop - 1}")
    return values


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the platform has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _init_worker(threads: int) -> None:
    """Process-pool initializer: ``threads`` numba threads per worker, so that
    ``workers x threads`` does not exceed the cores."""
    import numba

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))


def _start_method() -> str:
    # Never fork: a parent that has run a numba prange kernel under GNU OpenMP cannot fork safely.
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def _process_pool(workers: int) -> cf.ProcessPoolExecutor:
    return cf.ProcessPoolExecutor(max_workers=workers,
                                  mp_context=multiprocessing.get_context(_start_method()),
                                  initializer=_init_worker,
                                  initargs=(max(1, usable_cores() // workers),))


def _completed(futures: list[Any]) -> Iterator[Any]:
    """Futures as they complete (``concurrent.futures`` or ``dask.distributed`` futures), else
    in order."""
    from sim.cluster import is_dask_future

    if futures and all(isinstance(f, cf.Future) for f in futures):
        yield from cf.as_completed(futures)
    elif futures and all(is_dask_future(f) for f in futures):
        from distributed import as_completed

        yield from as_completed(futures)
    else:
        yield from futures


def _check_result(point: Point, result: Any) -> Result:
    """Refuse a result that is not the point's (e.g. from a worker running another version)."""
    if not isinstance(result, Result):
        raise TypeError(f"the executor returned {type(result).__name__}, not a Result")
    _check_version(result.version)
    got = (result.config, result.samples, result.seed, result.kind)
    if got != (point.config, point.samples, point.seed, point.kind):
        raise RuntimeError(f"the executor returned a result for {got}, expected {point}")
    return result


def sweep(points: Iterable[Point], *, cache: Cache | None = None,
          executor: Literal["serial", "processes"] | cf.Executor = "processes",
          max_workers: int | None = None, progress: bool | None = None,
          blocks: int | None = None) -> list[Result]:
    """Results of ``points``, in their order, loaded from ``cache`` (default ``Cache()``) or
    computed on ``executor`` and cached as each finishes.

    ``"processes"`` runs ``min(max_workers or cores, missing points)`` worker processes with
    ``cores // workers`` numba threads each (a single missing point runs in this process). A given
    ``Executor`` is used, not shut down. Each missing point goes to it as ``blocks`` tasks of
    contiguous samples (``sample_blocks``, ``run_block``), assembled in order on the client,
    so the result is the same bits; default: ``sim.cluster.default_blocks(executor)`` (one
    task per point except on a Dask cluster). Each finished block is cached
    (``Cache.put_block``) and a point's cached blocks are not recomputed (``missing_blocks``);
    the point is cached once all its blocks are in, and its blocks are then dropped. A
    progress bar over points shows on a terminal unless ``progress=False``."""
    points = list(points)
    for i, point in enumerate(points):
        if not isinstance(point, Point):
            raise ValueError(f"points[{i}] must be a sim.sweep.Point, got {type(point).__name__}")
    if isinstance(executor, str):
        if executor not in EXECUTORS:
            raise ValueError(f"executor={executor!r} is not known; choose one of "
                             f"{', '.join(EXECUTORS)} or pass a concurrent.futures.Executor")
    elif not callable(getattr(executor, "submit", None)):
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)} or have a submit() "
                         f"method, got {type(executor).__name__}")
    if max_workers is not None and (isinstance(max_workers, bool)
                                     or not isinstance(max_workers, int) or max_workers < 1):
        raise ValueError(f"max_workers={max_workers!r} must be an integer >= 1 or None")
    _check_blocks(blocks)
    cache = Cache() if cache is None else cache

    keys = [result_key(p.config, p.samples, p.seed, p.kind) for p in points]
    unique: dict[str, Point] = dict(zip(keys, points, strict=True))  # duplicates collapse
    results: dict[str, Result] = {}
    with progress_bar(len(unique), "points", progress) as bar:
        for key, p in unique.items():
            hit = cache.get(p.config, p.samples, p.seed, p.kind)
            if hit is not None:
                results[key] = hit
        bar.update(len(results))
        missing = [key for key in unique if key not in results]

        def record(key: str, result: Any) -> None:
            results[key] = _check_result(unique[key], result)
            cache.put(results[key])
            bar.update(1)

        workers = min(max_workers or usable_cores(), len(missing))
        if isinstance(executor, str) and (executor == "serial" or workers <= 1):
            for key in missing:
                record(key, run_point(unique[key]))
        elif missing:
            from sim.cluster import default_blocks

            owned = isinstance(executor, str)
            pool = _process_pool(workers) if owned else executor
            parts = 1 if owned else (blocks or default_blocks(executor))
            _run_on(pool, owned, missing, unique, parts, record, cache)
    return [results[key] for key in keys]


def _run_on(pool: Any, owned: bool, missing: list[str], unique: dict[str, Point], parts: int,
            record: Any, cache: Cache) -> None:
    """Submit the missing points to ``pool``, each as ``parts`` blocks of samples less those
    ``cache`` holds; cache each block as it finishes and record a point once all its blocks
    are in. On any error or interrupt, cancel what has not started and keep the points and
    blocks that finished."""
    futures: dict[Any, tuple[str, int, int]] = {}
    done: dict[str, dict[int, np.ndarray]] = {key: {} for key in missing}
    collected: set[Any] = set()

    def finish(key: str) -> None:
        point = unique[key]
        if sum(len(v) for v in done[key].values()) == point.samples:
            values = np.concatenate([done[key][a] for a in sorted(done[key])])
            record(key, Result(point.config, point.samples, point.seed, values, point.kind))
            cache.drop_blocks(point.config, point.samples, point.seed, point.kind)

    def collect(future: Any) -> None:
        key, start, stop = futures[future]
        point = unique[key]
        collected.add(future)
        if parts == 1:  # whole points: run_point's Result
            record(key, future.result())
            return
        done[key][start] = _unversioned(future.result(), start, stop, point)
        cache.put_block(point.config, point.samples, point.seed, point.kind, start,
                        done[key][start])
        finish(key)

    try:
        for key in missing:
            point = unique[key]
            if parts == 1:
                futures[pool.submit(run_point, point)] = (key, 0, point.samples)
                continue
            done[key] = cache.get_blocks(point.config, point.samples, point.seed, point.kind)
            have = [(a, a + len(v)) for a, v in done[key].items()]
            for start, stop in missing_blocks(point.samples, have, parts):
                futures[pool.submit(run_block, point, start, stop)] = (key, start, stop)
            finish(key)  # every block was cached
        for future in _completed(list(futures)):
            collect(future)
    except BaseException:
        for future in futures:
            future.cancel()
        if owned:
            pool.shutdown(wait=True, cancel_futures=True)
            owned = False
        for future in futures:  # cache what finished meanwhile
            if (future not in collected and isinstance(future, cf.Future) and future.done()
                    and not future.cancelled() and future.exception() is None):
                with contextlib.suppress(Exception):  # the original error matters more
                    collect(future)
        raise
    finally:
        if owned:
            pool.shutdown(wait=True)
