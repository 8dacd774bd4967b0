"""The guidance rules measured without test returns, over several published reports at once: the table
"Guidance rules, without test returns" of every family's ablation together, and the default rule the
measurement gives (docs/method.md: `gpm` replaces `project` only if its held-out loss is lower on every
family).

    python scripts/guidance_rules.py DIR/report.json [DIR/report.json ...] [--out guidance-rules.md]

Prints the markdown (and writes it to --out).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pdiff.errors import ArtifactError
from pdiff.results.cells import ReportData
from pdiff.results.guidance_rules import rules_tables
from pdiff.results.report_json import read_report, restated
from pdiff.workspace.atomic import atomic_write_text


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("reports", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, help="also write the page here")
    args = parser.parse_args(argv)
    results = [restated(r) for path in args.reports for r in read_report(path).results]
    tables = rules_tables(ReportData(results, [], [], {}))
    if not tables:
        raise ArtifactError("no guidance ablation with measurements in these reports")
    command = "python scripts/guidance_rules.py " + " ".join(str(path) for path in args.reports)
    page = "\n".join(table.markdown() for table in tables) + f"\nMade by `{command}`.\n"
    if args.out:
        atomic_write_text(args.out, page)
    print(page, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
