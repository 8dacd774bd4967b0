"""What the tests of published pages share: the repository root, the number formats a page quotes, and the
paragraph of a document that cites a page."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CELL = re.compile(r"-?\d+\.\d ± \d+\.\d \[-?\d+\.\d, -?\d+\.\d\]")
PROBABILITY = re.compile(r"\d\.\d\d \[\d\.\d\d, \d\.\d\d\]")


def paragraph_citing(doc: Path, link: str) -> str:
    """The one paragraph (or list item) of `doc` that contains `link`, its line breaks as spaces."""
    (paragraph,) = [p for p in re.split(r"\n\n|\n(?=- )", doc.read_text()) if link in p]
    return " ".join(paragraph.split())
