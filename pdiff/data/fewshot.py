"""The few-shot data of the test tasks: which of a task's episodes each seed adapts from.

A training task's few-shot episodes are drawn the same way, from its expert dataset: the one the Prompt-DT
and the diffusion model were trained on, so tuning on them measures how well the generator reproduces a
prompt it has seen (its fidelity), not how it does on a held-out task (`tasks_kind`).

Each seed draws its own N episodes per test task, so that a spread over seeds carries the variance of the
few-shot data too (the paper's "three seeds"). Seed s takes the s-th block of N consecutive episodes of the
task's dataset while the dataset holds enough of them, so seeds 0, 1, 2 get disjoint episodes when it holds
≥ 3N; past that, a seeded draw without replacement. Seed 0 always takes the first N episodes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from pdiff.data.loader import FamilyData, load_family_data
from pdiff.envs.base import TaskFamily
from pdiff.errors import UsageError

TasksKind = Literal["test", "training"]


def tasks_kind(family: TaskFamily, tasks: list[int]) -> TasksKind:
    """`test` when every task is one of the family's test tasks (on cheetah-dir those are training tasks
    too), else `training`: a run on tasks the models were trained on is a fidelity measurement, not a test."""
    return "test" if set(tasks) <= set(family.test_tasks) else "training"


def seed_episodes(available: int, shots: int, seed: int) -> np.ndarray:
    """Indices (into a task's `available` episodes) of the `shots` episodes that seed `seed` adapts from."""
    if shots < 1 or shots > available:
        raise ValueError(f"cannot draw {shots} of {available} episodes")
    if (seed + 1) * shots <= available:
        return np.arange(seed * shots, (seed + 1) * shots)
    return np.sort(np.random.default_rng([seed, 5]).choice(available, size=shots, replace=False))


def load_fewshot(
    datasets_root: Path, family: str, tasks: list[int], kind: str, shots: int, seed: int = 0
) -> FamilyData:
    """Seed `seed`'s `shots` episodes of each test task's `kind` dataset; too few is a usage error."""
    if shots < 1:
        raise UsageError(f"--shots {shots} must be at least 1", hint="use e.g. --shots 5")
    data = load_family_data(datasets_root, family, kind, tasks)
    chosen = []
    for task in sorted(tasks):
        episodes = data.task_episodes(task)
        if len(episodes) < shots:
            raise UsageError(
                f"--shots {shots} but task {task} of {family} has only {len(episodes)} {kind} episodes",
                hint=f"use --shots ≤ {len(episodes)}, or collect more: "
                f"pdiff collect --env {family} --episodes N",
            )
        chosen.append(episodes[seed_episodes(len(episodes), shots, seed)])
    return data.select_episodes(np.concatenate(chosen))


def fewshot_record(
    datasets_root: Path, family: str, tasks: list[int], kind: str, shots: int, seeds: list[int]
) -> dict[str, list[int] | dict[str, list[int]]]:
    """For a run's summary: the episode indices (within each task's dataset) behind each seed; one list per
    seed when every task holds as many episodes, else one per task."""
    data = load_family_data(datasets_root, family, kind, tasks)
    counts = {t: len(data.task_episodes(t)) for t in tasks}
    if len(set(counts.values())) == 1:
        return {f"seed-{s}": seed_episodes(counts[tasks[0]], shots, s).tolist() for s in seeds}
    return {
        f"seed-{s}": {str(t): seed_episodes(n, shots, s).tolist() for t, n in counts.items()} for s in seeds
    }
