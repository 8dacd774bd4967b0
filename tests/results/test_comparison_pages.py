"""The published comparisons of one study under two settings are what the script writes from their two
committed reports, and the docs quote them: bf16 against fp32 (docs/results/precision, quoted in
docs/performance.md), a tune cap of 120 against 60 (docs/results/tune-cap, quoted in docs/study.md) and
cheetah-dir's Table 1 regenerated from a fresh clone against the published study (docs/results/fresh-clone,
quoted in docs/study.md as equal)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from published_pages import CELL, PROBABILITY, ROOT, paragraph_citing

from pdiff.results.compare import cell_moves, compare_reports, moves_page
from pdiff.results.report_json import read_report

PRECISION, TUNE_CAP, FRESH_CLONE = (
    Path("docs/results") / name for name in ("precision", "tune-cap", "fresh-clone")
)
PUBLISHED_CHEETAH_DIR = Path("docs/results/cheetah-dir-study")
# (page directory, the two report directories compared, the doc quoting the page, cells and probabilities
# it quotes)
COMPARISONS = [
    (
        PRECISION,
        (PRECISION / "cheetah-dir-fp32", PRECISION / "cheetah-dir-bf16"),
        "docs/performance.md",
        4,
        2,
    ),
    (TUNE_CAP, (TUNE_CAP / "cheetah-vel-cap60", TUNE_CAP / "cheetah-vel-cap120"), "docs/study.md", 2, 1),
    (FRESH_CLONE, (PUBLISHED_CHEETAH_DIR, FRESH_CLONE / "cheetah-dir"), "docs/study.md", 0, 0),
]


@pytest.mark.parametrize(("pages", "reports", "doc", "cells", "probabilities"), COMPARISONS)
def test_each_comparison_page_is_what_the_script_writes_and_its_doc_quotes_it(
    monkeypatch, pages, reports, doc, cells, probabilities
):
    monkeypatch.chdir(ROOT)
    before, after = (directory / "report.json" for directory in reports)
    page = moves_page(cell_moves(read_report(before), read_report(after)), before, after)
    assert (pages / "README.md").read_text() == page
    paragraph = paragraph_citing(ROOT / doc, f"({pages.relative_to('docs')}/README.md)")
    quoted_cells, quoted_probabilities = CELL.findall(paragraph), PROBABILITY.findall(paragraph)
    assert len(quoted_cells) == cells and len(quoted_probabilities) == probabilities
    assert all(quoted in page for quoted in quoted_cells + quoted_probabilities)


def test_the_fresh_clone_regenerated_every_published_cell_it_ran_exactly(monkeypatch):
    """docs/study.md says the fresh clone's Table 1 equals the published one at tolerance 0."""
    monkeypatch.chdir(ROOT)
    published, fresh = (
        json.loads((directory / "report.json").read_text())
        for directory in (PUBLISHED_CHEETAH_DIR, FRESH_CLONE / "cheetah-dir")
    )
    assert len(fresh["results"]) == 9
    assert compare_reports(published, fresh, tolerance=0.0, common=True) == []
    paragraph = paragraph_citing(ROOT / "docs/study.md", "(results/fresh-clone/README.md)")
    assert "9 after (9 in both, compared): equal" in paragraph
