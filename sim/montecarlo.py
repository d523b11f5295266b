"""Monte Carlo over independent samples of a deep random transformer.

``simulate(config, samples, seed, kind)`` returns a ``Result``: per-sample observables
(``samples x layers x observables``, float64) with the config, seed, sample count, kind and
version that produced them. A *kind* names what is measured (``KINDS``): ``"forward"`` records
``OBSERVABLES`` at every layer ``0 .. depth``; ``"order"`` is ``"forward"`` without the rank
observables (NaN there), for deep stacks; other kinds (registered by ``register_kind``)
measure one object: ``"attention"`` and ``"rows"`` the layer-1 attention matrix (one row),
``"spectra"`` its eigenvalues and singular values (one row per eigenvalue), ``"gradient"`` the
exact value-weight Jacobian norms of an attention-only stack (one row per layer),
``"alignment"`` the tokens' alignment with eigen-directions of ``F`` (``sim.alignment``);
``"heads"``, ``"queries"`` and ``"ablation"`` what each head does: sink mass, contribution
weights, token deletions (``sim.heads``).

Sample ``i`` is seeded by ``SeedSequence(seed, spawn_key=(i,))`` and written to its own slot;
BLAS runs single-threaded inside the kernels. The same ``(config, samples, seed)`` therefore
gives bit-identical results for any thread count and any chunking of the samples.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  numba's BLAS/LAPACK: load it before
import scipy.linalg.cython_lapack  # noqa: F401  threadpool_limits(1) so the limit covers it
from threadpoolctl import threadpool_limits

from sim import heads, kernels, rng
from sim.alignment import ALIGNMENT_OBSERVABLES, alignment_samples
from sim.config import Config
from sim.progress import progress_bar
from sim.version import VERSION

OBSERVABLES = kernels.OBSERVABLES


@dataclass(frozen=True)
class Kind:
    """What a Monte-Carlo run measures: ``kernel(ip, fp, seeds, proto)`` returns
    ``len(seeds) x layers(config) x len(observables)`` float64 values. ``check(config)`` raises
    ``ValueError`` for configs the kind cannot measure."""

    name: str
    observables: tuple[str, ...]
    kernel: Callable[..., np.ndarray]
    layers: Callable[[Config], int]
    check: Callable[[Config], None] | None = None
    #: what a row is (the header of ``sigprop run``'s first column)
    row_label: str = "layer"


KINDS: dict[str, Kind] = {}


def register_kind(kind: Kind) -> Kind:
    KINDS[kind.name] = kind
    return kind


register_kind(Kind("forward", OBSERVABLES, kernels.run_samples, lambda c: c.depth + 1))
register_kind(Kind("order", OBSERVABLES, kernels.run_samples_light, lambda c: c.depth + 1))
register_kind(Kind("attention", kernels.ATTENTION_OBSERVABLES, kernels.attention_samples,
                   lambda c: 1, row_label="row"))


def _check_rows(config: Config) -> None:
    if config.qk != "random" or config.sink:
        raise ValueError(f"kind='rows' samples random key-query projections; it cannot measure "
                         f"qk={config.qk!r} or sink={config.sink!r} (use kind='queries')")
    if config.attention == "markov":
        return
    if config.attention != "softmax" or config.input not in ("isometric", "simplex") \
            or config.norm == "pre":
        raise ValueError(
            "kind='rows' measures softmax attention on isometric or simplex input (norm post or "
            "none) or markov attention; got "
            f"attention={config.attention!r}, input={config.input!r}, norm={config.norm!r}")


register_kind(Kind("rows", kernels.ROW_OBSERVABLES, kernels.row_samples, lambda c: 1,
                   _check_rows, row_label="row"))


SPECTRA_OBSERVABLES = ("eig_real", "eig_imag", "singular")


def spectra_samples(ip: np.ndarray, fp: np.ndarray, seeds: np.ndarray,
                    proto: np.ndarray) -> np.ndarray:
    """Spectrum of the layer-1 attention matrix of head 0, as the forward pass uses it (gap or
    differential treatment applied; not rescaled): ``samples x T x 3`` with the eigenvalues
    (real and imaginary parts) by decreasing modulus and the singular values, decreasing.
    LAPACK through NumPy (numba's ``eigvals`` cannot return complex eigenvalues of a real
    matrix); samples run on ``numba.get_num_threads()`` threads, each with single-threaded
    BLAS, so the values do not depend on the thread count."""
    T = int(ip[kernels.I_T])
    out = np.empty((seeds.size, T, len(SPECTRA_OBSERVABLES)))

    def one(i: int) -> None:
        a = kernels.first_layer_attention(ip, fp, seeds[i], proto)[0].astype(np.float64)
        eig = np.linalg.eigvals(a)
        eig = eig[np.argsort(-np.abs(eig), kind="stable")]
        out[i, :, 0] = eig.real
        out[i, :, 1] = eig.imag
        out[i, :, 2] = np.linalg.svd(a, compute_uv=False)

    # LAPACK releases the GIL: one sample per thread, each written to its own slot.
    with ThreadPoolExecutor(max(1, min(numba.get_num_threads(), seeds.size))) as pool:
        list(pool.map(one, range(seeds.size)))
    return out


register_kind(Kind("spectra", SPECTRA_OBSERVABLES, spectra_samples, lambda c: c.T,
                   row_label="index"))


def _check_gradient(config: Config) -> None:
    if (config.attention not in ("markov", "uniform", "identity") or config.norm != "none"
            or config.alpha_attn != 0.0 or config.mlp or config.heads != 1
            or config.shared_weights or config.sink):
        raise ValueError(
            "kind='gradient' needs an attention-only stack X_l = A_l X_(l-1) W_V with "
            "input-independent attention: attention markov/uniform/identity, norm='none', "
            "alpha_attn=0, mlp=False, heads=1, shared_weights=False; got "
            f"attention={config.attention!r}, norm={config.norm!r}, "
            f"alpha_attn={config.alpha_attn!r}, mlp={config.mlp!r}, heads={config.heads!r}, "
            f"shared_weights={config.shared_weights!r}, sink={config.sink!r} (must be False)")


register_kind(Kind("gradient", kernels.GRADIENT_OBSERVABLES, kernels.gradient_samples,
                   lambda c: c.depth + 1, _check_gradient))


def _check_alignment(config: Config) -> None:
    if config.heads != 1:
        raise ValueError(f"kind='alignment' needs heads=1 (F = W_V^T of one head), got "
                         f"heads={config.heads}")


register_kind(Kind("alignment", ALIGNMENT_OBSERVABLES, alignment_samples,
                   lambda c: c.depth + 1, _check_alignment))


def _check_ablation(config: Config) -> None:
    if config.attention != "softmax" or config.heads != 1 or config.gap != "keep":
        raise ValueError(
            "kind='ablation' deletes tokens from a softmax head: it needs attention='softmax', "
            f"heads=1, gap='keep'; got attention={config.attention!r}, heads={config.heads!r}, "
            f"gap={config.gap!r}")


register_kind(Kind("heads", heads.HEAD_OBSERVABLES, heads.head_samples,
                   lambda c: c.depth * c.heads, row_label="(layer-1)*heads+head"))
register_kind(Kind("queries", heads.QUERY_OBSERVABLES, heads.query_samples, lambda c: c.T,
                   row_label="query"))
register_kind(Kind("ablation", heads.ABLATION_OBSERVABLES, heads.ablation_samples, lambda c: 1,
                   _check_ablation, row_label="row"))


def get_kind(name: str) -> Kind:
    if name not in KINDS:
        raise ValueError(f"kind={name!r} is not known; choose one of {', '.join(sorted(KINDS))}")
    return KINDS[name]


@dataclass(frozen=True)
class Estimate:
    """A Monte-Carlo mean with its standard error (``se = std(ddof=1) / sqrt(n)``)."""

    mean: float
    se: float
    n: int

    def to_dict(self) -> dict[str, float]:
        return {"mean": _finite_or_none(self.mean), "se": _finite_or_none(self.se)}


def _finite_or_none(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def estimate(values: np.ndarray) -> Estimate:
    """Mean and standard error of the 1-D array ``values`` over samples."""
    values = np.asarray(values, dtype=np.float64)
    n = values.size
    mean = float(np.mean(values)) if n else float("nan")
    se = float(np.std(values, ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return Estimate(mean, se, n)


def estimate_function(fn: Callable[..., float], *columns: np.ndarray) -> Estimate:
    """``fn(mean_1, mean_2, ...)`` of the sample means of ``columns`` (1-D, one value per
    sample each) with its delta-method standard error (numerical gradient, sample covariance),
    e.g. the ratio ``mean(p)/mean(q)``."""
    data = np.array([np.asarray(c, dtype=np.float64) for c in columns])
    n = data.shape[1]
    means = data.mean(axis=1)
    value = float(fn(*means))
    if n < 2:
        return Estimate(value, float("nan"), n)
    grad = np.empty(len(means))
    for k in range(len(means)):
        step = 1e-6 * max(abs(means[k]), 1e-12)
        up, down = means.copy(), means.copy()
        up[k] += step
        down[k] -= step
        grad[k] = (fn(*up) - fn(*down)) / (2 * step)
    cov = np.atleast_2d(np.cov(data, ddof=1))
    return Estimate(value, float(np.sqrt(max(grad @ cov @ grad, 0.0) / n)), n)


@dataclass(frozen=True)
class Result:
    """Per-sample observables of one ``(config, samples, seed)`` run."""

    config: Config
    samples: int
    seed: int
    values: np.ndarray  # samples x layers x len(observables), float64
    kind: str = "forward"
    version: str = VERSION

    @property
    def observables(self) -> tuple[str, ...]:
        return get_kind(self.kind).observables

    def per_sample(self, observable: str, layer: int | None = None) -> np.ndarray:
        """Values of ``observable``: ``samples x layers``, or ``samples`` at one layer."""
        if observable not in self.observables:
            raise ValueError(f"observable={observable!r} is not recorded by kind {self.kind!r}; "
                             f"choose one of {', '.join(self.observables)}")
        v = self.values[:, :, self.observables.index(observable)]
        return v if layer is None else v[:, layer]

    def estimate(self, observable: str, layer: int) -> Estimate:
        return estimate(self.per_sample(observable, layer))

    def layers(self) -> list[dict[str, Any]]:
        """One dict per layer: ``{"layer": l, observable: {"mean", "se"}, ...}``."""
        rows = []
        for layer in range(self.values.shape[1]):
            row: dict[str, Any] = {"layer": layer}
            for name in self.observables:
                row[name] = self.estimate(name, layer).to_dict()
            rows.append(row)
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "samples": self.samples, "seed": self.seed,
                "kind": self.kind, "version": self.version, "layers": self.layers()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


def check_run(samples: int, seed: int) -> None:
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples={samples!r} must be an integer >= 1")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r} must be an integer >= 0")


def simulate(config: Config, samples: int, seed: int = 0, kind: str = "forward", *,
             chunk: int = 64, progress: bool | None = None) -> Result:
    """Run ``samples`` independent samples of ``config`` and measure ``kind``.

    ``chunk`` samples go to the kernel at a time (the result does not depend on it); a progress
    bar shows on a terminal unless ``progress=False``."""
    check_run(samples, seed)
    with progress_bar(samples, "samples", progress) as bar:
        out = sample_values(config, seed, kind, 0, samples, chunk=chunk, bar=bar)
    return Result(config, samples, seed, out, kind)


def sample_values(config: Config, seed: int, kind: str, start: int, stop: int, *,
                  chunk: int = 64, bar: Any = None) -> np.ndarray:
    """The values of samples ``start .. stop - 1`` of ``simulate(config, samples, seed, kind)``
    for any ``samples >= stop``: ``(stop - start) x layers x observables``, the same bits as
    those rows of the full run (every sample is seeded by its index alone). ``bar``: a
    progress bar to advance by the samples done."""
    check_run(stop, seed)
    if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start < stop:
        raise ValueError(f"samples {start!r} .. {stop!r} must satisfy 0 <= start < stop")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk={chunk!r} must be an integer >= 1")
    spec = get_kind(kind)
    if spec.check is not None:
        spec.check(config)
    ip, fp, proto = kernels.encode(config)
    out = np.empty((stop - start, spec.layers(config), len(spec.observables)))
    with threadpool_limits(1):
        for a in range(start, stop, chunk):
            b = min(stop, a + chunk)
            out[a - start:b - start] = spec.kernel(ip, fp, rng.sample_seeds(seed, a, b), proto)
            if bar is not None:
                bar.update(b - a)
    return out


def first_layer_attention(config: Config, sample: int, seed: int = 0) -> np.ndarray:
    """The layer-1 attention matrices (``heads x T x T``) of one sample, as the engine uses
    them (after gap removal when ``gap="remove"``)."""
    check_run(1, seed)
    ip, fp, proto = kernels.encode(config)
    with threadpool_limits(1):
        return kernels.first_layer_attention(ip, fp, rng.sample_seed(seed, sample), proto)
