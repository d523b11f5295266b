"""Claims: each binds a theory prediction to a sweep and a calibrated comparison, and returns a
verdict with its evidence.

Verdicts: ``confirmed`` (prediction and simulation agree within a calibrated test across the
stated regime), ``qualified`` (holds only under conditions the paper does not state, or only
asymptotically), ``refuted`` (simulation rejects it), ``open`` (not testable here, or the test
could not detect a ``sim.stats.RESOLUTION`` discrepancy, or its mutation twin was not rejected).

A claim module (one per paper) defines ``Claim`` objects and registers them with ``register``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sim.profiles import check_profile
from sim.stats import ROLES, Comparison, compare
from sim.version import VERSION

if TYPE_CHECKING:
    from sim.montecarlo import Estimate

VERDICTS = ("confirmed", "qualified", "refuted", "open")


@dataclass
class ClaimResult:
    """The outcome of one claim under one profile.

    ``comparisons`` are the evidence: those of role ``"exact"`` decide the verdict, those of role
    ``"reference"`` (asymptotic or approximate laws) are reported beside them
    (``sim.stats.Comparison.role``, ``with_role``); ``mutations`` are the same comparisons against a
    deliberately wrong prediction (10% off, or the wrong exponent) and must all fail;
    ``deciding`` is the one number a reader should look at; ``data`` holds what the figures
    draw (estimates, never raw recomputation)."""

    id: str
    statement: str
    verdict: str
    deciding: str
    comparisons: list[Comparison]
    mutations: list[Comparison]
    profile: str
    notes: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    version: str = VERSION

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict={self.verdict!r} must be one of {', '.join(VERDICTS)}")

    @property
    def mutations_rejected(self) -> bool:
        return all(not m.passed for m in self.mutations)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "verdict": self.verdict, "statement": self.statement,
                "deciding": self.deciding, "notes": self.notes, "profile": self.profile,
                "version": self.version,
                "comparisons": [c.to_dict() for c in self.comparisons],
                "mutations": [m.to_dict() for m in self.mutations],
                "mutations_rejected": self.mutations_rejected}


@dataclass(frozen=True)
class Claim:
    """A claim of a paper: ``run(profile, executor)`` returns its ``ClaimResult``."""

    id: str
    paper: str
    statement: str
    page: str  # book page (without extension) holding its section
    anchor: str  # section label on that page
    run: Callable[..., ClaimResult] = field(repr=False)


CLAIMS: dict[str, Claim] = {}


def register(claim: Claim) -> Claim:
    CLAIMS[claim.id] = claim
    return claim


def _load_all() -> None:
    # importing registers
    import sim.claims.contribution  # noqa: F401
    import sim.claims.gap  # noqa: F401
    import sim.claims.gap_depth  # noqa: F401
    import sim.claims.gap_spectra  # noqa: F401
    import sim.claims.hcni  # noqa: F401
    import sim.claims.power_random  # noqa: F401
    import sim.claims.power_shared  # noqa: F401
    import sim.claims.rank  # noqa: F401
    import sim.claims.rem  # noqa: F401
    import sim.claims.sinks  # noqa: F401


def all_claims() -> dict[str, Claim]:
    _load_all()
    return dict(CLAIMS)


def get_claim(claim_id: str) -> Claim:
    _load_all()
    if claim_id not in CLAIMS:
        raise ValueError(f"unknown claim {claim_id!r}; known: {', '.join(sorted(CLAIMS))}")
    return CLAIMS[claim_id]


def verify(ids: Iterable[str] | None = None, profile: str = "book",
           executor: Any = "serial") -> list[ClaimResult]:
    """Run the claims ``ids`` (all when empty) under ``profile`` (through the claim cache,
    ``sim.claim_cache``)."""
    from sim.claim_cache import run_claim

    check_profile(profile)
    claims = [get_claim(i) for i in ids] if ids else list(all_claims().values())
    return [run_claim(c.id, profile, executor=executor) for c in claims]


#: a mutation twin's prediction is the claim's prediction times this
MUTATION = 1.1


def compare_estimate(prediction: float, est: Estimate, n_tests: int, params: dict[str, Any],
                     label: str, *, bias: float = 0.0, role: str = "exact",
                     extra_se: float = 0.0, se_floor: float = 0.0, dof: bool = True
                     ) -> Comparison:
    """``sim.stats.compare`` of ``prediction`` with a Monte-Carlo estimate ``est`` (``mean``,
    ``se``, ``n``: ``sim.montecarlo.Estimate``). The standard error is ``hypot(est.se,
    extra_se)`` (``extra_se``: an independent error, e.g. of a Monte-Carlo prediction), floored
    at ``se_floor |est.mean|`` and at ``1e-300`` (samples all equal give ``se = 0``). The
    critical value is Student's t at ``est.n - 1`` degrees of freedom (at least 1), or the
    normal one with ``dof=False``."""
    se = max(math.hypot(est.se, extra_se), se_floor * abs(est.mean), 1e-300)
    return compare(float(prediction), est.mean, se, bias=bias, n_tests=n_tests, params=params,
                   label=label, dof=max(est.n - 1, 1) if dof else None, role=role)


def mutation_twins(comparisons: list[Comparison], n_tests: int,
                   factor: float = MUTATION) -> list[Comparison]:
    """The mutation twin of every passing comparison: the same test against ``factor`` times
    its prediction (bias budget, degrees of freedom, role, scale and family size unchanged)."""
    return [compare(factor * c.prediction, c.estimate, c.se, bias=c.bias, n_tests=n_tests,
                    params=c.params, label=f"{c.label} x {factor}", dof=c.dof, role=c.role,
                    scale=c.scale)
            for c in comparisons if c.passed]


def with_role(comparisons: Iterable[Comparison], role: str = "exact") -> list[Comparison]:
    """The comparisons of ``role`` (``sim.stats.ROLES``: ``"exact"`` decide a verdict,
    ``"reference"`` are reported beside), in their order."""
    if role not in ROLES:
        raise ValueError(f"role={role!r} must be one of {', '.join(ROLES)}")
    return [c for c in comparisons if c.role == role]


def largest_z(comparisons: list[Comparison]) -> Comparison:
    """The comparison with the largest ``|z|``."""
    return max(comparisons, key=lambda c: abs(c.z))


def rejected_summary(comparisons: list[Comparison]) -> str:
    """One line for a note: how many comparisons rejected their prediction, and the worst."""
    bad = [c for c in comparisons if not c.passed]
    if not bad:
        return "no comparison rejected"
    w = largest_z(bad)
    off = (f"{100 * (w.estimate / w.prediction - 1):+.1f}%" if w.prediction else
           f"{w.estimate - w.prediction:+.3g}")  # a prediction of 0 has no relative error
    return (f"{len(bad)} of {len(comparisons)} rejected, worst {w.label} at {w.params}: "
            f"{w.estimate:.4g} vs {w.prediction:.4g} ({off})")


def decide(comparisons: list[Comparison], mutations: list[Comparison]) -> str:
    """The verdict of comparisons that all test one statement in its stated regime:
    ``refuted`` if any comparison rejects the prediction (a rejection needs no power);
    otherwise ``open`` if any comparison could not detect a ``RESOLUTION`` discrepancy or a
    mutation twin survives; otherwise ``confirmed``."""
    if not comparisons:
        return "open"
    if not all(c.passed for c in comparisons):
        return "refuted"
    if not all(c.resolved for c in comparisons) or any(m.passed for m in mutations):
        return "open"
    return "confirmed"
