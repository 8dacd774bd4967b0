"""A whole `pdiff reproduce --preset study` of one family, timed end to end: the figure the speed goal is set
in (a five-test-task family's Table 1 in two hours on 2 cores with nothing else running).

Runs Table 1's matrix (every tuning method, prompt-dt, full-data and the random prompt; expert few-shot data;
no guidance ablation) in a fresh workspace with `--jobs 2`, collect included, and prints the wall time
against the goal, the machine line, the load the machine had at the start (a figure taken beside another
job is not this benchmark's), and each stage's summed step time from the runs' own records, with the
longest steps (what bounds the wall time at two jobs).

    python bench/bench_study.py [--env cheetah-vel] [--jobs 2] [--workspace DIR] [--json FILE]

Hours, not minutes: it is not part of `make bench`. An interrupted run resumes with the same `--workspace`
(reproduce skips what finished); the wall time is then the sum of the legs, which the script cannot see, so
a resumed figure is printed as such.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

from common import Figure, machine_line, table, write_json

GOAL_HOURS = 2.0


def step_seconds(workspace: Path) -> list[tuple[str, str, float]]:
    """(stage, run id, seconds) of every finished run in the workspace, from its run.json."""
    found = []
    for manifest in sorted(workspace.glob("runs/*/*/run.json")):
        run = json.loads(manifest.read_text())
        if run.get("status") == "FINISHED" and run.get("duration_s") is not None:
            found.append((manifest.parent.parent.name, manifest.parent.name, float(run["duration_s"])))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="cheetah-vel", help="a family with five test tasks (default)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--workspace", type=Path, help="keep the workspace here (default: a temporary one)")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        workspace = args.workspace or Path(tmp) / "ws"
        resumed = (workspace / "runs").is_dir()
        pdiff = [sys.executable, "-m", "pdiff", "-q"]
        if not resumed:
            subprocess.run([*pdiff, "init", str(workspace)], check=True, stdout=subprocess.DEVNULL)
        command = [
            *pdiff,
            "-w",
            str(workspace),
            "reproduce",
            "--env",
            args.env,
            "--preset",
            "study",
            "--data-kinds",
            "expert",
            "--no-guidance-ablation",
            "--methods",
            "prompt-diffuser,ptdt,full-ft,soft-prompt,adaptor,lora,prompt-dt,full-data,random-prompt",
            "--jobs",
            str(args.jobs),
        ]
        start = time.perf_counter()
        subprocess.run(command, check=True)
        wall = time.perf_counter() - start
        steps = step_seconds(workspace)
    print(machine_line())
    print(f"load average at the start: {load:.2f} (about 0 on a machine with nothing else running)")
    print(f"command: {' '.join(command[3:])}")
    by_stage: dict[str, float] = {}
    for stage, _, seconds in steps:
        by_stage[stage] = by_stage.get(stage, 0.0) + seconds
    print("summed step time by stage: " + ", ".join(f"{s} {v / 60:.1f} min" for s, v in by_stage.items()))
    longest = sorted(steps, key=lambda row: -row[2])[:5]
    print("longest steps: " + ", ".join(f"{run} {seconds / 60:.1f} min" for _, run, seconds in longest))
    hours = wall / 3600
    name = f"reproduce --preset study, {args.env}, --jobs {args.jobs}" + (" (resumed leg)" if resumed else "")
    # ratio = goal / wall: at least 1 where the study fits in the goal
    figures = [Figure(name, 1 / hours, "studies/h", 1 / GOAL_HOURS, f"goal {GOAL_HOURS:g} h", 1.0)]
    print(f"wall time {hours:.2f} h")
    print(table(figures))
    write_json(args.json, figures)


if __name__ == "__main__":
    main()
