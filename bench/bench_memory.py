"""Peak memory (RSS) of each stage at the quick and paper presets, one fresh process per stage.

Each stage runs through the CLI with its preset's model, batch and evaluation sizes but only a few steps
(peak memory is reached in the first steps), on a small collected Meta-World reach workspace; the process
reports its own peak resident set size (getrusage ru_maxrss). What the shortening leaves out: dataset size
(the paper preset's 100 episodes x 500 steps x 50 tasks hold about 0.5 GB of float32 arrays in memory,
scaling linearly) and, for eval, four of the five test tasks (simulators scale linearly with episodes).

    python bench/bench_memory.py [--presets quick paper]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

from bench_collect import collect_workspace
from common import Figure, machine_line, table, write_json

from pdiff.console import setup_logging

ENV = "metaworld-reach"
CHILD = """
import json, resource, sys
from pdiff.cli import app
try:
    app(sys.argv[1:], standalone_mode=False)
finally:
    print("PEAK_RSS_KIB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def stage_commands(preset: str) -> dict[str, list[str]]:
    common = ["--env", ENV, "--preset", preset]
    return {
        "pretrain": ["pretrain", *common, "--steps", "3", "--set", "device=cpu"],
        "diffuse": ["diffuse", *common, "--steps", "3", "--set", "device=cpu"],
        "tune": ["tune", *common, "--seeds", "0", "--set", "steps=3", "--set", "device=cpu"],
        "eval": [
            "eval",
            *common,
            "--seeds",
            "0",
            "--set",
            "tasks=[11]",
            "--set",
            "horizon=10",
            "--set",
            "device=cpu",
        ],
    }


def peak_rss(workspace: Path, argv: list[str]) -> float:
    """Peak RSS (MiB) of one stage run in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, "-q", "-w", str(workspace), *argv],
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("PEAK_RSS_KIB")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr[-3000:]}")
    return int(lines[-1].split()[1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--presets", nargs="+", default=["quick", "paper"])
    parser.add_argument("--horizon", type=int, default=30, help="episode length of the collected data")
    parser.add_argument("--json", help="also write the figures to this file (for bench/run_all.py)")
    args = parser.parse_args()
    setup_logging(0, True)
    figures = []
    with tempfile.TemporaryDirectory() as tmp:
        workspace, _, steps = collect_workspace(
            Path(tmp) / "ws", ENV, None, 5, args.horizon, 2, ["expert", "prompt-expert"]
        )
        print(
            f"workspace: {ENV}, 50 tasks x 5 expert + 5 prompt episodes x {args.horizon} steps "
            f"({steps} steps)"
        )
        baseline = peak_rss(workspace.root, ["--version"])
        figures.append(Figure("peak RSS: `pdiff --version` (imports)", baseline, "MiB"))
        for preset in args.presets:
            for stage, argv in stage_commands(preset).items():
                figures.append(
                    Figure(f"peak RSS: {stage}, {preset} preset", peak_rss(workspace.root, argv), "MiB")
                )
    print(machine_line())
    print(table(figures))
    write_json(args.json, figures)
    print(json.dumps({f.name: round(f.ours) for f in figures}))


if __name__ == "__main__":
    main()
