"""Agreement of the numba engine with the plain-NumPy reference (``tests/reference.py``).

Comparison rule (``compare``):

- For each observable the relative error is ``|engine - reference| / max(|engine|,
  |reference|, F)`` with ``F`` the observable's near-zero scale. Quantities that are O(1) and may
  sit at 0 (``cosine``, ``consensus_distance``, ``entropy``, ``ipr``, ``stable_rank``) have
  ``F = 0.01``: below 0.01 the check is absolute, at ``rtol * 0.01`` (``1e-12`` for float64).
  ``p`` has ``F = 0.01 q`` (``|p| <= q``). ``q`` and ``norm`` are purely relative.
- NaNs must sit at the same places.
- ``numerical_rank`` (an integer count) must be equal, except where a singular value lies within
  a factor 10 of the cut ``RANK_RTOL sigma_max`` (that entry is skipped).
- Ill-conditioned entries are skipped. Some configs make the answer depend on rounding, e.g.
  ``alpha_attn = 0`` with ``gap = "remove"`` once the tokens have nearly collapsed: post-LN
  then normalises a pure cancellation residue, and ``A - 1 1^T / T`` of a nearly uniform
  softmax keeps few correct digits. The reference is rerun (two random patterns) with every
  random array and every intermediate result multiplied by ``1 + 1e-9 u``, ``u ~ U(-1, 1)``
  (Monte-Carlo arithmetic). An entry's empirical condition number is its relative change
  divided by ``1e-9``, maxed with that of the token matrices of its own and all earlier
  layers. Entries above ``KAPPA_MAX = 1e3`` are skipped:
  there, rounding at the 1e-16 level alone could move them by about 1e-13 or more. The skip
  counts are reported, and the explicit option sweep asserts that nothing is skipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Self

import numpy as np
import pytest
import reference
from hypothesis import HealthCheck, assume, example, given, settings, target
from hypothesis import strategies as st
from reference import OBSERVABLES, reference_trace

from sim.config import ATTENTIONS, GAPS, INPUTS, NORMS, Config
from sim.kernels import RANK_RTOL
from sim.montecarlo import simulate

RTOL_FLOAT64 = 1e-10
RTOL_FLOAT32 = 1e-4
NEAR_ZERO = 0.01  # F, see the module docstring
RANK_MARGIN = 10.0
PERTURBATION = 1e-9
PERTURBATION_SEEDS = (1, 2)
KAPPA_MAX = 1e3
KAPPA_MAX_FLOAT32 = 30.0  # float32 rounding is 5e-8 against a 1e-4 tolerance
SAMPLES = 2

_BOUNDED = ("cosine", "consensus_distance", "entropy", "ipr", "stable_rank")
MAIN_OBSERVABLES = ("cosine", "q", "p", "stable_rank", "consensus_distance", "entropy", "ipr",
                    "norm")
_IQ = OBSERVABLES.index("q")


@dataclass
class Agreement:
    max_rel_error: float
    failures: list[str]
    compared: int = 0
    skipped_ranks: int = 0
    skipped_ill_conditioned: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures

    def __iadd__(self, other: Agreement) -> Self:
        self.max_rel_error = max(self.max_rel_error, other.max_rel_error)
        self.failures += other.failures
        self.compared += other.compared
        self.skipped_ranks += other.skipped_ranks
        self.skipped_ill_conditioned += other.skipped_ill_conditioned
        return self


def _scale(name: str, a: float, b: float, q: float) -> float:
    """Denominator of the relative error of observable ``name`` (see the module docstring)."""
    if name in _BOUNDED:
        floor = NEAR_ZERO
    elif name == "p":
        floor = max(NEAR_ZERO * abs(q), 1e-300)
    else:
        floor = 1e-300
    return max(abs(a), abs(b), floor)


def condition_numbers(config: Config, sample: int, seed: int, trace: reference.Trace
                      ) -> np.ndarray:
    """Empirical condition number of each entry (``layers x observables``) of ``trace``."""
    ref = trace.values
    kappa = np.zeros_like(ref)
    token_kappa = np.zeros(ref.shape[0])
    for ps in PERTURBATION_SEEDS:
        pert = reference_trace(config, sample, seed, PERTURBATION, ps)
        for layer in range(ref.shape[0]):
            x, xp = trace.tokens[layer], pert.tokens[layer]
            nx, dx = np.linalg.norm(x), np.linalg.norm(xp - x)
            k = dx / (nx * PERTURBATION) if nx > 0 else (0.0 if dx == 0 else math.inf)
            token_kappa[layer] = max(token_kappa[layer], k if math.isfinite(k) else math.inf)
            for j, name in enumerate(OBSERVABLES):
                a, b = ref[layer, j], pert.values[layer, j]
                if np.isnan(a) or np.isnan(b):
                    k = 0.0 if np.isnan(a) and np.isnan(b) else math.inf
                else:
                    k = abs(b - a) / (_scale(name, a, b, ref[layer, _IQ]) * PERTURBATION)
                kappa[layer, j] = max(kappa[layer, j], k)
    kappa[:, OBSERVABLES.index("numerical_rank")] = 0.0  # discrete: see RANK_MARGIN
    return np.maximum(kappa, np.maximum.accumulate(token_kappa)[:, None])


def compare(engine: np.ndarray, trace: reference.Trace, rtol: float,
            names: tuple[str, ...] = OBSERVABLES, kappa: np.ndarray | None = None,
            kappa_max: float = KAPPA_MAX) -> Agreement:
    """Compare one engine sample (``layers x observables``) with a reference trace; entries
    whose condition number ``kappa`` exceeds ``kappa_max`` are skipped."""
    ref = trace.values
    assert engine.shape == ref.shape, (engine.shape, ref.shape)
    result = Agreement(0.0, [])
    for layer in range(ref.shape[0]):
        for name in names:
            k = OBSERVABLES.index(name)
            if kappa is not None and kappa[layer, k] > kappa_max:
                result.skipped_ill_conditioned += 1
                continue
            e, r = engine[layer, k], ref[layer, k]
            where = f"layer {layer} {name}: engine {e!r} reference {r!r}"
            result.compared += 1
            if np.isnan(e) or np.isnan(r):
                if not (np.isnan(e) and np.isnan(r)):
                    result.failures.append(where)
                continue
            if name == "numerical_rank":
                sv = trace.singular_values[layer]
                cut = RANK_RTOL * sv[0] if sv.size else 0.0
                if np.any((sv > cut / RANK_MARGIN) & (sv < cut * RANK_MARGIN)):
                    result.skipped_ranks += 1
                    result.compared -= 1
                elif e != r:
                    result.failures.append(where)
                continue
            rel = abs(e - r) / _scale(name, e, r, ref[layer, _IQ])
            if not math.isfinite(rel):
                rel = math.inf if e != r else 0.0
            result.max_rel_error = max(result.max_rel_error, rel)
            if rel > rtol:
                result.failures.append(f"{where} (rel {rel:.3g}, kappa "
                                       f"{kappa[layer, k] if kappa is not None else 'n/a'})")
    return result


def agreement(config: Config, seed: int, rtol: float = RTOL_FLOAT64,
              names: tuple[str, ...] = OBSERVABLES, kappa_max: float = KAPPA_MAX) -> Agreement:
    """Engine (``simulate``, ``SAMPLES`` samples) against the reference, all samples."""
    values = simulate(config, samples=SAMPLES, seed=seed, progress=False).values
    total = Agreement(0.0, [])
    for i in range(SAMPLES):
        trace = reference_trace(config, i, seed)
        a = compare(values[i], trace, rtol, names, condition_numbers(config, i, seed, trace),
                    kappa_max)
        a.failures = [f"sample {i}: {f}" for f in a.failures]
        total += a
    return total


# ----------------------------------------------------------------------------- strategies

@st.composite
def configs(draw: st.DrawFn, dtype: str = "float64") -> Config:
    """Small configs across every option of ``Config``."""
    d = draw(st.integers(4, 16))
    heads = draw(st.sampled_from([h for h in (1, 2, 4) if d % h == 0]))
    input_kind = draw(st.sampled_from(INPUTS))
    T = draw(st.integers(2, 12 if input_kind == "gaussian" else min(12, d)))
    attention = draw(st.sampled_from(ATTENTIONS))
    return Config(
        T=T, d=d, heads=heads,
        depth=draw(st.integers(0, 3)),
        d_ff=draw(st.sampled_from([0, 3, 7])),
        beta=draw(st.one_of(st.sampled_from([0.0, 1.0, 8.0]), st.floats(0.1, 8.0))),
        sigma_v2=draw(st.sampled_from([0.0, 0.2, 1.0, 2.0])),
        sigma_w2=draw(st.sampled_from([0.2, 1.0, 2.0])),
        sigma_b2=draw(st.sampled_from([0.0, 4e-4, 0.5])),
        alpha_attn=draw(st.sampled_from([0.0, 0.5, 1.0, 2.0])),
        alpha_mlp=draw(st.sampled_from([0.0, 1.0, 1.5])),
        norm=draw(st.sampled_from(NORMS)),
        mlp=draw(st.booleans()),
        attention=attention,
        markov_s=draw(st.sampled_from([0.0, math.sqrt(math.log(2.0)), 2.0])),
        gap=draw(st.sampled_from(GAPS)),
        diff_lambda=draw(st.sampled_from([0.0, 0.5, 1.0])),
        shared_weights=draw(st.booleans()),
        causal=draw(st.booleans()),
        input=input_kind,
        rho=draw(st.sampled_from([0.0, 0.3, 0.9, 1.0])),
        dtype=dtype,
    )


seeds = st.integers(0, 2**63 - 1)


# ----------------------------------------------------------------------------- float64 agreement

@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(config=configs(), seed=seeds)
@example(config=Config(T=2, d=4, depth=0), seed=0)
@example(config=Config(T=12, d=4, heads=4, depth=3, d_ff=3, beta=8.0, norm="none",
                       input="gaussian", causal=True), seed=1)
@example(config=Config(T=8, d=8, depth=3, attention="uniform", gap="remove", alpha_attn=0.0),
         seed=2)  # the attention output is exactly 0 in every layer
def test_engine_matches_reference_float64(config: Config, seed: int) -> None:
    a = agreement(config, seed)
    target(a.max_rel_error, label="max relative error")
    assert a.ok, "\n".join([repr(config)] + a.failures[:20])
    # a check that skips (almost) everything would be vacuous: such an example (e.g. every
    # layer exactly 0) is discarded, and hypothesis fails the test if that happens too often
    assume(a.compared >= a.skipped_ill_conditioned)


BASE = Config(T=6, d=8, heads=2, depth=3, d_ff=5, beta=1.5, sigma_b2=0.1, alpha_attn=0.7,
              input="simplex", rho=0.3)
OPTIONS = [("norm", v) for v in NORMS] + [("attention", v) for v in ATTENTIONS] + \
    [("gap", v) for v in GAPS] + [("input", v) for v in INPUTS] + \
    [("mlp", False), ("shared_weights", True), ("causal", True), ("heads", 1), ("heads", 4),
     ("alpha_attn", 0.0), ("alpha_mlp", 0.0), ("beta", 0.0), ("beta", 8.0), ("d_ff", 0),
     ("sigma_v2", 0.0), ("rho", 1.0), ("markov_s", 0.0)]


@pytest.mark.parametrize("field,value", OPTIONS, ids=[f"{f}={v}" for f, v in OPTIONS])
def test_each_option_matches_reference(field: str, value: object) -> None:
    """Every option value at least once, whatever hypothesis happens to draw."""
    config = BASE.replace(**{field: value})
    variants = [config] if field == "attention" else \
        [config.replace(attention=att) for att in ("softmax", "markov")]
    for c in variants:
        a = agreement(c, seed=11)
        assert a.ok, "\n".join([repr(c)] + a.failures[:20])
        assert a.skipped_ill_conditioned == 0 and a.compared > 0


# ----------------------------------------------------------------------------- mutation twins

TWIN_CONFIGS = [BASE, BASE.replace(norm="pre", causal=True),
                BASE.replace(norm="none", heads=1, mlp=False, input="isometric")]


def _twin_alpha(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reference, "alpha_attn_factor", 1.1)


def _twin_no_sqrt_dk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reference, "score_scale", lambda d_k: 1.0)


def _twin_shared_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    draw_layer = reference.draw_layer
    monkeypatch.setattr(reference, "draw_layer",
                        lambda c, s, layer, dtype=None: draw_layer(c, s, 1, dtype))


TWINS = {"alpha_attn*1.1": _twin_alpha, "no 1/sqrt(d_k)": _twin_no_sqrt_dk,
         "layer-1 weights everywhere": _twin_shared_layout}


@pytest.mark.parametrize("twin", sorted(TWINS))
def test_mutation_twin_is_detected(twin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same agreement check against a perturbed reference must fail on every config."""
    for config in TWIN_CONFIGS:
        assert agreement(config, seed=3).ok  # the unperturbed check passes ...
    TWINS[twin](monkeypatch)
    for config in TWIN_CONFIGS:
        a = agreement(config, seed=3)
        assert not a.ok, f"twin {twin!r} not detected on {config!r}"
        assert a.max_rel_error > 1e3 * RTOL_FLOAT64


