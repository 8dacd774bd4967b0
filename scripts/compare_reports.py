"""Compare the cells of two report.json files (run ids, times and machine details aside).

    python scripts/compare_reports.py BEFORE/report.json AFTER/report.json [--tolerance 0] [--common]
    python scripts/compare_reports.py BEFORE/report.json AFTER/report.json --moves [--out PAGE.md]

Prints each measured field that differs and exits 1 if any does, 0 if the cells are equal (within the
tolerance: the largest absolute difference allowed between two numbers). Used to show that a refactor is
number-neutral (tolerance 0) and how closely a report regenerated on another machine matches a published one.

`--moves` asks instead whether each cell moved beyond what its seeds vary (the same study under another
precision, say): both cells with their seed-level intervals, whether each mean lies inside the other's
interval, and the verdict rule's word for AFTER against BEFORE (paired by seed where both ran the same seeds
on the same data); it exits 1 if any cell is not level.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pdiff.results.compare import cell_moves, cell_name, compare_reports, moves_page, moves_text
from pdiff.results.report_json import read_report
from pdiff.workspace.atomic import atomic_write_text


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument(
        "--tolerance", type=float, default=0.0, help="largest absolute gap allowed (default 0)"
    )
    parser.add_argument(
        "--moves", action="store_true", help="whether each cell moved beyond its seeds' spread"
    )
    parser.add_argument(
        "--common",
        action="store_true",
        help="compare only the cells both reports hold (one is a part; --moves always does)",
    )
    parser.add_argument("--out", type=Path, help="with --moves: also write the list as a markdown page here")
    args = parser.parse_args(argv)
    if args.moves:
        moves = cell_moves(read_report(args.before), read_report(args.after))
        print(moves_text(moves))
        if args.out:
            atomic_write_text(args.out, moves_page(moves, args.before, args.after))
        return 0 if all(move.verdict == "level" for move in moves) else 1
    before, after = (json.loads(path.read_text()) for path in (args.before, args.after))
    differences = compare_reports(before, after, args.tolerance, args.common)
    for difference in differences:
        print(difference.line())
    gaps = [d.gap for d in differences if d.gap is not None]
    names = [{cell_name(r) for r in report["results"]} for report in (before, after)]
    verdict = "equal" if not differences else f"{len(differences)} differences"
    both = f" ({len(names[0] & names[1])} in both, compared)" if args.common else ""
    print(
        f"{len(names[0])} cells before, {len(names[1])} after{both}: {verdict}"
        + (f", largest gap {max(gaps):.6g}" if gaps else "")
    )
    if args.common and not names[0] & names[1]:
        print("no cell is in both reports: nothing was compared", file=sys.stderr)
        return 1
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
