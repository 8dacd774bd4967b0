"""The generator's fidelity on training tasks, for one rung of the scaling study (docs/study.md: Scaling).

    python scripts/fidelity.py WORKSPACE --env FAMILY [--tasks 0,10,20]

Repeats the tune and eval runs behind the report's Table 1 cells of prompt-diffuser and prompt-dt (expert
few-shot data) on training tasks, every other setting as those runs recorded it: the same Prompt-DTs and
diffusion models, seeds, shots and selection. The few-shot episodes come from the expert datasets the models
were trained on, so this measures fidelity, not a held-out test; `pdiff report` lists these runs apart from
the test results. Default tasks: as many training tasks as the family has test tasks, spread evenly. Run it
again after an interruption: finished runs are reused, an interrupted tune resumed.
"""

from __future__ import annotations

import argparse
import sys

from pdiff.cli.flags import parse_ids
from pdiff.console import setup_logging
from pdiff.errors import PdiffError
from pdiff.workflows.scaling import run_fidelity
from pdiff.workspace.root import Workspace


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("workspace")
    parser.add_argument("--env", required=True, help="the rung's task family")
    parser.add_argument("--tasks", help="training task ids, e.g. 0,10,20 (default: spread evenly)")
    args = parser.parse_args(argv)
    setup_logging()  # progress on stderr and in each run's log.txt, as the stages give it
    try:
        workspace = Workspace.open(args.workspace)
        steps = run_fidelity(workspace, args.env, parse_ids(args.tasks), ["scripts/fidelity.py", *argv])
    except PdiffError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
    for step in steps:
        print(f"{step.step}: {step.state} {step.run_id}")


if __name__ == "__main__":
    main(sys.argv[1:])