def test_wrong_sample_index_is_detected() -> None:
    """Shifting the sample index by one (wrong ``spawn_key``) is also caught."""
    config = Config(T=5, d=8, depth=2, input="gaussian")
    values = simulate(config, samples=2, seed=4, progress=False).values
    assert compare(values[0], reference_trace(config, 0, 4), RTOL_FLOAT64).ok
    assert not compare(values[0], reference_trace(config, 1, 4), RTOL_FLOAT64).ok
    assert not compare(values[1], reference_trace(config, 0, 4), RTOL_FLOAT64).ok


# ----------------------------------------------------------------------- reference self-checks

@pytest.mark.parametrize("rho", [0.0, 0.3, 1.0])
def test_reference_inputs(rho: float) -> None:
    """The reference inputs obey their definitions: ``X X^T = d I`` / ``d C``."""
    T, d = 5, 9
    iso = reference.draw_input(Config(T=T, d=d, input="isometric"), np.uint64(7))
    np.testing.assert_allclose(iso @ iso.T, d * np.eye(T), atol=1e-12)
    C = (1 - rho) * np.eye(T) + rho * np.ones((T, T))
    root = reference.simplex_sqrt(T, rho)
    np.testing.assert_allclose(root @ root, C, atol=1e-12)
    sim_x = reference.draw_input(Config(T=T, d=d, input="simplex", rho=rho), np.uint64(7))
    np.testing.assert_allclose(sim_x @ sim_x.T, d * C, atol=1e-11)


