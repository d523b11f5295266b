"""Sweeps: order, caching, resumption, corruption recovery and executor independence."""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from sim import montecarlo
from sim.cache import Cache, CacheCorruptionWarning
from sim.config import Config
from sim.montecarlo import Result
from sim.sweep import Point, run_point, sweep

BASE = Config(T=8, d=8, depth=2)
POINTS = [Point(BASE, 4, seed) for seed in range(3)] + [
    Point(BASE.replace(beta=2.0), 4, 0), Point(BASE.replace(norm="pre"), 5, 1)]


def _same(a: list[Result], b: list[Result]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert (x.config, x.samples, x.seed, x.kind, x.version) == (
            y.config, y.samples, y.seed, y.kind, y.version)
        assert x.values.dtype == y.values.dtype and x.values.shape == y.values.shape
        assert x.values.tobytes() == y.values.tobytes()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cache:
    monkeypatch.setenv("SIGPROP_CACHE_DIR", str(tmp_path / "cache"))
    return Cache()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> list[Result]:
    """An uninterrupted serial sweep in a cache of its own."""
    return sweep(POINTS, cache=Cache(tmp_path_factory.mktemp("reference")), executor="serial",
                 progress=False)


@pytest.fixture
def threadsafe_numba(reference: list[Result]) -> None:
    """Skip where numba's threading layer cannot run kernels from two threads at once."""
    import numba

    if numba.threading_layer() == "workqueue":
        pytest.skip("numba's workqueue threading layer is not thread-safe")


class Counter:
    """Wraps ``montecarlo.simulate``; counts calls and fails on call number ``fail_on``."""

    def __init__(self, fail_on: int | None = None,
                 error: type[BaseException] = RuntimeError) -> None:
        self.calls: list[tuple] = []
        self.fail_on = fail_on
        self.error = error
        self.simulate: Callable[..., Result] = montecarlo.simulate

    def __call__(self, config, samples, seed=0, kind="forward", **kw) -> Result:
        self.calls.append((config, samples, seed, kind))
        if self.fail_on is not None and len(self.calls) == self.fail_on:
            raise self.error("simulated interruption")
        return self.simulate(config, samples, seed, kind, **kw)


def test_reference_matches_direct_simulation(reference: list[Result]) -> None:
    direct = [montecarlo.simulate(p.config, p.samples, p.seed, p.kind, progress=False)
              for p in POINTS]
    _same(reference, direct)
    _same([run_point(POINTS[0])], direct[:1])


def test_results_come_back_in_order_and_are_cached(cache: Cache, reference: list[Result],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    counter = Counter()
    monkeypatch.setattr(montecarlo, "simulate", counter)
    order = [4, 0, 2, 1, 3]
    got = sweep([POINTS[i] for i in order], executor="serial", progress=False)
    _same(got, [reference[i] for i in order])
    assert len(counter.calls) == len(POINTS)
    assert all(cache.has(p.config, p.samples, p.seed, p.kind) for p in POINTS)
    again = sweep(POINTS, cache=cache, executor="serial", progress=False)
    _same(again, reference)
    assert len(counter.calls) == len(POINTS)  # all loaded, none recomputed


def test_duplicates_are_computed_once(cache: Cache, reference: list[Result],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    counter = Counter()
    monkeypatch.setattr(montecarlo, "simulate", counter)
    points = [POINTS[1], POINTS[0], POINTS[1], Point(BASE.replace(beta=1), 4, 1), POINTS[0]]
    got = sweep(points, cache=cache, executor="serial", progress=False)
    _same(got, [reference[1], reference[0], reference[1], reference[1], reference[0]])
    assert len(counter.calls) == 2


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_interrupted_sweep_resumes(cache: Cache, reference: list[Result],
                                   monkeypatch: pytest.MonkeyPatch,
                                   error: type[BaseException]) -> None:
    monkeypatch.setattr(montecarlo, "simulate", Counter(fail_on=3, error=error))
    with pytest.raises(error, match="simulated interruption"):
        sweep(POINTS, cache=cache, executor="serial", progress=False)
    cached = [cache.has(p.config, p.samples, p.seed, p.kind) for p in POINTS]
    assert cached == [True, True, False, False, False]

    counter = Counter()
    monkeypatch.setattr(montecarlo, "simulate", counter)
    got = sweep(POINTS, cache=cache, executor="serial", progress=False)
    assert [c[2:] for c in counter.calls] == [(p.seed, p.kind) for p in POINTS[2:]]
    _same(got, reference)


def test_corrupt_entry_is_recomputed(cache: Cache, reference: list[Result],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    sweep(POINTS, cache=cache, executor="serial", progress=False)
    path = cache.path(POINTS[1].config, POINTS[1].samples, POINTS[1].seed)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    counter = Counter()
    monkeypatch.setattr(montecarlo, "simulate", counter)
    with pytest.warns(CacheCorruptionWarning, match=path.name):
        got = sweep(POINTS, cache=cache, executor="serial", progress=False)
    assert [c[2] for c in counter.calls] == [POINTS[1].seed]
    _same(got, reference)
    _same([cache.get(POINTS[1].config, POINTS[1].samples, POINTS[1].seed)], reference[1:2])


def test_thread_pool_executor_gives_identical_results(cache: Cache, reference: list[Result],
                                                      threadsafe_numba: None) -> None:
    with cf.ThreadPoolExecutor(max_workers=2) as pool:
        got = sweep(POINTS, cache=cache, executor=pool, progress=False)
    _same(got, reference)
    assert all(cache.has(p.config, p.samples, p.seed) for p in POINTS)


def test_failure_on_an_executor_keeps_finished_points(cache: Cache, reference: list[Result],
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      threadsafe_numba: None) -> None:
    monkeypatch.setattr(montecarlo, "simulate", Counter(fail_on=3))
    with cf.ThreadPoolExecutor(max_workers=2) as pool, pytest.raises(RuntimeError):
        sweep(POINTS, cache=cache, executor=pool, progress=False)
    cached = sum(cache.has(p.config, p.samples, p.seed) for p in POINTS)
    assert 1 <= cached <= len(POINTS) - 1  # finished points are kept, the failed one is not
    counter = Counter()
    monkeypatch.setattr(montecarlo, "simulate", counter)
    _same(sweep(POINTS, cache=cache, executor="serial", progress=False), reference)
    assert len(counter.calls) == len(POINTS) - cached


class _Deferred:
    """A future-like object that is not a ``concurrent.futures.Future``."""

    def __init__(self, fn: Callable, arg: object) -> None:
        self.fn, self.arg = fn, arg

    def result(self) -> Result:
        return self.fn(self.arg)

    def cancel(self) -> bool:
        return False


class _LazyExecutor:
    def submit(self, fn: Callable, arg: object) -> _Deferred:
        return _Deferred(fn, arg)


def test_executor_with_foreign_futures_works(cache: Cache, reference: list[Result]) -> None:
    _same(sweep(POINTS, cache=cache, executor=_LazyExecutor(), progress=False), reference)


@pytest.mark.slow
def test_process_sweep_equals_serial_sweep(cache: Cache, reference: list[Result]) -> None:
    got = sweep(POINTS, cache=cache, executor="processes", max_workers=2, progress=False)
    _same(got, reference)
    assert all(cache.has(p.config, p.samples, p.seed) for p in POINTS)


def test_default_cache_follows_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       reference: list[Result]) -> None:
    monkeypatch.setenv("SIGPROP_CACHE_DIR", str(tmp_path / "moved"))
    got = sweep(POINTS[:2], executor="serial", progress=False)
    _same(got, reference[:2])
    assert len(list((tmp_path / "moved").rglob("*.npz"))) == 2


def test_empty_sweep(cache: Cache) -> None:
    assert sweep([], cache=cache, progress=False) == []


@pytest.mark.parametrize("kwargs", [{"config": BASE.to_dict()}, {"samples": 0}, {"samples": 2.5},
                                    {"seed": -1}, {"kind": "no-such-kind"}])
def test_bad_point_is_a_value_error(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Point(**({"config": BASE, "samples": 4} | kwargs))


@pytest.mark.parametrize("points, kwargs, message", [
    ([(BASE, 4, 0)], {}, r"points\[0\] must be a sim.sweep.Point"),
    ([POINTS[0], "x"], {}, r"points\[1\]"),
    (POINTS, {"executor": "threads"}, "executor='threads' is not known"),
    (POINTS, {"executor": object()}, "submit"),
    (POINTS, {"max_workers": 0}, "max_workers=0"),
])
def test_bad_sweep_input_is_a_value_error(cache: Cache, points: list, kwargs: dict,
                                          message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sweep(points, cache=cache, progress=False, **kwargs)


def test_values_are_finite_somewhere(reference: list[Result]) -> None:
    """Guard against comparing arrays that are all NaN (bytes would still match)."""
    assert all(np.isfinite(r.values).any() for r in reference)


def test_sample_blocks_cover_the_samples_in_order() -> None:
    from sim.sweep import sample_blocks

    assert sample_blocks(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert sample_blocks(2, 5) == [(0, 1), (1, 2)]
    assert sample_blocks(7, 1) == [(0, 7)]
    with pytest.raises(ValueError):
        sample_blocks(7, 0)


def test_a_block_of_samples_is_those_rows_of_the_whole_run(reference: list[Result]) -> None:
    """Samples are seeded by their index alone, so samples 1..3 of a point are rows 1..3 of the
    whole run; the twin, samples 0..2, are not."""
    point, whole = POINTS[-1], reference[-1]
    block = montecarlo.sample_values(point.config, point.seed, point.kind, 1, 4)
    assert block.tobytes() == whole.values[1:4].tobytes()
    assert block.tobytes() != whole.values[0:3].tobytes()
    with pytest.raises(ValueError):
        montecarlo.sample_values(point.config, point.seed, point.kind, 3, 3)


@pytest.mark.parametrize("blocks", [2, 3, 100])
def test_points_split_into_blocks_give_the_same_bits(cache: Cache, reference: list[Result],
                                                     threadsafe_numba: None,
                                                     blocks: int) -> None:
    with cf.ThreadPoolExecutor(max_workers=2) as pool:
        _same(sweep(POINTS, cache=cache, executor=pool, progress=False, blocks=blocks),
              reference)
    counter = Counter()  # and every point went to the cache whole
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(montecarlo, "simulate", counter)
        _same(sweep(POINTS, cache=cache, executor="serial", progress=False), reference)
    assert not counter.calls


def test_a_block_from_another_version_is_refused(cache: Cache, monkeypatch: pytest.MonkeyPatch,
                                                 threadsafe_numba: None) -> None:
    import sim.sweep

    monkeypatch.setattr(sim.sweep, "run_block",
                        lambda p, a, b: ("0.0.0", montecarlo.sample_values(
                            p.config, p.seed, p.kind, a, b)))
    with cf.ThreadPoolExecutor(max_workers=2) as pool, pytest.raises(RuntimeError,
                                                                      match="version 0.0.0"):
        sweep(POINTS[:1], cache=cache, executor=pool, progress=False, blocks=2)
    with pytest.raises(ValueError, match="blocks"):
        sweep(POINTS[:1], cache=cache, executor="serial", progress=False, blocks=0)


def test_missing_blocks_fill_the_gaps() -> None:
    from sim.sweep import missing_blocks, sample_blocks

    assert missing_blocks(10, [], 3) == sample_blocks(10, 3)
    assert missing_blocks(10, [(0, 3)], 3) == [(3, 6), (6, 10)]
    assert missing_blocks(10, [(2, 4), (7, 8)], 10) == [(0, 1), (1, 2), (4, 5), (5, 6), (6, 7),
                                                        (8, 9), (9, 10)]
    assert missing_blocks(10, [(0, 5), (5, 10)], 4) == []
    assert missing_blocks(100, [(0, 1)], 2) == [(1, 50), (50, 100)]


def test_an_interrupted_sweep_in_blocks_resumes_from_its_blocks(
        cache: Cache, reference: list[Result], monkeypatch: pytest.MonkeyPatch,
        threadsafe_numba: None) -> None:
    """Block 2 of 4 fails: the blocks that finished are cached, the rerun computes exactly the
    others (same bits), and the point's blocks are dropped once it is cached."""
    import sim.sweep

    point, whole = Point(BASE, 8, 5), None
    whole = sweep([point], cache=Cache(cache.root / "whole"), executor="serial",
                  progress=False)[0]
    calls: list[tuple[int, int]] = []
    real = sim.sweep.run_block

    def failing(p: Point, a: int, b: int) -> tuple[str, np.ndarray]:
        calls.append((a, b))
        if a == 4:
            raise RuntimeError("worker lost")
        return real(p, a, b)

    monkeypatch.setattr(sim.sweep, "run_block", failing)
    with cf.ThreadPoolExecutor(max_workers=1) as pool, pytest.raises(RuntimeError,
                                                                      match="worker lost"):
        sweep([point], cache=cache, executor=pool, progress=False, blocks=4)
    kept = cache.get_blocks(point.config, point.samples, point.seed, point.kind)
    assert {0, 2} <= set(kept) and 4 not in kept
    for a, v in kept.items():
        assert v.tobytes() == whole.values[a:a + len(v)].tobytes()

    calls.clear()
    monkeypatch.setattr(sim.sweep, "run_block", lambda p, a, b: calls.append((a, b)) or real(
        p, a, b))
    with cf.ThreadPoolExecutor(max_workers=2) as pool:
        _same(sweep([point], cache=cache, executor=pool, progress=False, blocks=4), [whole])
    have = [(a, a + len(v)) for a, v in kept.items()]
    assert sorted(calls) == sim.sweep.missing_blocks(8, have, 4)
    assert (4, 6) in calls and not set(calls) & set(have)
    assert cache.get_blocks(point.config, point.samples, point.seed, point.kind) == {}
    assert not (cache.root / "blocks").exists() or not any((cache.root / "blocks").iterdir())


def test_a_point_whose_blocks_are_all_cached_is_not_recomputed(
        cache: Cache, reference: list[Result], monkeypatch: pytest.MonkeyPatch,
        threadsafe_numba: None) -> None:
    import sim.sweep

    point, whole = POINTS[-1], reference[-1]
    cache.put_block(point.config, point.samples, point.seed, point.kind, 0, whole.values[:2])
    cache.put_block(point.config, point.samples, point.seed, point.kind, 2, whole.values[2:])
    monkeypatch.setattr(sim.sweep, "run_block", None)  # must not be called
    with cf.ThreadPoolExecutor(max_workers=2) as pool:
        _same(sweep([point], cache=cache, executor=pool, progress=False, blocks=3), [whole])
    assert cache.get(point.config, point.samples, point.seed, point.kind) is not None
    # the twin: a wrong cached block gives a wrong point, so the cached values are used
    cache.drop_blocks(point.config, point.samples, point.seed, point.kind)
    cache.path(point.config, point.samples, point.seed, point.kind).unlink()
    cache.put_block(point.config, point.samples, point.seed, point.kind, 0, whole.values[1:3])
    cache.put_block(point.config, point.samples, point.seed, point.kind, 2, whole.values[2:])
    with cf.ThreadPoolExecutor(max_workers=2) as pool:
        wrong = sweep([point], cache=cache, executor=pool, progress=False, blocks=3)[0]
    assert wrong.values.tobytes() != whole.values.tobytes()


def _rows(samples: int, seed: int, start: int = 0) -> dict[str, np.ndarray]:
    """A direct Monte Carlo seeded by sample index (the ``map_samples`` convention)."""
    from sim.rng import sample_seed

    draws = [np.random.default_rng(int(sample_seed(seed, start + i))).standard_normal(3)
             for i in range(samples)]
    return {"x": np.array(draws), "first": np.array([d[0] for d in draws])}


def _rows_ignoring_start(samples: int, seed: int, start: int = 0) -> dict[str, np.ndarray]:
    return _rows(samples, seed)


def test_direct_monte_carlo_in_blocks_gives_the_same_bits() -> None:
    """``map_samples`` on an executor, in 1, 3 or 50 blocks, equals one call; the twin, a
    function that ignores ``start``, does not (its blocks repeat samples 0, 1, ...)."""
    import sim.sweep
    from sim.hcni import wo_singular_values
    from sim.sweep import map_samples

    whole = map_samples(_rows, 10, seed=4)
    sv = map_samples(wo_singular_values, 5, 6, 2, seed=1)
    assert sv.shape == (5, 6) and whole["x"].shape == (10, 3)
    with cf.ThreadPoolExecutor(max_workers=2) as pool:
        for blocks in (1, 3, 50):
            got = map_samples(_rows, 10, seed=4, executor=pool, blocks=blocks)
            assert all(got[k].tobytes() == whole[k].tobytes() for k in whole)
        assert map_samples(wo_singular_values, 5, 6, 2, seed=1, executor=pool,
                           blocks=2).tobytes() == sv.tobytes()
        twin = map_samples(_rows_ignoring_start, 10, seed=4, executor=pool, blocks=3)
        assert twin["x"].tobytes() != whole["x"].tobytes()
        with pytest.raises(RuntimeError, match="rows"):
            map_samples(lambda samples, start: np.zeros(samples + 1), 4, executor=pool,
                        blocks=2)
        with pytest.raises(ValueError, match="blocks"):
            map_samples(_rows, 4, seed=0, executor=pool, blocks=0)
        with pytest.MonkeyPatch.context() as mp:  # a worker of another version is refused
            mp.setattr(sim.sweep, "_versioned", lambda fn, args, kw: ("0.0.0", fn(*args, **kw)))
            with pytest.raises(RuntimeError, match="version 0.0.0"):
                map_samples(_rows, 4, seed=0, executor=pool, blocks=2)


def test_blocks_default_to_whole_points_off_a_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    from sim.cluster import BLOCKS_ENV, default_blocks

    monkeypatch.delenv(BLOCKS_ENV, raising=False)
    with cf.ThreadPoolExecutor(max_workers=2) as pool:
        assert default_blocks(pool) == 1
        monkeypatch.setenv(BLOCKS_ENV, "16")
        assert default_blocks(pool) == 16
        monkeypatch.setenv(BLOCKS_ENV, "zero")
        with pytest.raises(ValueError, match=BLOCKS_ENV):
            default_blocks(pool)
