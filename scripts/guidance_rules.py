"""The guidance rules measured without test returns, over several published reports at once: the table
"Guidance rules, without test returns" of every family's ablation together, and the default rule the
measurement gives (docs/method.md: `gpm` replaces `project` only if its held-out loss is lower on every
family), then each family's ablation returns, which decide nothing.

    python scripts/guidance_rules.py DIR/report.json [DIR/report.json ...] [--out guidance-rules.md]

Prints the markdown (and writes it to --out).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pdiff.results.guidance_rules import rules_page
from pdiff.workspace.atomic import atomic_write_text


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("reports", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, help="also write the page here")
    args = parser.parse_args(argv)
    page = rules_page(args.reports)
    if args.out:
        atomic_write_text(args.out, page)
    print(page, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
