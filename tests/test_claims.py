"""GAP-3 end to end under the quick profile: the finite-T theory agrees, its 10% twin is
rejected, every comparison could detect 5%, and the verdict follows from the numbers."""

import dataclasses

import pytest

from sim import stats
from sim.claims import (
    ClaimResult,
    compare_estimate,
    decide,
    get_claim,
    rejected_summary,
    verify,
    with_role,
)
from sim.montecarlo import Estimate


@pytest.fixture(scope="module")
def gap3(tmp_path_factory) -> ClaimResult:
    import os

    old = os.environ.get("SIGPROP_CACHE_DIR")
    os.environ["SIGPROP_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    try:
        return get_claim("GAP-3").run("quick")
    finally:
        if old is None:
            del os.environ["SIGPROP_CACHE_DIR"]
        else:
            os.environ["SIGPROP_CACHE_DIR"] = old


def test_gap3_finite_theory_agrees_and_is_resolved(gap3: ClaimResult) -> None:
    finite = with_role(gap3.comparisons)
    assert [c.label for c in finite] == ["sr(A) vs finite-T"] * len(finite)
    assert finite and all(c.passed for c in finite)
    assert all(c.resolved for c in finite), [c.detectable_relative for c in finite]


def test_gap3_mutation_twins_are_rejected(gap3: ClaimResult) -> None:
    assert gap3.mutations and gap3.mutations_rejected


def test_gap3_twin_of_limit_fails_where_limit_passes(gap3: ClaimResult) -> None:
    """The 10%-wrong 1/4 is rejected at every point where 1/4 itself passed."""
    perp_twins = [m for m in gap3.mutations if m.label == "sr(A_perp)/T vs 1.1/4"]
    passing = [c for c in gap3.comparisons if c.label == "sr(A_perp)/T vs 1/4" and c.passed]
    assert len(perp_twins) == len(passing)


def test_gap3_verdict_follows_the_comparisons(gap3: ClaimResult) -> None:
    limit = with_role(gap3.comparisons, "reference")
    expected = "confirmed" if all(c.passed for c in limit) else "qualified"
    assert gap3.verdict == expected
    assert "max |z|" in gap3.deciding


def test_gap3_bonferroni_counts_every_comparison(gap3: ClaimResult) -> None:
    n = len(gap3.comparisons)
    assert all(c.z_crit == pytest.approx(stats.critical_z(n)) for c in gap3.comparisons)


def test_decide_rules() -> None:
    good = stats.compare(1.0, 1.0, 0.001)
    bad = stats.compare(1.0, 1.1, 0.001)
    loose = stats.compare(1.0, 1.0, 0.1)
    twin_rejected = stats.compare(1.1, 1.0, 0.001)
    assert decide([good], [twin_rejected]) == "confirmed"
    assert decide([good, bad], [twin_rejected]) == "refuted"
    assert decide([good, loose], [twin_rejected]) == "open"
    assert decide([good], [dataclasses.replace(twin_rejected, passed=True)]) == "open"


def test_compare_estimate_is_compare_with_the_estimates_se_and_dof() -> None:
    """``compare_estimate`` (every claim's comparison of a Monte-Carlo mean): the same test as
    ``stats.compare`` with se ``hypot(se, extra_se)`` floored at ``se_floor |mean|`` and 1e-300,
    Student's t at ``n - 1`` (normal with ``dof=False``); its 10% twin is rejected."""
    est = Estimate(1.003, 0.001, 50)
    got = compare_estimate(1.0, est, 7, {"T": 8}, "x", bias=0.002, role="reference")
    want = stats.compare(1.0, 1.003, 0.001, bias=0.002, n_tests=7, params={"T": 8}, label="x",
                         dof=49, role="reference")
    assert got == want and got.passed
    assert not compare_estimate(1.1, est, 7, {}, "twin").passed
    assert compare_estimate(1.0, est, 7, {}, "x", extra_se=0.002).se == 0.001 * 5 ** 0.5
    assert compare_estimate(1.0, est, 7, {}, "x", dof=False) == stats.compare(
        1.0, 1.003, 0.001, n_tests=7, label="x")
    assert compare_estimate(1.0, est, 7, {}, "x").z_crit > compare_estimate(
        1.0, est, 7, {}, "x", dof=False).z_crit  # Student's t is wider than the normal
    # collapsed samples (se 0): the relative floor, else the 1e-300 one
    assert compare_estimate(1.0, Estimate(1.0, 0.0, 9), 1, {}, "c", se_floor=1e-6).se == 1e-6
    assert compare_estimate(0.0, Estimate(0.0, 0.0, 9), 1, {}, "z").se == 1e-300


def test_rejected_summary_names_the_worst_and_survives_a_zero_prediction() -> None:
    ok = stats.compare(1.0, 1.0, 0.001)
    assert rejected_summary([ok]) == "no comparison rejected"
    text = rejected_summary([ok, stats.compare(2.0, 2.2, 0.001, label="x")])
    assert text.startswith("1 of 2 rejected, worst x") and "(+10.0%)" in text
    zero = rejected_summary([stats.compare(0.0, 0.3, 0.001, label="z")])
    assert "0.3 vs 0 (+0.3)" in zero


def test_unknown_claim_and_profile() -> None:
    with pytest.raises(ValueError, match="unknown claim"):
        get_claim("GAP-99")
    with pytest.raises(ValueError, match="profile="):
        verify(["GAP-3"], "huge")
