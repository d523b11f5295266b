"""Theory: the generated evaluators match a fresh derivation, the GAP-3 quadrature matches an
independent mpmath evaluation, and the closed forms match their limits."""

import math

import mpmath
import pytest

from theory import derive, gap, predictions


def test_generated_code_matches_fresh_derivation() -> None:
    assert derive.stale_modules() == [], "run `sigprop derive` and commit theory/_generated/"


def test_drift_check_detects_an_edit(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(derive, "GENERATED_DIR", tmp_path)
    derive.write_all()
    assert derive.stale_modules() == []
    path = tmp_path / "gap.py"
    path.write_text(path.read_text().replace("exp(markov_s**2)", "exp(1.1*markov_s**2)", 1))
    assert derive.stale_modules() == [path]


def _mp_frobenius2(T: int, s: float) -> mpmath.mpf:
    """T E[Y2] by mpmath at 20 digits: tanh-sinh quadrature (not QUADPACK) of the same Laplace
    representation, with the inner Gaussian integrals truncated at |z| = 12."""
    mpmath.mp.dps = 20
    s = mpmath.mpf(s)
    mu = -s**2 / 2

    def phi(k, t):
        f = lambda z: mpmath.exp(k * (mu + s * z) - t * mpmath.exp(mu + s * z) - z * z / 2)
        return mpmath.quad(f, [-12, -4, 0, 4, 12]) / mpmath.sqrt(2 * mpmath.pi)

    g = lambda u: mpmath.exp(2 * u) * phi(2, mpmath.exp(u)) * phi(0, mpmath.exp(u)) ** (T - 1)
    c = -math.log(T)
    return T * T * mpmath.quad(g, [c - 14, c - 4, c, c + 4, c + 14])


@pytest.mark.slow
@pytest.mark.parametrize("T,s", [(4, 0.5), (32, 1.0)])
def test_frobenius_quadrature_matches_mpmath(T: int, s: float) -> None:
    exact = float(_mp_frobenius2(T, s))
    assert gap.markov_frobenius2(T, s) == pytest.approx(exact, rel=1e-8, abs=0)
    # mutation twin: a 1e-6 relative error would be caught
    assert gap.markov_frobenius2(T, s) * (1 + 1e-6) != pytest.approx(exact, rel=1e-8, abs=0)


def test_frobenius_quadrature_tends_to_first_order_and_limit() -> None:
    s = 0.5
    for T in (256, 1024):
        f = gap.markov_frobenius2(T, s)
        first = float(gap._generated().frobenius_first_order(s, T))
        assert abs(f - first) < 5 * (math.exp(s * s) / T) ** 2 * 10
    assert gap.stable_rank_finite(1 << 14, s) == pytest.approx(math.exp(s * s), rel=1e-3)


def test_frobenius_is_one_without_logit_noise() -> None:
    assert gap.markov_frobenius2(8, 0.0) == 1.0


def test_predictions_registry_and_errors() -> None:
    p = predictions.get("gap3_stable_rank_limit")
    assert p.claim == "GAP-3" and p.latex
    assert p(markov_s=math.sqrt(math.log(2))) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="takes markov_s"):
        p(T=3)
    with pytest.raises(ValueError, match="unknown prediction"):
        predictions.get("nope")


def test_quarter_circle_ratio_is_derived() -> None:
    assert gap.derive_perp_stable_rank_ratio() == predictions.get("gap3_perp_ratio_limit").expr
    assert float(predictions.get("gap3_perp_ratio_limit")()) == 0.25