def test_reference_layer_norm() -> None:
    x = np.random.default_rng(0).normal(size=(4, 7)) * 3 + 1
    y = reference.layer_norm(x)
    np.testing.assert_allclose(np.sum(y * y, axis=1), 7.0, rtol=1e-10)
    np.testing.assert_allclose(y.mean(axis=1), 0.0, atol=1e-14)


# ----------------------------------------------------------------------------- float32

FLOAT32_CONFIGS = [
    Config(T=6, d=8, depth=3, dtype="float32"),
    Config(T=6, d=8, heads=2, depth=3, norm="pre", attention="markov", causal=True,
           input="simplex", rho=0.3, dtype="float32"),
    Config(T=10, d=8, heads=4, depth=2, norm="none", gap="remove", input="gaussian",
           sigma_v2=0.5, dtype="float32"),
]


@pytest.mark.parametrize("config", FLOAT32_CONFIGS, ids=range(len(FLOAT32_CONFIGS)))
def test_engine_matches_reference_float32(config: Config) -> None:
    """float32 engine against the float64 reference fed the same draws rounded to float32."""
    a = agreement(config, seed=5, rtol=RTOL_FLOAT32, names=MAIN_OBSERVABLES,
                  kappa_max=KAPPA_MAX_FLOAT32)
    assert a.skipped_ill_conditioned == 0
    assert a.ok, "\n".join([repr(config)] + a.failures[:20])


