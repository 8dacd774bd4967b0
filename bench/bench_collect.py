"""Collect throughput: environment steps per second of `pdiff collect` vs the bare simulator.

Runs the collect stage (scripted Meta-World expert with action noise, HDF5 writes, worker processes) into a
temporary workspace and divides the steps it collected by its wall time; the reference steps the same tasks'
simulators with uniform random actions in one process (simulators built before timing). Stage start-up
(ML1 benchmark, one simulator per task and worker) is included in the stage's time: it is what collect costs.

    python bench/bench_collect.py [--tasks 10] [--episodes 5] [--horizon 100] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
from common import Figure, machine_line, table, write_json

from pdiff.config import resolve_config
from pdiff.console import setup_logging
from pdiff.envs import get_family
from pdiff.stages.collect import CollectConfig, run_collect
from pdiff.workspace.root import Workspace


def collect_workspace(
    root: Path, env: str, tasks: list[int] | None, episodes: int, horizon: int, workers: int, kinds: list[str]
) -> tuple[Workspace, float, int]:
    """A fresh workspace with collected datasets; (workspace, seconds, environment steps)."""
    workspace, _ = Workspace.init(root)
    flags = {
        "env": env,
        "kinds": kinds,
        "tasks": tasks,
        "episodes": episodes,
        "prompt_episodes": episodes,
        "horizon": horizon,
        "workers": workers,
    }
    config = resolve_config(CollectConfig, "collect", workspace=workspace, preset="smoke", flags=flags)
    start = time.perf_counter()
    run_collect(workspace, config, argv=["pdiff", "collect"])
    seconds = time.perf_counter() - start
    steps = len(tasks or range(get_family(env).num_tasks)) * len(kinds) * episodes * horizon
    return workspace, seconds, steps


def bare_rate(env: str, tasks: list[int], episodes: int, horizon: int) -> float:
    family = get_family(env)
    envs = [family.make_env(task, horizon=horizon) for task in tasks]
    rng = np.random.default_rng(0)
    start, steps = time.perf_counter(), 0
    for sim in envs:
        for episode in range(episodes):
            sim.reset(seed=episode)
            done = False
            while not done:
                _, _, terminated, truncated, _ = sim.step(
                    rng.uniform(-1, 1, family.act_dim).astype(np.float32)
                )
                done, steps = terminated or truncated, steps + 1
    rate = steps / (time.perf_counter() - start)
    for sim in envs:
        sim.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", default="metaworld-reach")
    parser.add_argument("--tasks", type=int, default=10, help="the first N tasks of the family")
    parser.add_argument("--episodes", type=int, default=5, help="expert and prompt-expert episodes per task")
    parser.add_argument("--horizon", type=int, default=100)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", help="also write the figures to this file (for bench/run_all.py)")
    args = parser.parse_args()
    setup_logging(0, True)
    tasks = list(range(args.tasks))
    kinds = ["expert", "prompt-expert"]
    bare = bare_rate(args.env, tasks, args.episodes * len(kinds), args.horizon)
    figures = []
    for workers in args.workers:
        with tempfile.TemporaryDirectory() as tmp:
            _, seconds, steps = collect_workspace(
                Path(tmp) / "ws", args.env, tasks, args.episodes, args.horizon, workers, kinds
            )
        figures.append(
            Figure(
                f"collect {args.env}, {workers} worker(s)",
                steps / seconds,
                "steps/s",
                bare,
                "bare simulator, 1 process",
            )
        )
    print(machine_line())
    print(f"{args.tasks} tasks x {kinds} x {args.episodes} episodes x {args.horizon} steps")
    print(table(figures))
    write_json(args.json, figures)


if __name__ == "__main__":
    main()
