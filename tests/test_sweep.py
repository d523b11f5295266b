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