def _reference_rows(config: Config, sample_seed: np.uint64) -> list[np.ndarray]:
    """Layer-1 attention matrices, head by head, as ``kind="rows"`` builds them: projections
    ``X W = sqrt(d) qk C^{1/2} N`` drawn directly (softmax), logits as usual (markov)."""
    if config.attention == "markov":
        w = reference.draw_layer(config, sample_seed, 1)
        return [reference.attention_probs(config, np.zeros((config.T, config.d)), w, h)
                for h in range(config.heads)]
    T, d, dk = config.T, config.d, config.d_k
    std = math.sqrt(config.beta * math.sqrt(math.log(T)) / d) * math.sqrt(d)
    rho = config.rho if config.input == "simplex" else 0.0
    root = reference.simplex_sqrt(T, rho)
    proj = [root @ reference.rng.normal((config.heads, T, dk), reference.rng.stream_key(
        sample_seed, 1, matrix), 0.0, std)[h] for matrix in (reference.rng.W_Q,
                                                             reference.rng.W_K)
            for h in range(config.heads)]
    mask = reference._mask(T, config.causal)
    return [reference._softmax_rows(proj[h] @ proj[config.heads + h].T / math.sqrt(dk), mask)
            for h in range(config.heads)]


@pytest.mark.parametrize("config", [
    Config(T=12, d=16, heads=2, depth=1, mlp=False, input="simplex", rho=0.3, beta=1.5),
    Config(T=9, d=9, depth=1, mlp=False, causal=True, beta=3.0),
    Config(T=10, d=4, depth=1, mlp=False, attention="markov", markov_s=1.2, input="gaussian"),
])
def test_row_kind_matches_reference(config: Config) -> None:
    """``kind="rows"``: mean entropy, ipr, off-diagonal overlap and ``y3`` of the layer-1
    attention, against the same statistics of the reference's attention matrices; twins that
    average the overlap over all pairs (diagonal included), or take ``y3`` as ``ipr^{3/2}``
    per row, must differ."""
    result = simulate(config, 3, seed=5, kind="rows", progress=False)
    T = config.T
    for i in range(3):
        ent = ipr = overlap = overlap_all = y3 = y3_twin = 0.0
        for a in _reference_rows(config, reference.rng.sample_seed(5, i)):
            gram = a @ a.T
            ent += reference._row_entropy(a).mean()
            ipr += np.trace(gram) / T
            overlap += (gram.sum() - np.trace(gram)) / (T * (T - 1))
            overlap_all += gram.sum() / T**2
            y3 += (a**3).sum() / T
            y3_twin += ((a**2).sum(axis=1) ** 1.5).sum() / T
        want = np.array([ent, ipr, overlap, y3]) / config.heads
        np.testing.assert_allclose(result.values[i, 0], want, rtol=1e-11, atol=1e-14)
        assert abs(result.values[i, 0, 2] - overlap_all / config.heads) > 1e-6
        assert abs(result.values[i, 0, 3] - y3_twin / config.heads) > 1e-6


