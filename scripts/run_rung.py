"""Run one rung of the scaling ladder on one family, start to finish (docs/study.md: Scaling).

    python scripts/run_rung.py RUNG --env FAMILY [--workspace DIR] [--jobs N] [--dry-run]

Runs the rung's commands from the repository root (wherever it is started), one after another:
`pdiff reproduce` with the rung's `--set` overrides and the rung's methods, the fidelity runs where the
family's test tasks are held out, and the report into docs/results/scaling/FAMILY/RUNG (then `make results`
redraws the family's page). Every command resumes, so after an interruption or a time limit run the same
line again and it goes on where it stopped. The device is pdiff's `auto`: a GPU where torch sees one. On a
machine with a GPU, the rung a 2-core CPU cannot reach:

    python scripts/run_rung.py paper --env cheetah-vel

It stops at the first command that fails and exits with that command's code.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

from pdiff.errors import PdiffError
from pdiff.ladder import rung_commands, rung_of

ROOT = Path(__file__).resolve().parents[1]  # the commands' paths are the repository's
SCALING_DIR = Path("docs/results/scaling")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("rung", help="x1 | x4 | x16 | paper")
    parser.add_argument("--env", required=True, help="the task family")
    parser.add_argument(
        "--workspace", help="the rung's workspace, relative to the repository root (default: scaling-RUNG)"
    )
    parser.add_argument("--jobs", type=int, default=2, help="reproduce's parallel steps (default 2)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = parser.parse_args(argv)
    try:
        rung = rung_of(args.rung)
        report_dir = SCALING_DIR / args.env / rung.name
        commands = rung_commands(rung, args.env, str(report_dir), args.workspace, args.jobs)
    except PdiffError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
    for command in commands:
        print(f"$ {command}", flush=True)
        if args.dry_run:
            continue
        words = shlex.split(command)
        # pdiff and the scripts run under this interpreter, whether or not its venv is on PATH
        words = (
            [sys.executable, "-m", "pdiff", *words[1:]]
            if words[0] == "pdiff"
            else [sys.executable, *words[1:]]
        )
        code = subprocess.run(words, check=False, cwd=ROOT).returncode
        if code:
            sys.exit(code)


if __name__ == "__main__":
    main(sys.argv[1:])
