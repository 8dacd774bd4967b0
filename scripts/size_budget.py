"""Read training budgets off learning curves (how the `study` preset's budgets were sized).

    python scripts/size_budget.py WORKSPACE RUN [RUN ...] [--out PNG] [--key KEY] [--fraction 0.95]

RUN is a finished or stopped pretrain or diffuse run trained with `--set curve_every=N` (its metrics log the
training-task return). Prints, per run, where the curve started, its plateau and the first step at which it
came `fraction` of the way there (pdiff.rollouts.budget); `--out` draws them side by side. `--json` prints the
same as JSON.

Tune runs make one curve per method instead: tune the same method at several `--set steps=N --set
eval_every=N` (selection on, a fixed budget of N), and each run gives a point, the selection's best held-out
few-shot loss at N steps (the untuned loss is step 0; the plateau is the best of them, since tuning longer
can overfit the few shots). A single tune run of a method with early stopping (`eval_every` below its
`steps`, as the `study` preset tunes) makes the same curve by itself: it recorded each candidate's whole
held-out curve (its summary's `selection.scores[].curve`), and the best of them at each scored step is that
budget's point.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pdiff.errors import PdiffError
from pdiff.rollouts.budget import (
    Budget,
    early_stopping_curve,
    plateau_budget,
    plot_budgets,
    read_curve,
    selection_curve,
)
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import Run, find_run


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("workspace")
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--key", default="train_task_return", help="the logged curve (default: %(default)s)")
    parser.add_argument(
        "--fraction", type=float, default=0.95, help="share of the rise (default: %(default)s)"
    )
    parser.add_argument("--out", type=Path, help="PNG of the curves with their budgets")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    budgets: list[tuple[str, Budget]] = []
    try:
        workspace = Workspace.open(args.workspace)
        runs = [find_run(workspace, ref) for ref in args.runs]
        tuned: dict[str, list[Run]] = {}
        for run in runs:
            if run.stage == "tune":
                tuned.setdefault(run.config["method"], []).append(run)
                continue
            steps, values = read_curve(run.dir / "metrics.jsonl", args.key)
            budgets.append(
                (
                    f"{run.stage} {run.run_id}",
                    plateau_budget(steps, values, key=args.key, fraction=args.fraction),
                )
            )
        for method, method_runs in tuned.items():
            steps, values = (  # one run: its own curves; several: one point per budget
                early_stopping_curve(method_runs[0])
                if len(method_runs) == 1
                else selection_curve(method_runs)
            )
            budgets.append(
                (
                    f"tune {method}",
                    plateau_budget(
                        steps,
                        values,
                        key="-heldout_loss",
                        fraction=args.fraction,
                        tail=1,
                        window=1,
                        best=True,
                    ),
                )
            )
    except (PdiffError, ValueError) as error:
        sys.exit(f"error: {error}")
    if args.json:
        print(json.dumps({name: b.to_dict() for name, b in budgets}, indent=2))
    else:
        for name, b in budgets:
            if b.plateau <= b.start:  # e.g. a tune whose every candidate ends above the untuned loss
                points = f"{len(b.steps)} points, to step {b.steps[-1]}"
                print(f"{name}: {b.key} never above its start {b.start:.4g} ({points})")
                continue
            rising = "  STILL RISING: a lower bound, train longer" if b.still_rising else ""
            print(
                f"{name}: {b.key} {b.start:.4g} at step {b.steps[0]} -> plateau {b.plateau:.4g} "
                f"({len(b.steps)} points, to step {b.steps[-1]}); {b.fraction:.0%} of the rise "
                f"({b.threshold:.4g}) at step {b.reached_at}{rising}"
            )
            if name.startswith("tune "):  # few points: how far each budget got
                print(
                    "  share of the rise by step: " + ", ".join(f"{s} {v:.2f}" for s, v in b.shares().items())
                )
    if args.out:
        print(f"wrote {plot_budgets(budgets, args.out)}", file=sys.stderr if args.json else sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
