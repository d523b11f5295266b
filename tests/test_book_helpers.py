"""The Markdown the book pages display: tables stay tables."""

from sim import stats
from sim.book import _escape, comparison_markdown


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
