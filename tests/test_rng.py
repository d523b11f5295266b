"""The counter-based Gaussian streams of ``sim.rng``."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from sim import rng

N_KS = 1_000_000
P_MIN = 1e-6  # family-wise false-fail rate of these statistical tests, per test


@pytest.fixture(scope="module")
def draws() -> np.ndarray:
    return rng.normal((N_KS,), rng.stream_key(np.uint64(12345), 3, rng.W_V))


def test_normals_are_standard_normal(draws: np.ndarray) -> None:
    assert stats.kstest(draws, "norm", method="asymp").pvalue > P_MIN
    # mean and variance at 5 standard errors (sd of the sample variance is sqrt(2/n))
    assert abs(draws.mean()) < 5 / np.sqrt(N_KS)
    assert abs(draws.var() - 1.0) < 5 * np.sqrt(2.0 / N_KS)


@pytest.mark.parametrize("mutation", ["scale 1.1", "shift 0.01"])
def test_mutation_twin_is_rejected(draws: np.ndarray, mutation: str) -> None:
    """The same KS test rejects a 10% wrong scale (and a 0.01 shift): the check can fail."""
    wrong = draws * 1.1 if mutation == "scale 1.1" else draws + 0.01
    assert stats.kstest(wrong, "norm", method="asymp").pvalue < P_MIN


def test_mean_and_std_arguments() -> None:
    key = rng.stream_key(np.uint64(7), 1, rng.W_1)
    z = rng.normal((1001,), key)
    np.testing.assert_allclose(rng.normal((1001,), key, -0.5, 3.0), -0.5 + 3.0 * z, rtol=1e-14,
                               atol=1e-14)


def test_streams_with_different_keys_are_uncorrelated() -> None:
    n = 200_000
    keys = [rng.stream_key(np.uint64(s), layer, m)
            for s, layer, m in [(1, 1, rng.W_Q), (1, 1, rng.W_K), (1, 2, rng.W_Q),
                                (2, 1, rng.W_Q), (1, -1, rng.INPUT), (1, 0, rng.INPUT)]]
    streams = np.stack([rng.normal((n,), k) for k in keys])
    corr = np.corrcoef(streams)
    off = corr[~np.eye(len(keys), dtype=bool)]
    assert np.all(np.abs(off) < 5 / np.sqrt(n)), off
    # lag-1 correlation inside a stream (the two normals of one Box-Muller pair)
    for s in streams:
        assert abs(np.corrcoef(s[:-1], s[1:])[0, 1]) < 5 / np.sqrt(n)
        assert abs(np.corrcoef(s[0::2], s[1::2])[0, 1]) < 5 / np.sqrt(n / 2)
    # twin: a 5% admixture of one stream into another is detected at the same threshold
    mixed = 0.05 * streams[0] + streams[1]
    assert abs(np.corrcoef(streams[0], mixed)[0, 1]) > 5 / np.sqrt(n)


def _all_keys(seeds: list[np.uint64]) -> list[int]:
    return [int(rng.stream_key(s, layer, m))
            for s, layer, m in itertools.product(seeds, range(-1, 12), range(10))]


def test_stream_keys_are_distinct() -> None:
    seeds = [rng.sample_seed(seed, i) for seed in (0, 1, 2**40) for i in range(50)]
    seeds += [np.uint64(1), np.uint64(2), np.uint64(12345), np.uint64(2**64 - 1)]
    keys = _all_keys(seeds)
    assert len(set(keys)) == len(keys)
    s = rng.sample_seed(0, 0)
    base = rng.stream_key(s, 1, rng.W_V)
    assert base != rng.stream_key(rng.sample_seed(0, 1), 1, rng.W_V)  # sample
    assert base != rng.stream_key(s, 2, rng.W_V)  # layer
    assert base != rng.stream_key(s, 1, rng.W_Q)  # matrix


def test_stream_keys_are_distinct_for_sample_seed_zero() -> None:
    keys = _all_keys([np.uint64(0)])
    assert len(set(keys)) == len(keys)


def test_stream_is_a_pure_function_of_its_key() -> None:
    key = rng.stream_key(np.uint64(3), 2, rng.W_2)
    assert rng.normal((5, 7), key).tobytes() == rng.normal((5, 7), key).tobytes()
    # the shape only reshapes the stream
    assert rng.normal((5, 7), key).ravel().tobytes() == rng.normal((35,), key).tobytes()


@pytest.mark.parametrize("n", [1, 3, 7, 101])
def test_odd_length_is_prefix_of_even_length(n: int) -> None:
    key = rng.stream_key(np.uint64(11), 4, rng.B_1)
    odd = rng.normal((n,), key)
    even = rng.normal((n + 1,), key)
    assert odd.tobytes() == even[:n].tobytes()
    assert rng.normal((n + 2,), key)[:n + 1].tobytes() == even.tobytes()


@pytest.mark.parametrize("seed", [0, 1, 2**32 + 5, 2**63 - 1, 10**30])
def test_sample_seed_is_seed_sequence_spawn_key(seed: int) -> None:
    for i in (0, 1, 17, 12345):
        want = np.random.SeedSequence(seed, spawn_key=(i,)).generate_state(1, np.uint64)[0]
        assert rng.sample_seed(seed, i) == want
    np.testing.assert_array_equal(
        rng.sample_seeds(seed, 2, 6), [rng.sample_seed(seed, i) for i in range(2, 6)])
    # spawn children are the same streams
    child = np.random.SeedSequence(seed).spawn(3)[2]
    assert rng.sample_seed(seed, 2) == child.generate_state(1, np.uint64)[0]
