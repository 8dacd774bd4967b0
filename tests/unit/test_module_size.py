"""The code stays in modules a reader can hold: none over MAX_LINES (docs/architecture.md)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 400
CHECKED = ("pdiff", "tests", "scripts", "bench")


def test_no_module_is_longer_than_the_limit():
    sizes = {
        path.relative_to(ROOT): len(path.read_text().splitlines())
        for folder in CHECKED
        for path in (ROOT / folder).rglob("*.py")
    }
    assert len(sizes) > 100, "the search found too few modules to mean anything"
    too_long = {str(path): lines for path, lines in sizes.items() if lines > MAX_LINES}
    assert not too_long, f"over {MAX_LINES} lines, split them: {too_long}"
