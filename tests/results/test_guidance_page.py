"""The published guidance-rules page (docs/results/guidance) is what the script writes from the two families'
committed reports, and docs/method.md and the README quote its figures and the default rule it gives."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from published_pages import PROBABILITY, ROOT, paragraph_citing

from pdiff.results.guidance_rules import rules_page

PAGE = Path("docs/results/guidance/README.md")
FAMILIES = ("cheetah-vel", "metaworld-pick-place")
REPORTS = [
    Path("docs/results/protocol-rerun/cheetah-vel/report.json"),
    Path("docs/results/guidance/metaworld-pick-place/report.json"),
]


def test_the_guidance_page_is_what_the_script_writes(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert PAGE.read_text() == rules_page(REPORTS)


@pytest.mark.parametrize("doc", ["docs/method.md", "README.md"])
def test_the_docs_quote_the_page_and_its_default(doc):
    paragraph = paragraph_citing(ROOT / doc, "results/guidance/README.md")
    page = (ROOT / PAGE).read_text()
    # gpm against project on both families: level, with the probabilities where the doc gives them
    assert "level" in paragraph
    assert all(f"`gpm` on {family}: level" in page for family in FAMILIES)
    assert all(f"{p} (level)" in page for p in PROBABILITY.findall(paragraph))
    default = re.search(r"The default stays `(\w+)`", page)
    assert default is not None and f"the default stays `{default.group(1)}`" in paragraph
    shares = re.findall(r"(\d\.\d\d) (?:of it )?against (\d\.\d\d)", paragraph)
    assert len(shares) == 2  # cheetah-vel's, then metaworld-pick-place's
    for family, (gpm, project) in zip(FAMILIES, shares, strict=True):
        assert f"| {family} | `gpm` | {gpm} |" in page and f"| {family} | `project` | {project} |" in page
