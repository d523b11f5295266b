"""The benchmark: row schema, and that its NumPy/PyTorch implementations are the engine's model.

No timing assertions: speed is reported by ``sigprop bench``, not tested.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sim import bench, kernels, rng
from sim.montecarlo import estimate, simulate

TINY = (16, 16, 2)
HAS_TORCH = bench.torch_available()


def _impls() -> list[str]:
    return ["engine", "numpy", "matmuls"] + (["torch"] if HAS_TORCH else [])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_run_bench_rows(dtype):
    rows = bench.run_bench(sizes=(TINY,), dtypes=(dtype,), seconds=1e-3, repeats=1,
                           ceiling_n=128, progress=False)
    json.dumps(rows)
    assert all(tuple(r) == bench.ROW_KEYS for r in rows)
    ceiling = [r for r in rows if r["impl"] == "ceiling"]
    assert len(ceiling) == 1
    c = ceiling[0]
    assert (c["T"], c["d"], c["depth"], c["samples_per_s"], c["dtype"]) == (
        None, None, None, None, dtype)
    assert math.isfinite(c["gflops"]) and c["gflops"] > 0
    timed = {r["impl"]: r for r in rows if r["impl"] != "ceiling"}
    assert sorted(timed) == sorted(_impls())
    flops = bench.flops_per_sample(*TINY)
    for r in timed.values():
        assert (r["T"], r["d"], r["depth"], r["dtype"]) == (*TINY, dtype)
        for key in ("samples_per_s", "gflops"):
            assert isinstance(r[key], float) and math.isfinite(r[key]) and r[key] > 0
        assert r["gflops"] == pytest.approx(flops * r["samples_per_s"] / 1e9)
    table = bench.format_table(rows)
    assert "engine/numpy" in table and dtype in table


def _slow_matmuls(dtype, n):
    """A stand-in for ``bench._matmuls``: each "matmul" sleeps 10 ms, so the rate is known."""
    import time

    def run(k):
        time.sleep(0.01 * k)
    return run


def test_ceiling_counts_every_back_to_back_matmul(monkeypatch):
    # 2 * 100^3 flops per 10 ms: 0.2 GFLOP/s, however many matmuls a calibrated call holds
    monkeypatch.setattr(bench, "_matmuls", _slow_matmuls)
    rate = bench.matmul_ceiling("float64", n=100, seconds=0.1, repeats=2)
    rows = bench.run_bench(sizes=(), dtypes=("float64",), seconds=0.1, impls=("ceiling",),
                           repeats=2, ceiling_n=100, progress=False)
    for got in (rate, rows[0]["gflops"]):
        assert 0.16 < got <= 0.2  # sleep overshoots, never undershoots
        # the twin: a rate from one matmul per call (about 10 per 0.1 s call) is rejected
        assert not 0.16 < got / 10 <= 0.2


def test_thread_limit_is_applied_and_restored():
    import numba

    before = numba.get_num_threads()
    rows = bench.run_bench(sizes=(TINY,), dtypes=("float64",), seconds=1e-3, repeats=1,
                           impls=("engine", "numpy"), progress=False, threads=1)
    assert [r["impl"] for r in rows] == ["engine", "numpy"]
    assert numba.get_num_threads() == before
    with pytest.raises(ValueError, match="threads"):
        bench.run_bench(sizes=(TINY,), threads=0)


def test_format_table_without_engine_or_ceiling():
    rows = [dict(zip(bench.ROW_KEYS, (*TINY, "float64", "numpy", 10.0, 1.0), strict=True))]
    table = bench.format_table(rows)
    assert "numpy" in table and "engine/" not in table


def _numpy_matmuls(ops, skip=""):
    """``bench._forward_matmuls``' products for one layer in NumPy; ``skip`` drops one."""
    x, a, wq, wk, wv, w1, w2 = (m.astype(np.float64) for m in ops)
    s = x @ (wq @ wk.T) @ x.T if x.shape[1] < x.shape[0] else (x @ wq) @ (x @ wk).T
    y = x @ wv if skip == "A" else a @ (x @ wv)
    m = y @ w1 if skip == "W_2" else (y @ w1) @ w2
    return s.sum() + m.sum()


@pytest.mark.parametrize("T,d", [(24, 8), (8, 24)])
def test_matmuls_alone_are_the_engines_products(T, d):
    """Every sample of ``matmul_forward`` computes the forward pass's products (both score
    branches); the twins, a pass without ``A`` or without ``W_2``, give another checksum."""
    config = bench.bench_config(T, d, 3)
    ops = bench.matmul_operands(config)
    got = bench.matmul_forward(config, 5, ops)
    want = _numpy_matmuls(ops)
    assert got.shape == (5,) and np.allclose(got, want, rtol=1e-12, atol=0)
    for skip in ("A", "W_2"):
        assert not np.isclose(got[0], _numpy_matmuls(ops, skip), rtol=1e-3, atol=0), skip
    assert bench.matmul_forward(config.replace(dtype="float32"), 2).dtype == np.float64


