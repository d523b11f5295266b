"""Benchmark behind ``sigprop bench``: the engine against NumPy and PyTorch.

The work is one Monte-Carlo sample of a deep post-LN transformer (``bench_config``: one softmax
head, ReLU MLP with ``d_ff = d``, Gaussian input), forward through ``depth`` layers, *including*
the draw of fresh weights for every layer and sample and the per-layer observables the engine
records (cosine, ``q``, ``p``, consensus distance, norms, attention entropy and ``ipr``, and the
eigenvalues of the smaller Gram matrix for the stable and numerical rank, in float64).

Implementations (``IMPLS``):

- ``engine``: ``sim.montecarlo.simulate`` (numba, parallel over samples, single-threaded BLAS).
- ``numpy``: ``numpy_forward``, the same model batched over samples (3-D ``np.matmul``), weights
  drawn by ``numpy.random.Generator`` in the config dtype; default BLAS threads.
- ``torch``: ``torch_forward``, the same in PyTorch on the CPU (default threads, ``no_grad``);
  skipped silently when ``import torch`` fails.
- ``matmuls``: ``matmul_forward``, the matmuls of the engine's forward pass alone, with the
  engine's shapes, order and threading (numba threads over samples, one BLAS thread each) on
  fixed operands: no draws, softmax, LayerNorm or observables. It bounds the engine from above:
  ``engine/matmuls`` is the share of its time the engine spends in matmuls.
- ``ceiling``: ``matmul_ceiling``, the measured rate of square ``n = 2048`` NumPy matmuls, run
  back to back for as long as one timed call of an implementation.

Flop convention: a sample costs the matmul flops of its forward pass, per layer
``Q, K, V`` projections ``3 * 2 T d^2``, scores ``2 T^2 d``, ``A V`` ``2 T^2 d`` and MLP
``2 * 2 T d d_ff``, times ``depth`` (``flops_per_sample``); random draws, softmax, LayerNorm and
observables are not counted. ``gflops = flops_per_sample * samples_per_s / 1e9``.

Rows (``run_bench``) are dicts with exactly the keys ``ROW_KEYS``. The ceiling has one row per
dtype with ``T = d = depth = None`` and ``samples_per_s = None``.

Timing: every implementation is warmed up once (numba compilation excluded) and its sample
count calibrated so that one call takes about ``seconds``; then ``repeats`` rounds time each
implementation once in turn, and the best (minimum) call is reported. The ceiling is timed the
same way, as back-to-back matmuls filling about ``seconds`` per call: the best of short single
matmuls would compare a burst rate with the implementations' sustained ones. On a noisy shared
machine the minimum is the least disturbed estimate, and interleaving exposes all
implementations to the same load.

Threads: by default each library keeps its own (the engine: numba threads over samples with
single-threaded BLAS inside; NumPy's BLAS and PyTorch: all cores). Fine-grained multi-threaded
BLAS calls slow down sharply when other processes load the machine; ``threads=1`` compares the
implementations core for core.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import math
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numba
import numpy as np
from threadpoolctl import threadpool_limits

from sim import kernels
from sim.config import LN_EPS, Config
from sim.montecarlo import simulate
from sim.progress import progress_bar

#: ``(T, d, depth)`` of the benchmarked transformers.
SIZES: tuple[tuple[int, int, int], ...] = ((64, 64, 20), (256, 256, 20), (1024, 256, 4))
DTYPES: tuple[str, ...] = ("float64", "float32")
IMPLS: tuple[str, ...] = ("engine", "numpy", "torch", "matmuls", "ceiling")
ROW_KEYS: tuple[str, ...] = ("T", "d", "depth", "dtype", "impl", "samples_per_s", "gflops")

#: Bytes of working memory one NumPy/PyTorch batch may use (sets the batch size).
BATCH_BYTES = 32 << 20
MAX_BATCH = 256

Weights = tuple[Any, Any, Any, Any, Any, Any, Any]


def bench_config(T: int, d: int, depth: int, dtype: str = "float64") -> Config:
    """The benchmarked transformer: post-LN, one softmax head, ReLU MLP (``d_ff = d``),
    Gaussian input, ``beta = 1``, ``sigma_v2 = 1``, ``sigma_w2 = 2``, ``sigma_b2 = 0``."""
    return Config(T=T, d=d, depth=depth, heads=1, d_ff=0, norm="post", mlp=True,
                  attention="softmax", input="gaussian", beta=1.0, sigma_v2=1.0, sigma_w2=2.0,
                  sigma_b2=0.0, alpha_attn=1.0, alpha_mlp=1.0, dtype=dtype)


def flops_per_sample(T: int, d: int, depth: int, d_ff: int | None = None) -> int:
    """Matmul flops of one sample's forward pass (module docstring convention)."""
    f = d if d_ff is None else d_ff
    return depth * (3 * 2 * T * d * d + 2 * 2 * T * T * d + 2 * 2 * T * d * f)


