"""Plain-text tables for the command line and the book."""

from __future__ import annotations

from collections.abc import Sequence

from sim.claims import ClaimResult
from sim.montecarlo import Result, get_kind

RUN_COLUMNS = ("cosine", "q", "p", "stable_rank", "numerical_rank", "consensus_distance",
               "entropy", "ipr", "norm", "gram_stable_rank")


def _cell(mean: float | None, se: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.4g}" + (f"±{se:.2g}" if se else "")


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(header)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def run_table(result: Result) -> str:
    """Per-layer estimates (mean±se) of one run, with its provenance on the first line."""
    c = result.config
    head = (f"T={c.T} d={c.d} depth={c.depth} norm={c.norm} attention={c.attention} "
            f"beta={c.beta} samples={result.samples} seed={result.seed} "
            f"version={result.version}")
    columns = RUN_COLUMNS if result.kind == "forward" else result.observables
    head += f" kind={result.kind}"
    rows = [[str(row["layer"])] + [_cell(row[n]["mean"], row[n]["se"]) for n in columns]
            for row in result.layers()]
    return head + "\n" + table((get_kind(result.kind).row_label,) + tuple(columns), rows)


def sweep_table(results: Sequence[Result]) -> str:
    """Final-layer estimates of each point of a sweep (cosine, stable rank, entropy; or the
    kind's own observables)."""
    columns = ("cosine", "stable_rank", "entropy")
    if results and results[0].kind != "forward":
        columns = results[0].observables
    rows = []
    for r in results:
        last = r.layers()[-1]
        rows.append([f"T={r.config.T} d={r.config.d} beta={r.config.beta} "
                     f"norm={r.config.norm} depth={r.config.depth}"]
                    + [_cell(last[n]["mean"], last[n]["se"]) for n in columns])
    return table(("config",) + tuple(columns), rows)


def verdict_table(results: Sequence[ClaimResult]) -> str:
    rows = [[r.id, r.verdict, r.deciding] for r in results]
    return table(("claim", "verdict", "deciding number"), rows)
