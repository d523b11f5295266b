"""The Markdown the book pages display: tables stay tables."""

from sim import stats
from sim.book import _chapter_order, _escape, comparison_markdown


def test_pipes_are_escaped_in_cells() -> None:
    assert _escape("max |z| = 1") == "max \\|z\\| = 1"


def test_comparison_table_has_one_row_per_comparison() -> None:
    cs = [stats.compare(1.0, 1.0 + 0.001 * k, 0.01, params={"T": 2**k}, label="x")
          for k in range(3)]
    lines = comparison_markdown(cs).splitlines()
    assert len(lines) == 2 + 3
    assert all(line.count("|") == lines[0].count("|") for line in lines)


def test_comparison_tables_say_which_labels_only_report() -> None:
    """A label whose comparisons all have role "reference" is headed as reported beside the
    verdict; a mixed label says some rows are; an exact label carries no note."""
    from sim.book import comparison_tables
    from sim.claims import ClaimResult

    cs = [stats.compare(1.0, 1.0, 0.01, label="exact law"),
          stats.compare(1.0, 1.0, 0.01, label="limit", role="reference"),
          stats.compare(1.0, 1.0, 0.01, label="slope"),
          stats.compare(1.0, 1.0, 0.01, label="slope", role="reference")]
    text = comparison_tables(ClaimResult("X-1", "s", "confirmed", "d", cs, [], "quick"))
    assert "*exact law*\n" in text
    assert "*limit* (reported beside the verdict, not deciding it)" in text
    assert "*slope* (some rows reported beside the verdict" in text


def test_ledger_orders_claims_by_chapter_then_number() -> None:
    """Registration order (GAP-3, GAP-5, GAP-1, ...) or string order (GAP-10 before GAP-2) would
    fail."""
    from types import SimpleNamespace

    ids = ["RS-1", "GAP-3", "REM-2", "GAP-10", "REM-F", "GAP-1", "GAP-2", "PM-1"]
    ordered = sorted(ids, key=lambda i: _chapter_order(SimpleNamespace(id=i)))
    assert ordered == ["GAP-1", "GAP-2", "GAP-3", "GAP-10", "REM-F", "REM-2", "PM-1", "RS-1"]
