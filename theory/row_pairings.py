"""Exact finite-``T`` expectations of dot-product polynomials in the centred rows of a
random-Markov matrix, by pairing (used by GAP-1's third order, ``theory.gap_spectra``).

Rows ``u_1 ... u_T`` of ``A_perp = A - 1 1^T/T`` (``A = rowsoftmax(G)``, ``G`` i.i.d.
``N(., s^2)``, ``T x T``) are i.i.d., each exchangeable in its ``T`` entries with
``sum_j u_j = 0``. A *dot-product graph* is a list of edges ``(x, y)`` between row slots
``0 .. n - 1``; its value is ``sum over rows of every slot of prod_edges <u_x, u_y>``. Its
expectation is computed exactly:

1. group the row assignments by the set partition ``pi`` of the slots into equal rows
   (``(T)_{|pi|}`` assignments each, distinct rows independent);
2. expand each dot product over its column and group the column assignments by the set
   partition ``sigma`` of the edges into equal columns (``(T)_{|sigma|}`` each);
3. each row then contributes ``m(k_1, ..., k_r) = E prod_b u_{j_b}^{k_b}`` over distinct columns
   ``j_b`` (``k_b`` its edge ends in column block ``b``), from the joint moments of one softmax
   row at distinct columns (``theory.rem.row_joint_moment``) by the binomial expansion of
   ``u = a - 1/T``.

Exact up to the quadrature error of the joint moments (about ``1e-12`` relative).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from functools import lru_cache


def set_partitions(items: Sequence[int]) -> Iterator[list[list[int]]]:
    """Every set partition of ``items`` (lists of blocks, each block a list in input order)."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for part in set_partitions(rest):
        yield [[first], *part]
        for i in range(len(part)):
            yield part[:i] + [[first, *part[i]]] + part[i + 1:]


def falling(T: int, k: int) -> int:
    """``T (T - 1) ... (T - k + 1)``: injective assignments of ``k`` blocks to ``T`` indices."""
    return math.prod(range(T - k + 1, T + 1))


@lru_cache(maxsize=4096)
def centred_pattern_moment(T: int, markov_s: float, pattern: tuple[int, ...]) -> float:
    """``E prod_b u_{j_b}^{k_b}`` for one centred row ``u = a - 1/T`` at distinct columns
    ``j_b`` (``pattern = (k_1, ..., k_r)``, sorted, all ``>= 1``)."""
    from theory.rem import row_joint_moment

    total = 0.0
    for powers in _expansions(pattern):
        coeff = 1.0
        for k, i in zip(pattern, powers, strict=True):
            coeff *= math.comb(k, i) * (-1.0 / T) ** (k - i)
        kept = tuple(sorted(i for i in powers if i > 0))
        total += coeff * (row_joint_moment(T, markov_s, kept) if kept else 1.0)
    return total


def _expansions(pattern: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
    if not pattern:
        yield ()
        return
    for i in range(pattern[0] + 1):
        for rest in _expansions(pattern[1:]):
            yield (i, *rest)


def expect_graph(T: int, markov_s: float, edges: Sequence[tuple[int, int]]) -> float:
    """``E sum_{rows of the slots} prod_{(x, y) in edges} <u_x, u_y>`` (slots ``0 .. n - 1``, the
    ones the edges name; a loop ``(x, x)`` is ``|u_x|^2``)."""
    slots = sorted({v for e in edges for v in e})
    total = 0.0
    for rows in set_partitions(slots):
        vertex = {slot: b for b, block in enumerate(rows) for slot in block}
        graph = [(vertex[x], vertex[y]) for x, y in edges]
        total += falling(T, len(rows)) * _expect_rows(T, markov_s, len(rows), tuple(graph))
    return total


def _expect_rows(T: int, markov_s: float, n_rows: int,
                 graph: tuple[tuple[int, int], ...]) -> float:
    """``E prod_edges <u_x, u_y>`` for ``n_rows`` distinct (independent) rows."""
    total = 0.0
    for columns in set_partitions(list(range(len(graph)))):
        value = float(falling(T, len(columns)))
        for v in range(n_rows):
            ends = [sum((graph[e][0] == v) + (graph[e][1] == v) for e in block)
                    for block in columns]
            pattern = tuple(sorted(k for k in ends if k > 0))
            if pattern == (1,):  # E u_j = 0
                value = 0.0
                break
            value *= centred_pattern_moment(T, markov_s, pattern)
        total += value
    return total