def test_row_kind_is_the_forward_law() -> None:
    """The directly sampled projections have the law of the forward pass's ``X W``: the mean
    ipr of ``kind="rows"`` and of ``kind="forward"`` (layer 1) agree within 5 combined SE over
    independent samples, while the twin at ``1.1 beta`` does not."""
    config = Config(T=16, d=16, depth=1, mlp=False, input="simplex", rho=0.2, beta=2.0)
    rows = simulate(config, 3000, seed=1, kind="rows", progress=False).estimate("ipr", 0)
    forward = simulate(config, 3000, seed=2, progress=False).estimate("ipr", 1)
    twin = simulate(config.replace(beta=2.2), 3000, seed=1, kind="rows",
                    progress=False).estimate("ipr", 0)
    se = math.hypot(rows.se, forward.se)
    assert abs(rows.mean - forward.mean) < 5 * se
    assert abs(twin.mean - forward.mean) > 5 * math.hypot(twin.se, forward.se)


def test_row_kind_rejects_what_it_cannot_measure() -> None:
    for bad in (Config(T=8, d=8, input="gaussian"), Config(T=8, d=8, norm="pre"),
                Config(T=8, d=8, attention="uniform")):
        with pytest.raises(ValueError, match="kind='rows'"):
            simulate(bad, 1, kind="rows", progress=False)


# ----------------------------------------------------------------------------- spectra, gradient

def _reference_operator(config: Config, w: reference.Weights, xa: np.ndarray) -> np.ndarray:
    """Head 0's matrix as the reference's forward pass applies it (gap/differential included)."""
    a = reference.attention_probs(config, xa, w, 0)
    if config.gap == "remove":
        return a - 1.0 / config.T
    if config.gap == "differential":
        return a - config.diff_lambda * reference.attention_probs(config, xa, w, 0, True)
    return a


