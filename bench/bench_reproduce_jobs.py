"""`pdiff reproduce --jobs N` against the sequential matrix, measured in one run.

Collects a smoke-sized Meta-World reach workspace once (not timed), copies it once per `--jobs` value and runs
the same matrix in each copy through the CLI, timing the whole command. The matrix's steps are made longer
than the smoke preset's with `--set` (tune steps, evaluation episodes, training steps), so that what is timed
is the work and not the start of each process (each parallel step pays one interpreter start, about 2-4 s).
The ratio is the sequential wall time over the parallel one (higher is better).

    python bench/bench_reproduce_jobs.py [--jobs 1 2] [--methods prompt-dt,soft-prompt,adaptor,lora,full-ft]
                                         [--set pretrain.steps=3000 ...]   (larger steps than LONGER's)

On steps this small each child's start weighs: on an idle 2-core machine `--jobs 2` was slower than `--jobs 1`
(108.3 s against 82.0 s), whose single process also uses both cores through torch's threads. Pass `--set` to
time steps of the size you run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

from common import Figure, machine_line, table, write_json

from pdiff.config import resolve_config
from pdiff.console import setup_logging
from pdiff.stages.collect import CollectConfig, run_collect
from pdiff.workspace.root import Workspace

FAMILY = "metaworld-reach"
LONGER = [
    "pretrain.steps=300",
    "diffuse.steps=100",
    "tune.steps=40",
    "tune.seeds=[0,1]",
    "eval.seeds=[0,1]",
    "eval.episodes=2",
    "eval.horizon=100",
]


def collected(root: Path) -> None:
    workspace, _ = Workspace.init(root)
    config = resolve_config(
        CollectConfig,
        "collect",
        workspace=workspace,
        preset="smoke",
        flags={"env": FAMILY, "kinds": ["expert", "prompt-expert"], "workers": 2},
    )
    run_collect(workspace, config, argv=["pdiff", "collect"])


def matrix_seconds(root: Path, methods: str, jobs: int, overrides: list[str]) -> float:
    command = [
        sys.executable,
        "-m",
        "pdiff",
        "-w",
        str(root),
        "reproduce",
        "--preset",
        "smoke",
        "--env",
        FAMILY,
        "--methods",
        methods,
        "--jobs",
        str(jobs),
        *(w for s in overrides for w in ("--set", s)),
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--methods", default="prompt-dt,soft-prompt,adaptor,lora,full-ft")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a further stage setting, after (and over) LONGER's",
    )
    parser.add_argument("--json", help="also write the figures to this file (for bench/run_all.py)")
    args = parser.parse_args()
    setup_logging(0, True)
    overrides = LONGER + args.overrides  # the last --set of a key wins
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "template"
        collected(template)
        seconds = {}
        for jobs in args.jobs:
            shutil.copytree(template, Path(tmp) / f"jobs-{jobs}")
            seconds[jobs] = matrix_seconds(Path(tmp) / f"jobs-{jobs}", args.methods, jobs, overrides)
    first = args.jobs[0]
    figures = [
        Figure(f"reproduce --jobs {jobs}", 3600 / s, "matrices/h", 3600 / seconds[first], f"--jobs {first}")
        for jobs, s in seconds.items()
    ]
    print(machine_line())
    print(f"{FAMILY} smoke matrix, methods {args.methods}, --set {' '.join(overrides)}")
    print("wall: " + ", ".join(f"--jobs {j} {s:.1f} s" for j, s in seconds.items()))
    print(table(figures))
    write_json(args.json, figures)


if __name__ == "__main__":
    main()
