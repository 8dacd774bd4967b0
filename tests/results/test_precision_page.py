"""The published bf16-against-fp32 comparison (docs/results/precision) is what the script writes from the two
committed reports, and docs/performance.md quotes it."""

from __future__ import annotations

from pathlib import Path

from published_pages import CELL, PROBABILITY, ROOT, paragraph_citing

from pdiff.results.compare import cell_moves, moves_page
from pdiff.results.report_json import read_report

PAGES = Path("docs/results/precision")


def test_the_comparison_page_is_what_the_script_writes(monkeypatch):
    monkeypatch.chdir(ROOT)
    before, after = PAGES / "cheetah-dir-fp32" / "report.json", PAGES / "cheetah-dir-bf16" / "report.json"
    page = moves_page(cell_moves(read_report(before), read_report(after)), before, after)
    assert (PAGES / "README.md").read_text() == page


def test_docs_performance_quotes_the_comparison():
    paragraph = paragraph_citing(ROOT / "docs" / "performance.md", "results/precision/README.md")
    page = (ROOT / PAGES / "README.md").read_text()
    cells, probabilities = CELL.findall(paragraph), PROBABILITY.findall(paragraph)
    assert len(cells) == 4 and len(probabilities) == 2
    assert all(quoted in page for quoted in cells + probabilities)
