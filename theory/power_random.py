"""Layers as power iterations: work in progress (see issue 5)."""

from __future__ import annotations

import sympy as sp


def generated_functions() -> list[tuple[str, sp.Expr, tuple[sp.Symbol, ...]]]:
    """The closed forms printed into ``theory/_generated/power_random.py``: (name, expr, args)."""
    return []