def test_flops_convention():
    # T=2, d=3, d_ff=5, one layer: QKV 3*2*2*9, scores and A V 2*2*2*4*3, MLP 2*2*2*3*5.
    assert bench.flops_per_sample(2, 3, 1, 5) == 108 + 48 + 120
    assert bench.flops_per_sample(2, 3, 4, 5) == 4 * (108 + 48 + 120)
    assert bench.flops_per_sample(2, 3, 1) == bench.flops_per_sample(2, 3, 1, 3)


def test_unsupported_config_is_refused():
    with pytest.raises(ValueError, match="heads"):
        bench.numpy_forward(bench.bench_config(8, 8, 1).replace(heads=2), 1)
    with pytest.raises(ValueError, match="impl"):
        bench.run_bench(sizes=(TINY,), impls=("fortran",))


def _engine_weights(config, seeds, layer):
    """The engine's layer weights of ``seeds``, stacked in ``bench.Weights`` order."""
    ip, fp, proto = kernels.encode(config)
    drawn = [kernels.draw_layer(ip, fp, s, layer, proto) for s in seeds]
    # draw_layer: (W_Q, W_K, W_V, W_O, W_1, b_1, W_2, b_2, G); one head -> index [0].
    return tuple(np.stack([w[j][0] if j < 3 else w[j] for w in drawn])
                 for j in (0, 1, 2, 4, 5, 6, 7))


@pytest.mark.parametrize("impl", ["numpy", "torch"])
@pytest.mark.parametrize("T,d", [(8, 16), (24, 8)])
def test_block_matches_engine_on_its_weights(impl, T, d):
    """Fed the engine's input and weights, the batched block reproduces every observable of
    every layer to near machine precision (both Gram branches: T < d and T > d)."""
    if impl == "torch" and not HAS_TORCH:
        pytest.skip("torch is not installed")
    config = bench.bench_config(T, d, 3).replace(sigma_b2=0.1, alpha_attn=0.7, beta=2.0)
    ip, fp, proto = kernels.encode(config)
    seeds = rng.sample_seeds(0, 0, 4)
    ref = np.empty((seeds.size, config.depth + 1, kernels.N_OBS))
    for i, s in enumerate(seeds):
        kernels.run_sample(ip, fp, s, proto, ref[i])
    x = np.stack([kernels.draw_input(ip, fp, s, proto) for s in seeds])
    got = np.empty_like(ref)
    if impl == "torch":
        import torch

        block, observe, x = bench.torch_block, bench.torch_observe, torch.from_numpy(x)
        convert, back = torch.from_numpy, lambda t: t.numpy()
    else:
        block, observe = bench.numpy_block, bench.numpy_observe
        convert = back = np.asarray
    got[:, 0] = observe(x)
    for layer in range(1, config.depth + 1):
        weights = tuple(convert(w) for w in _engine_weights(config, seeds, layer))
        x, entropy, ipr = block(x, weights, config)
        got[:, layer] = observe(x)
        got[:, layer, kernels.O_ENTROPY] = back(entropy)
        got[:, layer, kernels.O_IPR] = back(ipr)
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-10)


def _max_z(a: np.ndarray, b: np.ndarray) -> float:
    """Largest |z| over layers 1-2 of cosine and attention entropy, two independent runs."""
    z = 0.0
    for name in ("cosine", "entropy"):
        k = kernels.OBSERVABLES.index(name)
        for layer in (1, 2):
            ea, eb = estimate(a[:, layer, k]), estimate(b[:, layer, k])
            z = max(z, abs(ea.mean - eb.mean) / math.hypot(ea.se, eb.se))
    return z


@pytest.mark.parametrize("impl", ["numpy", "torch"])
def test_same_model_as_engine_statistically(impl):
    """Independent random numbers, same model: the estimates agree within 5 SE; the mutation
    twin (``beta`` 10% larger) must disagree."""
    if impl == "torch" and not HAS_TORCH:
        pytest.skip("torch is not installed")
    forward = bench.numpy_forward if impl == "numpy" else bench.torch_forward
    config = bench.bench_config(8, 16, 2)
    samples = 3000
    engine = simulate(config, samples, seed=1, progress=False).values
    with bench.thread_limit(1):  # tiny matrices: threads only add overhead
        same = forward(config, samples, 2)
        mutant = forward(config.replace(beta=1.1), samples, 2)
    assert _max_z(same, engine) < 5.0
    assert _max_z(mutant, engine) > 5.0
