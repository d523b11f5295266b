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
