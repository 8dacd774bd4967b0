"""The published guidance-rules page (docs/results/guidance) is what the script writes from the two families'
committed reports, and docs/method.md quotes its figures and the default rule it gives."""

from __future__ import annotations

import re
from pathlib import Path

from published_pages import PROBABILITY, ROOT, paragraph_citing

from pdiff.results.guidance_rules import rules_page

PAGE = Path("docs/results/guidance/README.md")
REPORTS = [
    Path("docs/results/protocol-rerun/cheetah-vel/report.json"),
    Path("docs/results/guidance/metaworld-pick-place/report.json"),
]


def test_the_guidance_page_is_what_the_script_writes(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert PAGE.read_text() == rules_page(REPORTS)


def test_docs_method_quotes_the_page_and_its_default():
    paragraph = paragraph_citing(ROOT / "docs" / "method.md", "results/guidance/README.md")
    page = (ROOT / PAGE).read_text()
    probabilities = PROBABILITY.findall(paragraph)
    assert len(probabilities) == 2 and all(f"{p} (level)" in page for p in probabilities)
    default = re.search(r"The default stays `(\w+)`", page)
    assert default is not None and f"so the default stays `{default.group(1)}`" in paragraph
    shares = re.findall(r"(\d\.\d\d) against (\d\.\d\d)", paragraph)
    assert len(shares) == 2  # cheetah-vel's, then metaworld-pick-place's
    for family, (gpm, project) in zip(("cheetah-vel", "metaworld-pick-place"), shares, strict=True):
        assert f"| {family} | `gpm` | {gpm} |" in page and f"| {family} | `project` | {project} |" in page