# ----------------------------------------------------------------------------- shared pieces

def _check_supported(config: Config) -> None:
    """The batched implementations cover the benchmarked block only."""
    need = {"norm": "post", "mlp": True, "attention": "softmax", "heads": 1, "gap": "keep",
            "causal": False, "shared_weights": False, "input": "gaussian"}
    for name, value in need.items():
        if getattr(config, name) != value:
            raise ValueError(f"{name}={getattr(config, name)!r} is not supported by the batched "
                             f"benchmark implementations (need {value!r})")


def _stds(config: Config) -> tuple[float, float, float, float, float]:
    """Standard deviations of ``(W_Q = W_K, W_V, W_1, W_2, b)`` (``sim.config`` conventions)."""
    d, f = config.d, config.hidden
    return (math.sqrt(config.beta * math.sqrt(math.log(config.T)) / d),
            math.sqrt(config.sigma_v2 / d), math.sqrt(config.sigma_w2 / d),
            math.sqrt(config.sigma_w2 / f), math.sqrt(config.sigma_b2))


def _batch_size(config: Config, samples: int) -> int:
    """Samples per batch: working memory of a batch within ``BATCH_BYTES``."""
    T, d, f = config.T, config.d, config.hidden
    item = np.dtype(config.dtype).itemsize
    per_sample = item * (3 * T * T + 8 * T * d + 3 * d * d + 2 * d * f + 2 * T * f)
    per_sample += 8 * (2 * T * d + min(T, d) ** 2)  # float64 observables
    return max(1, min(samples, MAX_BATCH, BATCH_BYTES // per_sample))


# ----------------------------------------------------------------------------- NumPy

def numpy_block(x: np.ndarray, weights: Weights, config: Config
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One post-LN block on a batch ``x`` (``B x T x d``).

    ``weights = (W_Q, W_K, W_V, W_1, b_1, W_2, b_2)`` with shapes ``B x d x d`` (three),
    ``B x d x d_ff``, ``B x d_ff``, ``B x d_ff x d``, ``B x d``. Returns ``(x', entropy, ipr)``;
    entropy (nats) and ``ipr = sum_s A_ts^2`` are averaged over rows (``B``, float64)."""
    wq, wk, wv, w1, b1, w2, b2 = weights
    s = np.matmul(np.matmul(x, wq), np.matmul(x, wk).transpose(0, 2, 1))
    s *= s.dtype.type(1.0 / math.sqrt(config.d))
    s -= s.max(axis=2, keepdims=True)
    e = np.exp(s)
    z = e.sum(axis=2)
    entropy = np.log(z) - np.einsum("btj,btj->bt", e, s) / z
    e /= z[:, :, None]
    ipr = np.einsum("btj,btj->bt", e, e)
    y = np.matmul(e, np.matmul(x, wv))
    h = _layer_norm(config.alpha_attn * x + y)
    m = np.matmul(h, w1)
    m += b1[:, None, :]
    np.maximum(m, 0, out=m)
    out = np.matmul(m, w2)
    out += b2[:, None, :]
    out += config.alpha_mlp * h
    return (_layer_norm(out), entropy.mean(axis=1, dtype=np.float64),
            ipr.mean(axis=1, dtype=np.float64))


def _layer_norm(x: np.ndarray) -> np.ndarray:
    """Row-wise LayerNorm without affine parameters, to ``|x_t|^2 = d`` (in place)."""
    x -= x.mean(axis=-1, keepdims=True)
    var = np.einsum("btj,btj->bt", x, x) / x.shape[-1]
    x /= np.sqrt(var + LN_EPS)[:, :, None].astype(x.dtype)
    return x


def numpy_observe(x: np.ndarray) -> np.ndarray:
    """Observables of a batch of tokens ``x`` (``B x T x d``), in float64, as ``B x N_OBS`` in
    the order of ``kernels.OBSERVABLES``; entropy and ``ipr`` are NaN."""
    xx = x.astype(np.float64)
    B, T, d = xx.shape
    out = np.full((B, kernels.N_OBS), np.nan)
    r = np.einsum("btj,btj->bt", xx, xx)
    total = r.sum(axis=1)
    colsum = xx.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(r > 0, 1.0 / np.sqrt(r), 0.0)
        unitsum = np.einsum("btj,bt->bj", xx, inv)
        pairs = T * (T - 1.0)
        out[:, kernels.O_Q] = total / (T * d)
        out[:, kernels.O_NORM] = total / (T * d)
        out[:, kernels.O_P] = (np.einsum("bj,bj->b", colsum, colsum) - total) / (pairs * d)
        cosine = (np.einsum("bj,bj->b", unitsum, unitsum) - T) / pairs
        out[:, kernels.O_COSINE] = np.where((r == 0).any(axis=1), np.nan, cosine)
        centred = xx - colsum[:, None, :] / T
        dev = np.einsum("btj,btj->b", centred, centred)
        ok = np.isfinite(total) & (total > 0)
        gram = np.matmul(xx, xx.transpose(0, 2, 1)) if T < d else np.matmul(
            xx.transpose(0, 2, 1), xx)
        gram[~ok] = 0.0
        lam = np.linalg.eigvalsh(gram)
        lam_max = lam[:, -1]
        rank = (lam > (kernels.RANK_RTOL ** 2 * lam_max)[:, None]).sum(axis=1)
        out[:, kernels.O_CONSENSUS] = np.where(ok, np.sqrt(dev / total), np.nan)
        out[:, kernels.O_STABLE_RANK] = np.where(ok, total / lam_max, np.nan)
        out[:, kernels.O_GRAM_STABLE_RANK] = np.where(
            ok, np.einsum("bi,bi->b", lam, lam) / lam_max ** 2, np.nan)
        out[:, kernels.O_NUMERICAL_RANK] = np.where(ok, rank, np.where(total == 0, 0.0, np.nan))
    return out


def numpy_forward(config: Config, samples: int, seed: int = 0) -> np.ndarray:
    """Observables of ``samples`` samples of ``config`` (``samples x (depth + 1) x N_OBS``,
    float64, the engine's layout), batched NumPy with ``numpy.random.Generator(seed)``."""
    _check_supported(config)
    gen = np.random.default_rng(seed)
    dt = np.dtype(config.dtype)
    T, d, f, depth = config.T, config.d, config.hidden, config.depth
    sqk, sv, s1, s2, sb = _stds(config)
    out = np.empty((samples, depth + 1, kernels.N_OBS))
    batch = _batch_size(config, samples)

    def draw(shape: tuple[int, ...], std: float) -> np.ndarray:
        w = gen.standard_normal(shape, dtype=dt)
        w *= dt.type(std)
        return w

    for start in range(0, samples, batch):
        b = min(batch, samples - start)
        x = draw((b, T, d), 1.0)
        out[start:start + b, 0] = numpy_observe(x)
        for layer in range(1, depth + 1):
            weights = (draw((b, d, d), sqk), draw((b, d, d), sqk), draw((b, d, d), sv),
                       draw((b, d, f), s1), draw((b, f), sb), draw((b, f, d), s2),
                       draw((b, d), sb))
            x, entropy, ipr = numpy_block(x, weights, config)
            rows = out[start:start + b, layer]
            rows[:] = numpy_observe(x)
            rows[:, kernels.O_ENTROPY] = entropy
            rows[:, kernels.O_IPR] = ipr
    return out


# ----------------------------------------------------------------------------- PyTorch

def torch_available() -> bool:
    """Whether PyTorch can be imported."""
    if importlib.util.find_spec("torch") is None:
        return False
    try:
        import torch  # noqa: F401
    except (ImportError, OSError):  # a broken installation counts as absent
        return False
    return True


def torch_block(x: Any, weights: Weights, config: Config) -> tuple[Any, Any, Any]:
    """``numpy_block`` in PyTorch (tensors of the same shapes; entropy and ipr float64)."""
    import torch
    from torch.nn.functional import layer_norm

    wq, wk, wv, w1, b1, w2, b2 = weights
    d = config.d
    s = torch.bmm(torch.bmm(x, wq), torch.bmm(x, wk).transpose(1, 2))
    s *= 1.0 / math.sqrt(d)
    logp = torch.log_softmax(s, dim=2)
    a = torch.exp(logp)
    entropy = -(a * logp).sum(dim=2).mean(dim=1, dtype=torch.float64)
    ipr = (a * a).sum(dim=2).mean(dim=1, dtype=torch.float64)
    y = torch.bmm(a, torch.bmm(x, wv))
    h = layer_norm(config.alpha_attn * x + y, (d,), eps=LN_EPS)
    m = torch.relu(torch.baddbmm(b1[:, None, :], h, w1))
    out = torch.baddbmm(b2[:, None, :], m, w2)
    out += config.alpha_mlp * h
    return layer_norm(out, (d,), eps=LN_EPS), entropy, ipr


def torch_observe(x: Any) -> np.ndarray:
    """``numpy_observe`` in PyTorch (float64); returns a NumPy ``B x N_OBS`` array."""
    import torch

    xx = x.to(torch.float64)
    B, T, d = xx.shape
    out = torch.full((B, kernels.N_OBS), math.nan, dtype=torch.float64)
    r = (xx * xx).sum(dim=2)
    total = r.sum(dim=1)
    colsum = xx.sum(dim=1)
    unitsum = (xx * torch.where(r > 0, torch.rsqrt(r), 0.0)[:, :, None]).sum(dim=1)
    pairs = T * (T - 1.0)
    out[:, kernels.O_Q] = total / (T * d)
    out[:, kernels.O_NORM] = total / (T * d)
    out[:, kernels.O_P] = ((colsum * colsum).sum(dim=1) - total) / (pairs * d)
    cosine = ((unitsum * unitsum).sum(dim=1) - T) / pairs
    out[:, kernels.O_COSINE] = torch.where((r == 0).any(dim=1), math.nan, cosine)
    dev = xx - colsum[:, None, :] / T
    dev = (dev * dev).sum(dim=(1, 2))
    ok = torch.isfinite(total) & (total > 0)
    gram = torch.bmm(xx, xx.transpose(1, 2)) if T < d else torch.bmm(xx.transpose(1, 2), xx)
    gram[~ok] = 0.0
    lam = torch.linalg.eigvalsh(gram)
    lam_max = lam[:, -1]
    rank = (lam > (kernels.RANK_RTOL ** 2 * lam_max)[:, None]).sum(dim=1).to(torch.float64)
    out[:, kernels.O_CONSENSUS] = torch.where(ok, torch.sqrt(dev / total), math.nan)
    out[:, kernels.O_STABLE_RANK] = torch.where(ok, total / lam_max, math.nan)
    out[:, kernels.O_GRAM_STABLE_RANK] = torch.where(
        ok, (lam * lam).sum(dim=1) / lam_max ** 2, math.nan)
    out[:, kernels.O_NUMERICAL_RANK] = torch.where(
        ok, rank, torch.where(total == 0, 0.0, math.nan))
    return out.numpy()


def torch_forward(config: Config, samples: int, seed: int = 0) -> np.ndarray:
    """``numpy_forward`` in PyTorch on the CPU (``torch.Generator`` seeded with ``seed``)."""
    import torch

    _check_supported(config)
    gen = torch.Generator().manual_seed(seed)
    dt = getattr(torch, config.dtype)
    T, d, f, depth = config.T, config.d, config.hidden, config.depth
    sqk, sv, s1, s2, sb = _stds(config)
    out = np.empty((samples, depth + 1, kernels.N_OBS))
    batch = _batch_size(config, samples)

    def draw(shape: tuple[int, ...], std: float) -> Any:
        w = torch.randn(shape, generator=gen, dtype=dt)
        w *= std
        return w

    with torch.no_grad():
        for start in range(0, samples, batch):
            b = min(batch, samples - start)
            x = draw((b, T, d), 1.0)
            out[start:start + b, 0] = torch_observe(x)
            for layer in range(1, depth + 1):
                weights = (draw((b, d, d), sqk), draw((b, d, d), sqk), draw((b, d, d), sv),
                           draw((b, d, f), s1), draw((b, f), sb), draw((b, f, d), s2),
                           draw((b, d), sb))
                x, entropy, ipr = torch_block(x, weights, config)
                rows = out[start:start + b, layer]
                rows[:] = torch_observe(x)
                rows[:, kernels.O_ENTROPY] = entropy.numpy()
                rows[:, kernels.O_IPR] = ipr.numpy()
    return out


# ----------------------------------------------------------------------------- matmuls alone

@numba.njit(parallel=True, cache=True)
def _forward_matmuls(x, a, wq, wk, wv, w1, w2, depth, samples):
    """The matmuls of ``samples`` forward passes of ``depth`` layers, as ``sim.kernels.block``
    runs them for one head (scores ``x (W_Q W_K^T) x^T`` when ``T > d``, else
    ``(x W_Q)(x W_K)^T``; then ``A (x W_V)`` and the MLP ``(y W_1) W_2``), each product on the
    same fixed operands (``x``: ``T x d``, ``a``: ``T x T``). Returns, per sample, the sum of
    the last layer's scores and MLP output (so no product can be skipped)."""
    T, d = x.shape
    out = np.zeros(samples)
    for i in numba.prange(samples):
        for _ in range(depth):
            if d < T:
                s = np.dot(np.dot(x, np.dot(wq, wk.T)), x.T)
            else:
                s = np.dot(np.dot(x, wq), np.dot(x, wk).T)
            y = np.dot(a, np.dot(x, wv))
            m = np.dot(np.dot(y, w1), w2)
            out[i] = s.sum() + m.sum()
    return out


def matmul_operands(config: Config) -> tuple[np.ndarray, ...]:
    """``(x, A, W_Q, W_K, W_V, W_1, W_2)`` for ``matmul_forward``: fixed Gaussian operands of the
    engine's shapes in the config dtype (``A`` row-stochastic)."""
    _check_supported(config)
    gen = np.random.default_rng(0)
    T, d, f = config.T, config.d, config.hidden
    a = gen.random((T, T))
    a /= a.sum(axis=1, keepdims=True)
    shapes = ((T, d), (d, d), (d, d), (d, d), (d, f), (f, d))
    x, wq, wk, wv, w1, w2 = (gen.standard_normal(sh) / math.sqrt(sh[0]) for sh in shapes)
    return tuple(np.ascontiguousarray(m, dtype=config.dtype) for m in (x, a, wq, wk, wv, w1, w2))


def matmul_forward(config: Config, samples: int,
                   operands: tuple[np.ndarray, ...] | None = None) -> np.ndarray:
    """The forward pass's matmuls alone for ``samples`` samples (``_forward_matmuls``), with
    the engine's threading: numba threads over samples, one BLAS thread each."""
    ops = matmul_operands(config) if operands is None else operands
    with threadpool_limits(1):
        return _forward_matmuls(*ops, config.depth, samples)


# ----------------------------------------------------------------------------- timing

def _wall(run: Callable[[], object]) -> float:
    """Wall time (s) of one call of ``run``."""
    t0 = time.perf_counter()
    run()
    return time.perf_counter() - t0


def calibrate(run: Callable[[int], object], seconds: float, step: int = 1) -> int:
    """Sample count ``n`` (a multiple of ``step``) for which ``run(n)`` takes about ``seconds``;
    the first call (a warm-up: compilation, allocation, thread pools) is not timed."""
    run(step)
    n = step
    while (t := _wall(functools.partial(run, n))) < 0.3 * seconds:
        grow = max(2.0, min(100.0, 0.5 * seconds / max(t, 1e-9)))
        n = step * math.ceil(n * grow / step)
    return max(step, step * round(n * seconds / t / step))


def measure_rate(run: Callable[[int], object], seconds: float, repeats: int = 3,
                 step: int = 1) -> float:
    """Samples per second of ``run(n)`` (which processes ``n`` samples): calibrate ``n``, then
    take the best of ``repeats`` calls."""
    n = calibrate(run, seconds, step)
    return n / min(_wall(functools.partial(run, n)) for _ in range(max(1, repeats)))


def _matmuls(dtype: str, n: int) -> Callable[[int], object]:
    """``run(k)``: ``k`` back-to-back ``n x n`` NumPy matmuls in ``dtype`` (inputs drawn once)."""
    gen = np.random.default_rng(0)
    a = gen.standard_normal((n, n), dtype=np.dtype(dtype))
    b = gen.standard_normal((n, n), dtype=np.dtype(dtype))
    c = np.empty_like(a)

    def run(k: int) -> None:
        for _ in range(k):
            np.matmul(a, b, out=c)
    return run


def matmul_ceiling(dtype: str, n: int = 2048, seconds: float = 1.0, repeats: int = 3) -> float:
    """GFLOP/s of ``n x n`` NumPy matmuls in ``dtype`` (``2 n^3`` flops each) with NumPy's
    default BLAS threads, timed like an implementation (``measure_rate``): back to back for
    about ``seconds`` per call, best of ``repeats`` calls."""
    return 2.0 * n ** 3 * measure_rate(_matmuls(dtype, n), seconds, repeats) / 1e9


def _runner(impl: str, config: Config) -> Callable[[int], object]:
    # numba's BLAS and LAPACK come from scipy's OpenBLAS, which sim.montecarlo loads at import,
    # so threadpool_limits(1) covers the engine's and matmuls' first (warm-up) calls too
    if impl == "engine":
        return lambda n: simulate(config, n, 0, progress=False)
    if impl == "numpy":
        return lambda n: numpy_forward(config, n, 0)
    if impl == "matmuls":
        ops = matmul_operands(config)
        return lambda n: matmul_forward(config, n, ops)
    if impl == "torch":
        return lambda n: torch_forward(config, n, 0)
    raise ValueError(f"impl={impl!r} is not known; choose one of {', '.join(IMPLS)}")


def _engine_step() -> int:
    import numba

    return max(1, numba.get_num_threads())


def _failed(impl: str, size: tuple[int, ...], dtype: str, exc: Exception) -> None:
    first = (str(exc).strip().splitlines() or [""])[0]
    warnings.warn(f"{impl} failed at T,d,depth={size} {dtype}, row omitted: "
                  f"{type(exc).__name__}: {first}", RuntimeWarning, stacklevel=3)


@contextlib.contextmanager
def thread_limit(threads: int | None) -> Iterator[None]:
    """Run every implementation on at most ``threads`` threads (numba's sample threads, BLAS
    and PyTorch); ``None`` leaves each library at its default."""
    if threads is None:
        yield
        return
    import numba

    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads={threads!r} must be an integer >= 1")
    torch = None
    if torch_available():
        import torch
    saved = numba.get_num_threads(), torch.get_num_threads() if torch else None
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    if torch:
        torch.set_num_threads(threads)
    try:
        with threadpool_limits(threads):
            yield
    finally:
        numba.set_num_threads(saved[0])
        if torch:
            torch.set_num_threads(saved[1])


def run_bench(sizes: Iterable[Sequence[int]] = SIZES, dtypes: Iterable[str] = DTYPES,
              seconds: float = 1.0, impls: Iterable[str] = IMPLS,
              progress: bool | None = None, *, repeats: int = 3, ceiling_n: int = 2048,
              threads: int | None = None) -> list[dict[str, Any]]:
    """Time every implementation in ``impls`` at every ``(T, d, depth)`` in ``sizes`` and dtype.

    ``seconds`` is the target duration of one timed call (tiny values make a quick run). At each
    size and dtype every implementation is warmed up and calibrated, then ``repeats`` rounds
    time each implementation once in turn (and the ceiling matmul once), so that load from
    other processes hits all of them alike; the best call of each is kept.

    Returns rows with keys ``ROW_KEYS``; the ceiling row of a dtype comes first, with
    ``T = d = depth = samples_per_s = None``. ``torch`` rows are omitted when PyTorch cannot be
    imported, and the row of a failing implementation is omitted with a ``RuntimeWarning``.
    ``threads`` caps every implementation's threads (``thread_limit``); the default leaves
    each at its own default. A progress bar shows on a terminal unless ``progress=False``."""
    sizes = [tuple(int(v) for v in s) for s in sizes]
    dtypes, impls = list(dtypes), list(impls)
    for impl in impls:
        if impl not in IMPLS:
            raise ValueError(f"impl={impl!r} is not known; choose one of {', '.join(IMPLS)}")
    if not seconds > 0:
        raise ValueError(f"seconds={seconds!r} must be > 0")
    repeats = max(1, repeats)
    if "torch" in impls and not torch_available():
        impls.remove("torch")
    timed = [i for i in impls if i != "ceiling"]
    ceiling = "ceiling" in impls
    total = len(dtypes) * (ceiling + len(sizes) * (len(timed) + repeats))
    rows: list[dict[str, Any]] = []
    with thread_limit(threads), progress_bar(total, "step", progress) as bar:
        for dt in dtypes:
            matmul, matmul_best, per_call = None, math.inf, 0
            if ceiling:
                bar.set_description(f"ceiling {dt}")
                run = _matmuls(dt, ceiling_n)
                per_call = calibrate(run, seconds)  # matmuls per timed call
                matmul = functools.partial(run, per_call)
                matmul_best = min(_wall(matmul) for _ in range(repeats))
                bar.update(1)
            dtype_rows = []
            for size in sizes:
                config = bench_config(*size, dtype=dt)
                runs: dict[str, tuple[Callable[[int], object], int]] = {}
                for impl in timed:
                    bar.set_description(f"calibrate {impl} {dt} T,d,depth={size}")
                    run = _runner(impl, config)
                    try:
                        runs[impl] = run, calibrate(
                            run, seconds, _engine_step() if impl in ("engine", "matmuls")
                            else 1)
                    except Exception as exc:  # noqa: BLE001 (one failure must not hide the rest)
                        _failed(impl, size, dt, exc)
                    bar.update(1)
                best = dict.fromkeys(runs, math.inf)
                for r in range(repeats):
                    bar.set_description(f"time {dt} T,d,depth={size} round {r + 1}/{repeats}")
                    for impl, (run, n) in runs.items():
                        best[impl] = min(best[impl], _wall(functools.partial(run, n)))
                    if matmul is not None:
                        matmul_best = min(matmul_best, _wall(matmul))
                    bar.update(1)
                flops = flops_per_sample(*size, config.hidden)
                for impl, (_, n) in runs.items():
                    sps = n / best[impl]
                    dtype_rows.append(dict(zip(ROW_KEYS, (*size, dt, impl, sps,
                                                          flops * sps / 1e9), strict=True)))
            if ceiling:
                rate = 2.0 * ceiling_n ** 3 * per_call / matmul_best / 1e9
                rows.append(dict(zip(ROW_KEYS, (None, None, None, dt, "ceiling", None, rate),
                                     strict=True)))
            rows += dtype_rows
    return rows


# ----------------------------------------------------------------------------- report

def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A text table of ``run_bench`` rows: rates, GFLOP/s, the fraction of the matmul ceiling
    of the dtype, and the engine's speed relative to NumPy and PyTorch (``> 1``: engine
    faster) and to its matmuls alone (the share of the engine's time spent in matmuls)."""
    ceiling = {r["dtype"]: r["gflops"] for r in rows if r["impl"] == "ceiling"}
    lines = []
    if ceiling:
        lines.append("matmul ceiling (NumPy, square matmul): " + ", ".join(
            f"{dt} {g:.1f} GFLOP/s" for dt, g in ceiling.items()))
        lines.append("")
    head = (f"{'T':>5} {'d':>5} {'depth':>5}  {'dtype':<8} {'impl':<7} {'samples/s':>11} "
            f"{'GFLOP/s':>8} {'ceiling':>8}")
    lines += [head, "-" * len(head)]
    timed = [r for r in rows if r["impl"] != "ceiling"]
    for r in timed:
        frac = (f"{100 * r['gflops'] / ceiling[r['dtype']]:7.1f}%"
                if r["dtype"] in ceiling else f"{'-':>8}")
        lines.append(f"{r['T']:>5} {r['d']:>5} {r['depth']:>5}  {r['dtype']:<8} {r['impl']:<7} "
                     f"{r['samples_per_s']:>11.2f} {r['gflops']:>8.2f} {frac}")
    rate = {(r["T"], r["d"], r["depth"], r["dtype"], r["impl"]): r["samples_per_s"]
            for r in timed}
    keys = list(dict.fromkeys(k[:4] for k in rate))
    others = [i for i in ("numpy", "torch", "matmuls") if any(k[4] == i for k in rate)]
    if "engine" in {k[4] for k in rate} and others:
        lines += ["", "engine speed relative to (samples/s ratio, > 1: engine faster; "
                  "engine/matmuls: share of the matmul-only bound)"]
        head = f"{'T':>5} {'d':>5} {'depth':>5}  {'dtype':<8} " + " ".join(
            f"{'engine/' + i:>13}" for i in others)
        lines += [head, "-" * len(head)]
        for k in keys:
            cells = []
            for i in others:
                e, o = rate.get((*k, "engine")), rate.get((*k, i))
                cells.append(f"{e / o:>13.2f}" if e and o else f"{'-':>13}")
            lines.append(f"{k[0]:>5} {k[1]:>5} {k[2]:>5}  {k[3]:<8} " + " ".join(cells))
    return "\n".join(lines)