@pytest.mark.parametrize("config", [
    Config(T=12, d=12, depth=1, attention="markov", markov_s=1.0),
    Config(T=12, d=12, depth=1, attention="markov", gap="remove"),
    Config(T=10, d=16, depth=1, attention="markov", gap="differential", diff_lambda=0.8),
    Config(T=10, d=16, depth=1, beta=2.0, gap="differential", diff_lambda=0.3),
    Config(T=9, d=6, depth=1, beta=1.0, input="gaussian", norm="pre"),
])
def test_spectra_kind_matches_reference(config: Config) -> None:
    """``kind="spectra"``: eigenvalues (as a multiset) and singular values of the reference's
    layer-1 matrix; with the differential treatment the outlier sits at ``1 - lambda``."""
    result = simulate(config, 2, seed=4, kind="spectra", progress=False)
    for i in range(2):
        s = reference.rng.sample_seed(4, i)
        x = reference.draw_input(config, s)
        xa = reference.layer_norm(x) if config.norm == "pre" else x
        a = _reference_operator(config, reference.draw_layer(config, s, 1), xa)
        eig = result.per_sample("eig_real")[i] + 1j * result.per_sample("eig_imag")[i]
        want = np.linalg.eigvals(a)
        assert np.all(np.diff(np.abs(eig)) <= 1e-12)
        dist = np.abs(eig[:, None] - want[None, :])
        assert dist.min(axis=1).max() < 1e-10 and dist.min(axis=0).max() < 1e-10
        np.testing.assert_allclose(result.per_sample("singular")[i],
                                   np.linalg.svd(a, compute_uv=False), rtol=1e-10, atol=1e-13)
        if config.gap == "differential" and config.attention == "markov":
            assert np.min(np.abs(eig - (1 - config.diff_lambda))) < 1e-12


@pytest.mark.parametrize("config", [
    Config(T=12, d=1, depth=1, attention="markov", markov_s=1.2, mlp=False, norm="none",
           input="gaussian"),
    Config(T=9, d=6, depth=1, beta=1.0, input="gaussian", norm="pre"),
])
def test_attention_kind_matches_reference(config: Config) -> None:
    """``kind="attention"`` (one head): every spectral observable and GAP-1's ``secular_q2 =
    |A_perp c|^2/T`` and ``secular_q3 = |A_perp^T A_perp c|^2/T``, ``c = A_perp^T 1``, against
    NumPy on the reference's layer-1 matrix; the transposed twins ``|A_perp^T c|^2/T`` and
    ``|A_perp A_perp^T c|^2/T`` must differ (``c = A^T 1`` instead would not: ``A_perp 1 = 0``
    and ``1^T c = 0``)."""
    result = simulate(config, 2, seed=6, kind="attention", progress=False)
    T = config.T
    for i in range(2):
        s = reference.rng.sample_seed(6, i)
        x = reference.draw_input(config, s)
        xa = reference.layer_norm(x) if config.norm == "pre" else x
        a = reference.attention_probs(config, xa, reference.draw_layer(config, s, 1), 0)
        perp = a - 1.0 / T
        sv, svp = np.linalg.svd(a, compute_uv=False), np.linalg.svd(perp, compute_uv=False)
        c = perp.sum(axis=0)
        want = {"sigma_1": sv[0], "sigma_2": sv[1], "sigma_1_perp": svp[0],
                "frobenius2": np.sum(a * a), "stable_rank": np.sum(a * a) / sv[0] ** 2,
                "stable_rank_perp": np.sum(perp * perp) / svp[0] ** 2,
                "secular_q2": np.sum((perp @ c) ** 2) / T,
                "secular_q3": np.sum((perp.T @ (perp @ c)) ** 2) / T}
        for name, value in want.items():
            assert result.per_sample(name, 0)[i] == pytest.approx(value, rel=1e-10), name
        twin = np.sum((perp.T @ c) ** 2) / T
        assert result.per_sample("secular_q2", 0)[i] != pytest.approx(twin, rel=1e-3)
        twin3 = np.sum((perp @ (perp.T @ c)) ** 2) / T
        assert result.per_sample("secular_q3", 0)[i] != pytest.approx(twin3, rel=1e-3)


