"""The paper's figures the README's outline quotes are the ones pdiff.results.paper holds (the figures every
report prints beside ours), not numbers typed a second time."""

from __future__ import annotations

import re
from dataclasses import fields, is_dataclass

from published_pages import ROOT

from pdiff.results import paper


def reported_figures(value: object) -> set[float]:
    """Every mean and std of the `Reported` figures inside `value` (dicts, tuples, lists nested)."""
    if isinstance(value, paper.Reported):
        return {x for x in (value.mean, value.std) if x is not None}
    if isinstance(value, dict):
        return set().union(*(reported_figures(v) for v in value.values())) if value else set()
    if isinstance(value, list | tuple):
        return set().union(*(reported_figures(v) for v in value)) if value else set()
    if is_dataclass(value) and not isinstance(value, type):
        return set().union(*(reported_figures(getattr(value, f.name)) for f in fields(value)))
    return set()


def test_the_readmes_paper_figures_are_the_packaged_ones():
    readme = (ROOT / "README.md").read_text()
    outline = readme[readme.index("In outline") : readme.index("**cheetah-vel under the stricter protocol")]
    quoted = [
        float(number.replace("−", "-"))
        for item in outline.split("\n- ")
        if "the paper" in item.lower()
        for number in re.findall(r"[−-]?\d+\.\d(?!\d)", item)  # returns; our measured shares have two digits
    ]
    figures = set().union(*(reported_figures(v) for v in vars(paper).values()))
    assert len(quoted) >= 5
    assert [q for q in quoted if q not in figures] == []
