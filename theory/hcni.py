"""Stub: being written (issue 7)."""

from __future__ import annotations

import sympy as sp


def generated_functions() -> list[tuple[str, sp.Expr, tuple[sp.Symbol, ...]]]:
    return []
