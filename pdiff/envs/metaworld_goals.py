"""The frozen Meta-World task goals (`metaworld_goals.json`, shipped in the package).

`ML1(f"{task}-v3", seed=1)` defines the 50 tasks of a `metaworld-<task>` family. Meta-World does not promise
that its task generation stays the same across releases, so the goals it produced under metaworld 3.1.1
are written down once, and every env construction checks the live goal against them
(`pdiff.envs.metaworld_family`). The file was generated with

    python -m pdiff.envs.metaworld_goals            # every ML1 task with a scripted policy
    python -m pdiff.envs.metaworld_goals reach      # or only the named tasks (merged into the file)

which builds each ML1 benchmark, resets each of its 50 train tasks and records `env._target_pos`.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import re
import sys
from pathlib import Path

import numpy as np

from pdiff.envs.metaworld_ml1 import ML1_SEED, ml1_benchmark, scripted_tasks
from pdiff.errors import ArtifactError, RunFailed

GOALS_PATH = Path(__file__).with_name("metaworld_goals.json")
GOAL_TOLERANCE = 1e-6  # metres; a drift in task generation moves goals by centimetres


@functools.cache
def frozen_goals() -> dict[str, tuple[tuple[float, float, float], ...]]:
    """{task: 50 goals} from the shipped file."""
    try:
        content = json.loads(GOALS_PATH.read_text())
        return {task: tuple(tuple(goal) for goal in goals) for task, goals in content["goals"].items()}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ArtifactError(
            f"cannot read the frozen Meta-World goals {GOALS_PATH}: {error}",
            hint="reinstall pdiff, or regenerate it with `python -m pdiff.envs.metaworld_goals`",
        ) from error


def frozen_goal(task: str, task_id: int) -> np.ndarray:
    goals = frozen_goals().get(task)
    if goals is None:
        raise RunFailed(
            f"Meta-World task '{task}' has no frozen goals in {GOALS_PATH.name}",
            hint=f"generate them with `python -m pdiff.envs.metaworld_goals {task}`",
        )
    return np.array(goals[task_id], dtype=np.float64)


def check_live_goal(task: str, task_id: int, live_goal: np.ndarray) -> None:
    """RunFailed if metaworld built a different goal than the one frozen for this task."""
    expected = frozen_goal(task, task_id)
    if not np.allclose(live_goal, expected, rtol=0.0, atol=GOAL_TOLERANCE):
        raise RunFailed(
            f"metaworld-{task} task {task_id}: the live goal {np.round(live_goal, 5).tolist()} differs from "
            f"the frozen goal {np.round(expected, 5).tolist()} in {GOALS_PATH.name}",
            hint="Meta-World's task generation changed; install metaworld==3.1.1 (the pinned version)",
        )


def generate_goals(tasks: list[str]) -> dict[str, list[list[float]]]:
    """Build each task's ML1 benchmark and record the goal of its 50 train tasks, in task-id order."""
    goals: dict[str, list[list[float]]] = {}
    for task in tasks:
        benchmark = ml1_benchmark(task)
        env = benchmark.train_classes[f"{task}-v3"]()
        task_goals = []
        for ml1_task in benchmark.train_tasks:
            env.set_task(ml1_task)
            env.reset()
            task_goals.append([float(x) for x in env._target_pos])
        env.close()
        goals[task] = task_goals
        print(f"{task}: {len(task_goals)} goals (ML1 seed {ML1_SEED})", file=sys.stderr)
    return goals


def main(argv: list[str]) -> None:
    from pdiff.workspace.atomic import atomic_write_text

    tasks = argv or scripted_tasks()
    existing = json.loads(GOALS_PATH.read_text())["goals"] if GOALS_PATH.exists() else {}
    content = {
        "about": "Goals (env._target_pos after reset) of ML1(f'{task}-v3', seed) train tasks 0..49.",
        "generated_by": "python -m pdiff.envs.metaworld_goals",
        "metaworld_version": importlib.metadata.version("metaworld"),
        "seed": ML1_SEED,
        "goals": {**existing, **generate_goals(tasks)},
    }
    text = json.dumps(content, indent=2, sort_keys=True)
    # One goal per line keeps the file short and its diffs readable.
    text = re.sub(r"\[\s+([^\[\]\s,]+),\s+([^\[\]\s,]+),\s+([^\[\]\s,]+)\s+\]", r"[\1, \2, \3]", text)
    atomic_write_text(GOALS_PATH, text + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