@pytest.mark.parametrize("config", [
    Config(T=4, d=3, depth=3, attention="markov", norm="none", alpha_attn=0.0, mlp=False,
           sigma_v2=3.0, input="gaussian"),
    Config(T=5, d=5, depth=2, attention="markov", norm="none", alpha_attn=0.0, mlp=False,
           gap="remove", markov_s=1.3),
    Config(T=4, d=6, depth=3, attention="markov", norm="none", alpha_attn=0.0, mlp=False,
           gap="differential", diff_lambda=0.6),
])
def test_gradient_kind_is_the_jacobian(config: Config) -> None:
    """``kind="gradient"`` against the Jacobian built column by column from the reference's
    forward pass: ``X_L`` is linear in each ``W_V^l``, so ``X_L(W + E_ij) - X_L(W)`` is exactly
    its column ``(i, j)``. The twin that omits ``||N_l||_F^2`` must differ."""
    result = simulate(config, 2, seed=9, kind="gradient", progress=False)
    d = config.d

    def forward(x, weights):
        for w in weights:
            x = _reference_operator(config, w, x) @ x @ w.w_v[0]
        return x

    for i in range(2):
        s = reference.rng.sample_seed(9, i)
        x0 = reference.draw_input(config, s)
        weights = [reference.draw_layer(config, s, layer) for layer in range(1, config.depth + 1)]
        base = forward(x0, weights)
        assert np.isnan(result.values[i, 0, 0])
        for layer in range(1, config.depth + 1):
            jac2 = 0.0
            for a in range(d):
                for b in range(d):
                    bumped = [reference.Weights(**vars(w)) for w in weights]
                    wv = bumped[layer - 1].w_v.copy()
                    wv[0, a, b] += 1.0
                    bumped[layer - 1].w_v = wv
                    jac2 += np.sum((forward(x0, bumped) - base) ** 2)
            got = result.values[i, layer, 0]
            assert got == pytest.approx(jac2, rel=1e-9)
            if layer < config.depth:
                tail = np.eye(d)
                for w in weights[layer:]:
                    tail = tail @ w.w_v[0]
                assert got / np.sum(tail ** 2) != pytest.approx(jac2, rel=1e-3)
            partial = forward(x0, weights[:layer])
            assert result.values[i, layer, 1] == pytest.approx(np.sum(partial ** 2), rel=1e-10)


def test_gradient_kind_rejects_what_it_cannot_measure() -> None:
    ok = Config(T=4, d=4, depth=2, attention="markov", norm="none", alpha_attn=0.0, mlp=False)
    for bad in (ok.replace(attention="softmax"), ok.replace(norm="post"),
                ok.replace(alpha_attn=1.0), ok.replace(mlp=True), ok.replace(heads=2),
                ok.replace(shared_weights=True)):
        with pytest.raises(ValueError, match="kind='gradient'"):
            simulate(bad, 1, kind="gradient", progress=False)


@pytest.mark.parametrize("kind,config", [
    ("spectra", Config(T=24, d=24, depth=1, attention="markov", markov_s=1.0)),
    ("alignment", Config(T=6, d=12, depth=4, mlp=False, norm="l2", steer_mu=0.5)),
    ("heads", Config(T=6, d=8, depth=2, qk="sink", qk_scale=0.3, sink=True, sink_value=0.5)),
    ("queries", Config(T=6, d=8, depth=2, qk="sink", qk_scale=0.3, sink=True, sink_value=0.5)),
    ("ablation", Config(T=6, d=8, depth=2, qk="sink", qk_scale=0.3, sink=True, sink_value=0.5)),
])
def test_kinds_do_not_depend_on_threads(kind: str, config: Config) -> None:
    """Bit-identical for 1 and all threads (Python-level kinds run samples on threads, the
    numba ones in ``prange``)."""
    import numba

    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = simulate(config, 6, seed=2, kind=kind, progress=False).values
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = simulate(config, 6, seed=2, kind=kind, progress=False).values
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(one, many, equal_nan=True)


# ------------------------------------------------------------------- value product, alignment

def _given(d: int) -> tuple[float, ...]:
    g = np.random.default_rng(d).standard_normal((d, d))
    return tuple((0.3 * g).ravel())


VALUE_CONFIGS = [
    Config(T=5, d=6, depth=3, mlp=False, norm="l2", value="symmetric", beta=1.5),
    Config(T=5, d=6, depth=3, mlp=False, norm="post", value="given", value_matrix=_given(6),
           attention="uniform", shared_weights=True),
    Config(T=4, d=6, depth=2, norm="l2", value="random", steer_mu=1.5,
           steer_u=(1.0, 2.0, 0.0, 0.0, -1.0, 0.5), attention="markov"),
    Config(T=4, d=6, depth=2, mlp=False, norm="none", value="given", value_matrix=_given(6),
           steer_mu=-0.7),
]


