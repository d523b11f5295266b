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
    """T E[Y2] by mpmath: nested integrals in (t, z) at 30 digits, an independent route
    (integration in t, not log t; mpmath's tanh-sinh instead of QUADPACK)."""
    mpmath.mp.dps = 30
    mu = -mpmath.mpf(s) ** 2 / 2
    s = mpmath.mpf(s)

    def phi(k, t):
        f = lambda z: mpmath.exp(k * (mu + s * z) - t * mpmath.exp(mu + s * z) - z * z / 2)
        return mpmath.quad(f, [-mpmath.inf, -5, 0, 5, mpmath.inf]) / mpmath.sqrt(2 * mpmath.pi)

    g = lambda t: t * phi(2, t) * phi(0, t) ** (T - 1)
    c = mpmath.mpf(1) / T
    return T * T * mpmath.quad(g, [0, c / 4, c, 4 * c, 16 * c, mpmath.inf])


@pytest.mark.slow
@pytest.mark.parametrize("T,s", [(4, 0.5), (16, math.sqrt(math.log(2))), (32, 1.0)])
def test_frobenius_quadrature_matches_mpmath(T: int, s: float) -> None:
    exact = float(_mp_frobenius2(T, s))
    assert gap.markov_frobenius2(T, s) == pytest.approx(exact, rel=1e-8, abs=0)


def test_frobenius_quadrature_tends_to_first_order_and_limit() -> None:
    s = 0.5
    for T in (256, 1024):
        f = gap.markov_frobenius2(T, s)
        first = float(gap._generated().frobenius_first_order(s, T))
        assert abs(f - first) < 5 * (math.exp(s * s) / T) ** 2 * 10
    assert gap.stable_rank_finite(1 << 14, s) == pytest.approx(math.exp(s * s), rel=1e-3)


def test_frobenius_of_two_tokens_is_exact_for_s0() -> None:
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
