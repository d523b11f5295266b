"""Mind the gap: work in progress (see issue 4)."""

from __future__ import annotations

import sympy as sp


def generated_functions() -> list[tuple[str, sp.Expr, tuple[sp.Symbol, ...]]]:
    """The closed forms printed into ``theory/_generated/gap_depth.py``: (name, expr, args)."""
    return []
