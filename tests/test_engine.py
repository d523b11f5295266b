"""Engine properties: reproducibility, seeding, finite softmax at any beta, exact physics limits,
and the serialised result."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import reference
from threadpoolctl import threadpool_limits

from sim import kernels, rng
from sim.config import Config
from sim.montecarlo import OBSERVABLES, simulate
from sim.version import VERSION

DETERMINISM_CONFIGS = [
    Config(T=16, d=16, heads=2, depth=4, d_ff=24, beta=2.0, sigma_b2=0.1),
    Config(T=12, d=8, heads=4, depth=3, norm="pre", attention="markov", causal=True,
           gap="remove", input="gaussian"),
]
DETERMINISM_SAMPLES = 13  # odd, more than one sample per thread
DETERMINISM_SEED = 20250101


def _col(name: str) -> int:
    return OBSERVABLES.index(name)


def _sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


_SUBPROCESS = """
import json, sys
import numba
import numpy as np
from sim.config import Config
from sim.montecarlo import simulate
configs, samples, seed, out = json.loads(sys.argv[1])
values = [simulate(Config.from_dict(c), samples, seed, progress=False).values for c in configs]
np.save(out, np.concatenate([v.ravel() for v in values]))
print(numba.get_num_threads())
"""


def _run_in_subprocess(threads: int, out: Path) -> np.ndarray:
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               OMP_NUM_THREADS=str(threads))
    arg = json.dumps([[c.to_dict() for c in DETERMINISM_CONFIGS], DETERMINISM_SAMPLES,
                      DETERMINISM_SEED, str(out)])
    done = subprocess.run([sys.executable, "-c", _SUBPROCESS, arg], env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[-1]) == threads  # the thread count really took effect
    return np.load(out)


@pytest.mark.slow
def test_bit_identical_across_thread_counts(tmp_path: Path) -> None:
    one = _run_in_subprocess(1, tmp_path / "one.npy")
    two = _run_in_subprocess(2, tmp_path / "two.npy")
    runs = [simulate(c, DETERMINISM_SAMPLES, DETERMINISM_SEED, progress=False).values
            for c in DETERMINISM_CONFIGS]
    here = np.concatenate([v.ravel() for v in runs])
    assert one.shape == here.shape
    assert _sha256(one) == _sha256(two) == _sha256(here)
    assert all(np.isfinite(v[:, 1:, :]).all() for v in runs)  # layer 0: NaN entropy/ipr


@pytest.mark.parametrize("config", DETERMINISM_CONFIGS, ids=["post-softmax", "pre-markov"])
def test_bit_identical_across_chunks(config: Config) -> None:
    whole = simulate(config, DETERMINISM_SAMPLES, seed=5, chunk=64, progress=False).values
    ones = simulate(config, DETERMINISM_SAMPLES, seed=5, chunk=1, progress=False).values
    threes = simulate(config, DETERMINISM_SAMPLES, seed=5, chunk=3, progress=False).values
    assert whole.tobytes() == ones.tobytes() == threes.tobytes()


@pytest.mark.parametrize("config", DETERMINISM_CONFIGS, ids=["post-softmax", "pre-markov"])
def test_any_sample_recomputed_alone(config: Config) -> None:
    seed = 99
    values = simulate(config, 6, seed=seed, progress=False).values
    ip, fp, proto = kernels.encode(config)
    for i in (0, 3, 5):
        with threadpool_limits(1):
            alone = kernels.run_samples(ip, fp, np.array([rng.sample_seed(seed, i)],
                                                         dtype=np.uint64), proto)
        assert alone.shape == (1,) + values.shape[1:]
        assert alone[0].tobytes() == values[i].tobytes()


def test_different_seeds_differ() -> None:
    config = DETERMINISM_CONFIGS[0]
    a = simulate(config, 4, seed=0, progress=False).values
    b = simulate(config, 4, seed=1, progress=False).values
    cos = _col("cosine")
    # every sample differs, from the other run and from the other samples of its own run
    assert np.all(a[:, 1:, cos] != b[:, 1:, cos])
    assert len({float(v) for v in a[:, -1, cos]}) == a.shape[0]


# ----------------------------------------------------------------------------- softmax overflow

@pytest.mark.slow
def test_softmax_is_max_shifted_at_huge_scores() -> None:
    """beta = 50 at T = 8192: scores reach far beyond ln(float max) = 709.8, where an unshifted
    exp would overflow; every observable must stay finite."""
    config = Config(T=8192, d=8, depth=1, beta=50.0, mlp=False, input="gaussian")
    # the test is sharp: the layer-1 scores (from the reference draws) really exceed 709.8
    s = rng.sample_seed(0, 0)
    x = reference.draw_input(config, s)
    w = reference.draw_layer(config, s, 1)
    q, k = x @ w.w_q[0], x @ w.w_k[0]
    top = max(float(np.max(q[i:i + 1024] @ k.T)) for i in range(0, config.T, 1024))
    top *= reference.score_scale(config.d_k)
    assert top > math.log(np.finfo(np.float64).max)
    values = simulate(config, 1, seed=0, progress=False).values[0, 1]
    for name in ("cosine", "q", "p", "entropy", "ipr", "stable_rank", "consensus_distance"):
        assert np.isfinite(values[_col(name)]), name
    assert 0.0 <= values[_col("entropy")] <= math.log(config.T)
    assert 1.0 / config.T <= values[_col("ipr")] <= 1.0


# ----------------------------------------------------------------------------- exact limits

def test_uniform_attention_without_skip_collapses_to_one_token() -> None:
    """``X_1 = (1/T) 1 1^T X W_V``: all tokens equal, so cosine 1 and rank 1 after one layer."""
    config = Config(T=8, d=16, depth=2, attention="uniform", alpha_attn=0.0, norm="none",
                    mlp=False, input="gaussian")
    v = simulate(config, 3, seed=2, progress=False).values
    for layer in (1, 2):
        np.testing.assert_allclose(v[:, layer, _col("cosine")], 1.0, rtol=0, atol=1e-12)
        assert np.all(v[:, layer, _col("numerical_rank")] == 1)
        assert np.all(v[:, layer, _col("consensus_distance")] < 1e-12)
    # twin: with the skip the tokens stay apart, so the same checks fail
    skip = simulate(config.replace(alpha_attn=1.0), 3, seed=2, progress=False).values
    assert np.all(skip[:, 1, _col("cosine")] < 1.0 - 1e-3)
    assert np.all(skip[:, 1, _col("numerical_rank")] > 1)


@pytest.mark.parametrize("heads", [1, 2])
def test_identity_attention_entropy_and_ipr(heads: int) -> None:
    config = Config(T=7, d=8, heads=heads, depth=2, attention="identity", causal=True)
    v = simulate(config, 3, seed=4, progress=False).values
    assert np.all(v[:, 1:, _col("entropy")] == 0.0)
    assert np.all(v[:, 1:, _col("ipr")] == 1.0)
    assert np.all(np.isnan(v[:, 0, _col("entropy")])) and np.all(np.isnan(v[:, 0, _col("ipr")]))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("heads", [1, 4])
def test_uniform_attention_entropy_and_ipr(causal: bool, heads: int) -> None:
    T = 9
    config = Config(T=T, d=12, heads=heads, depth=2, attention="uniform", causal=causal)
    v = simulate(config, 3, seed=6, progress=False).values
    rows = np.arange(1, T + 1) if causal else np.full(T, T)  # tokens each row attends to
    entropy, ipr = float(np.mean(np.log(rows))), float(np.mean(1.0 / rows))
    np.testing.assert_allclose(v[:, 1:, _col("entropy")], entropy, rtol=1e-13)
    np.testing.assert_allclose(v[:, 1:, _col("ipr")], ipr, rtol=1e-13)
    # twin: causal and full uniform attention have different entropies, so the check can fail
    other_rows = np.full(T, T) if causal else np.arange(1, T + 1)
    assert abs(float(np.mean(np.log(other_rows))) - entropy) > 1e-2


# ----------------------------------------------------------------------------- results

def test_result_to_dict() -> None:
    config = Config(T=4, d=8, depth=2)
    result = simulate(config, 5, seed=3, progress=False)
    d = result.to_dict()
    assert set(d) >= {"config", "samples", "seed", "kind", "version", "layers"}
    assert d["config"] == config.to_dict()
    assert Config.from_dict(d["config"]) == config
    assert (d["samples"], d["seed"], d["kind"], d["version"]) == (5, 3, "forward", VERSION)
    assert len(d["layers"]) == config.depth + 1
    for layer, row in enumerate(d["layers"]):
        assert row["layer"] == layer
        for name in OBSERVABLES:
            assert set(row[name]) == {"mean", "se"}
            col = result.values[:, layer, _col(name)]
            if np.all(np.isfinite(col)):
                assert row[name]["mean"] == pytest.approx(float(np.mean(col)), rel=1e-14)
                assert row[name]["se"] == pytest.approx(float(np.std(col, ddof=1) / math.sqrt(5)),
                                                        rel=1e-12, abs=1e-300)
            else:
                assert row[name]["mean"] is None
    assert d["layers"][0]["entropy"] == {"mean": None, "se": None}
    assert json.loads(result.to_json()) == json.loads(json.dumps(d))


@pytest.mark.parametrize("chunk", [0, -1])
def test_bad_chunk_is_rejected(chunk: int) -> None:
    with pytest.raises(ValueError, match="chunk"):
        simulate(Config(T=4, d=8, depth=1), 3, seed=0, chunk=chunk, progress=False)


# ----------------------------------------------------------------------------- float32 kernels

FLOAT32_CONFIG = Config(T=40, d=16, depth=3, beta=2.0, sigma_b2=0.1, input="gaussian",
                        causal=True, dtype="float32")


def test_float32_bit_identical_across_chunks_and_recomputed_alone() -> None:
    """The float32 kernels (float32 exp, 8-lane sums) keep the reproducibility guarantees."""
    whole = simulate(FLOAT32_CONFIG, 7, seed=3, chunk=64, progress=False).values
    ones = simulate(FLOAT32_CONFIG, 7, seed=3, chunk=1, progress=False).values
    assert whole.tobytes() == ones.tobytes()
    ip, fp, proto = kernels.encode(FLOAT32_CONFIG)
    with threadpool_limits(1):
        alone = kernels.run_samples(ip, fp, np.array([rng.sample_seed(3, 4)], dtype=np.uint64),
                                    proto)
    assert alone[0].tobytes() == whole[4].tobytes()


def _softmax64(s: np.ndarray, causal: bool) -> tuple[np.ndarray, float, float]:
    """Row softmax, summed entropies and ``sum A^2`` in float64 NumPy (the definition)."""
    T = s.shape[0]
    s = np.where(np.tri(T, dtype=bool) | (not causal), s, -np.inf)
    e = np.exp(s - s.max(axis=1, keepdims=True))
    a = e / e.sum(axis=1, keepdims=True)
    logs = np.log(np.where(a > 0, a, 1.0))
    return a, float(-np.sum(a * logs)), float(np.sum(a * a))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("spread", [1.0, 30.0])
def test_float32_softmax_against_float64(causal: bool, spread: float) -> None:
    """float32 softmax (float32 exp, float64 sums) against the float64 definition on the same
    float32 scores: entries within ``4e-7`` absolute (a few float32 ulps of the row's largest
    entries; shifted scores are rounded to float32, exp is <= 1 ulp), entropy and ``ipr`` within
    ``1e-5`` relative. ``spread = 30`` puts shifted scores below the flush at ``-86``."""
    gen = np.random.default_rng(int(spread) + causal)
    s32 = (spread * gen.standard_normal((203, 203))).astype(np.float32)
    want, ent, ipr = _softmax64(s32.astype(np.float64), causal)
    got = s32.copy()
    e32, q32 = kernels._row_softmax(got, causal)
    assert got.dtype == np.float32
    assert np.abs(got - want).max() <= 4e-7
    assert abs(e32 / ent - 1.0) <= 1e-5 and abs(q32 / ipr - 1.0) <= 1e-5
    # twin: a 1e-4 error in the scores' scale is caught by the same checks
    _, ent_twin, ipr_twin = _softmax64(1.0001 * s32.astype(np.float64), causal)
    assert abs(ent_twin / ent - 1.0) > 1e-5 or abs(ipr_twin / ipr - 1.0) > 1e-5


def test_float32_layer_norm_is_float64_rounded() -> None:
    """float32 LayerNorm (8-lane float64 sums) within 1 float32 ulp of the float64 one rounded."""
    gen = np.random.default_rng(4)
    for d in (256, 13, 7):
        x = (3.0 * gen.standard_normal((50, d)) + 1.0).astype(np.float32)
        got = kernels.layer_norm(x)
        want = kernels.layer_norm(x.astype(np.float64)).astype(np.float32)
        assert got.dtype == np.float32
        assert np.all(np.abs(got - want) <= np.spacing(np.abs(want)))


def test_float32_draws_are_float64_draws_rounded() -> None:
    """Weights drawn in float32 are the float64 stream rounded once (what the reference uses)."""
    config = Config(T=8, d=12, depth=1, heads=2, input="gaussian")
    seed = rng.sample_seed(1, 2)
    ip, fp, proto64 = kernels.encode(config)
    ip, fp, proto32 = kernels.encode(Config.from_dict({**config.to_dict(), "dtype": "float32"}))
    w64 = kernels.draw_layer(ip, fp, seed, 1, proto64)
    w32 = kernels.draw_layer(ip, fp, seed, 1, proto32)
    for a, b in zip(w64, w32, strict=True):
        assert b.dtype == np.float32
        assert a.astype(np.float32).tobytes() == b.tobytes()
    x64 = kernels.draw_input(ip, fp, seed, proto64)
    assert x64.astype(np.float32).tobytes() == kernels.draw_input(ip, fp, seed, proto32).tobytes()
