"""The published comparisons of one study under two settings are what the script writes from their two
committed reports, and the docs quote them: bf16 against fp32 (docs/results/precision, quoted in
docs/performance.md) and a tune cap of 120 against 60 (docs/results/tune-cap, quoted in docs/study.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from published_pages import CELL, PROBABILITY, ROOT, paragraph_citing

from pdiff.results.compare import cell_moves, moves_page
from pdiff.results.report_json import read_report

# (page directory, the two reports compared, the doc quoting the page, cells and probabilities it quotes)
COMPARISONS = [
    (Path("docs/results/precision"), ("cheetah-dir-fp32", "cheetah-dir-bf16"), "docs/performance.md", 4, 2),
    (Path("docs/results/tune-cap"), ("cheetah-vel-cap60", "cheetah-vel-cap120"), "docs/study.md", 2, 1),
]


@pytest.mark.parametrize(("pages", "reports", "doc", "cells", "probabilities"), COMPARISONS)
def test_each_comparison_page_is_what_the_script_writes_and_its_doc_quotes_it(
    monkeypatch, pages, reports, doc, cells, probabilities
):
    monkeypatch.chdir(ROOT)
    before, after = (pages / name / "report.json" for name in reports)
    page = moves_page(cell_moves(read_report(before), read_report(after)), before, after)
    assert (pages / "README.md").read_text() == page
    paragraph = paragraph_citing(ROOT / doc, f"({pages.relative_to('docs')}/README.md)")
    quoted_cells, quoted_probabilities = CELL.findall(paragraph), PROBABILITY.findall(paragraph)
    assert len(quoted_cells) == cells and len(quoted_probabilities) == probabilities
    assert all(quoted in page for quoted in quoted_cells + quoted_probabilities)
