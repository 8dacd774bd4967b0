"""Two editions of one family's study side by side: cells and Prompt Diffuser's verdicts, which changed.

    python scripts/compare_editions.py FIRST/report.json SECOND/report.json [--out comparison.md]

Both reports are judged by today's estimator and verdict rule (docs/protocol.md), so a changed verdict comes
from the data. Prints the markdown table (and writes it to --out).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pdiff.results.editions import edition_page
from pdiff.workspace.atomic import atomic_write_text


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    page = edition_page(args.first, args.second)
    if args.out:
        atomic_write_text(args.out, page)
    print(page, end="")


if __name__ == "__main__":
    main(sys.argv[1:])