@pytest.mark.parametrize("config", VALUE_CONFIGS)
def test_value_options_match_reference(config: Config) -> None:
    a = agreement(config, seed=13)
    assert a.ok, "\n".join([repr(config)] + a.failures[:20])
    assert a.skipped_ill_conditioned == 0 and a.compared > 0


def test_value_twin_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reference that forgets the transpose (``W_V = F`` instead of ``F^T``) must disagree."""
    config = VALUE_CONFIGS[1]
    original = reference.value_treatment

    def no_transpose(c, w_v):
        w = original(c, w_v)
        w[0] = w[0].T
        return w

    monkeypatch.setattr(reference, "value_treatment", no_transpose)
    assert not agreement(config, seed=13).ok


def test_misalignment_keeps_precision_near_alignment() -> None:
    """``sim.alignment.misalignment`` of ``x = b + eps w`` (``w`` unit, orthogonal to the unit
    ``b``) is ``1 - 1/sqrt(1 + eps^2)`` to 1e-6 relative at ``eps = 1e-9`` (about 5e-19; x itself
    is rounded to about 1e-7 of its eps part), where
    ``1 - alignment`` is all rounding."""
    from sim.alignment import alignment, misalignment

    d, eps = 7, 1e-9
    basis = np.linalg.qr(np.random.default_rng(3).standard_normal((d, 2)))[0]
    b, w = basis[:, :1], basis[:, 1]
    x = (b[:, 0] + eps * w)[None, :]
    exact = eps**2 / ((1 + eps**2) * (1 + 1 / math.sqrt(1 + eps**2)))  # s^2/(1 + c), exactly
    assert misalignment(x, b)[0] == pytest.approx(exact, rel=1e-6, abs=0)
    assert (1.0 - alignment(x, b)[0]) != pytest.approx(exact, rel=1e-2, abs=0)


@pytest.mark.parametrize("config", VALUE_CONFIGS[:3])
def test_alignment_kind_matches_reference(config: Config) -> None:
    """``kind="alignment"`` against the reference's tokens and an independent eigen-solver
    (``scipy.linalg.schur``-free: numpy ``eig`` on the reference's ``F``)."""
    result = simulate(config, 2, seed=6, kind="alignment", progress=False)
    d = config.d
    for i in range(2):
        s = reference.rng.sample_seed(6, i)
        trace = reference_trace(config, i, 6)
        f1 = reference.draw_layer(config, s, 1).w_v[0].T
        m = config.alpha_attn * np.eye(d) + f1

        def align(x, k):
            values, vectors = np.linalg.eig(k)
            v = vectors[:, np.argmax(np.abs(values))]
            basis = np.linalg.qr(np.stack([v.real, v.imag], 1) if abs(v.imag).max() > 1e-12
                                 else v.real[:, None])[0]
            return np.linalg.norm(x @ basis, axis=1) / np.linalg.norm(x, axis=1)

        for layer, x in enumerate(trace.tokens):
            own = m if layer <= 1 or config.shared_weights else \
                config.alpha_attn * np.eye(d) + reference.draw_layer(config, s, layer).w_v[0].T
            want = [align(x, f1).mean(), align(x, m).mean(),
                    align(x, (np.eye(d) - 1.0 / d) @ m).mean(), align(x, own).mean(),
                    align(x.mean(axis=0, keepdims=True), m)[0]]
            got = result.values[i, layer]
            np.testing.assert_allclose(got[[0, 1, 2, 4, 5]], want, rtol=1e-9, atol=1e-12)
            # misalign_* = 1 - align_* (here by cancellation, so to absolute rounding)
            np.testing.assert_allclose(got[[7, 8, 9, 11, 12]], 1.0 - np.asarray(want),
                                       rtol=0, atol=1e-12)
            if config.steer_mu != 0.0:
                u = np.asarray(config.steer_u) / np.linalg.norm(config.steer_u)
                want_u = np.mean(np.abs(x @ u) / np.linalg.norm(x, axis=1))
                assert got[3] == pytest.approx(want_u, rel=1e-9)
                assert got[10] == pytest.approx(1.0 - want_u, rel=1e-6, abs=1e-12)
            else:
                assert np.isnan(got[3]) and np.isnan(got[10])
