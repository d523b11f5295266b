"""Predictions: a claim id, a sympy expression (or a quadrature), its LaTeX and a numeric evaluator.

A derivation module (one per paper) builds ``Prediction`` objects and registers them with
``register``. Closed forms are evaluated through the code printed into ``theory/_generated/`` by
``theory.derive``; predictions without a closed form (integrals) carry a Python evaluator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import sympy as sp


@dataclass(frozen=True)
class Prediction:
    """One quantitative prediction.

    ``params`` are the keyword names of ``evaluate`` (config field names where they exist:
    ``T``, ``markov_s``, ...). ``assumptions`` states the regime the derivation assumes."""

    name: str
    claim: str
    description: str
    params: tuple[str, ...]
    assumptions: str
    evaluate: Callable[..., float] = field(repr=False)
    expr: sp.Expr | None = None

    @property
    def latex(self) -> str:
        """LaTeX of the closed form (empty for predictions evaluated by quadrature)."""
        return sp.latex(self.expr) if self.expr is not None else ""

    def __call__(self, **params: float) -> float | np.ndarray:
        missing = set(self.params) - set(params)
        extra = set(params) - set(self.params)
        if missing or extra:
            raise ValueError(
                f"prediction {self.name} takes {', '.join(self.params) or 'no parameters'}; "
                f"missing: {', '.join(sorted(missing)) or '-'}, unknown: "
                f"{', '.join(sorted(extra)) or '-'}")
        return self.evaluate(**params)


PREDICTIONS: dict[str, Prediction] = {}


def register(prediction: Prediction) -> Prediction:
    PREDICTIONS[prediction.name] = prediction
    return prediction


def get(name: str) -> Prediction:
    """The registered prediction ``name`` (``ValueError`` naming the known ones otherwise)."""
    _load_all()
    if name not in PREDICTIONS:
        raise ValueError(f"unknown prediction {name!r}; known: {', '.join(sorted(PREDICTIONS))}")
    return PREDICTIONS[name]


def all_predictions() -> dict[str, Prediction]:
    _load_all()
    return dict(PREDICTIONS)


def _load_all() -> None:
    # importing registers
    import theory.contribution  # noqa: F401
    import theory.gap  # noqa: F401
    import theory.gap_depth  # noqa: F401
    import theory.gap_spectra  # noqa: F401
    import theory.hcni  # noqa: F401
    import theory.power_random  # noqa: F401
    import theory.power_shared  # noqa: F401
    import theory.rank  # noqa: F401
    import theory.rem  # noqa: F401
    import theory.rem_key_query  # noqa: F401
    import theory.sinks  # noqa: F401
