"""An evaluation's scores: raw return, the normalised score 100·(R − R_random)/(R_expert − R_random) with the
references stored in the task's expert dataset, and the success rate on Meta-World; each averaged over the
tasks per seed, then mean ± sample std over seeds, with the (seeds × tasks) scores and the number of distinct
rollouts for the report's intervals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pdiff.data.minari_format import dataset_dir, dataset_id, latest_version
from pdiff.data.minari_read import read_metadata
from pdiff.envs.base import TaskFamily
from pdiff.rollouts.rollout import EpisodeResult
from pdiff.stats import sample_std

Reference = tuple[float | None, float | None]
"""A task's (random, expert) returns; None where not collected."""


def reference_returns(datasets_dir: Path, family: TaskFamily, task: int) -> Reference:
    """Random and expert returns stored with the task's expert dataset (None when not collected)."""
    version = latest_version(datasets_dir, family.name, task, "expert")
    if version is None:
        return None, None
    block = read_metadata(dataset_dir(datasets_dir, dataset_id(family.name, task, "expert", version)))[
        "pdiff"
    ]
    return block.get("ref_random_return"), block.get("ref_expert_return")


def normalised(value: float, reference: Reference) -> float | None:
    low, high = reference
    if low is None or high is None or high == low:
        return None
    return 100.0 * (value - low) / (high - low)


def summarise(
    seeds: list[int],
    tasks: list[int],
    episodes: list[EpisodeResult],
    seed_of: list[int],
    references: dict[int, Reference],
) -> dict[str, Any]:
    """The scores of `episodes` (`seed_of`: the seed of each) over `seeds` and `tasks`."""
    # (seeds × tasks) matrices: the report's intervals resample whole seeds, tasks kept together (pdiff.stats)
    by_seed_task: dict[str, list[list[float]]] = {"return": [], "normalized": [], "success_rate": []}
    per_task: dict[int, dict[str, Any]] = {}
    for seed in seeds:
        task_returns, task_norm, task_success = [], [], []
        for task in tasks:
            eps = [e for e, s in zip(episodes, seed_of, strict=True) if s == seed and e.task == task]
            mean_return = float(np.mean([e.episode_return for e in eps]))
            task_returns.append(mean_return)
            task_norm.append(normalised(mean_return, references[task]))
            if eps[0].success is not None:
                task_success.append(float(np.mean([bool(e.success) for e in eps])))
        by_seed_task["return"].append(task_returns)
        if all(v is not None for v in task_norm):
            by_seed_task["normalized"].append(task_norm)
        if task_success:
            by_seed_task["success_rate"].append(task_success)
    by_seed_task = {k: v for k, v in by_seed_task.items() if len(v) == len(seeds)}
    per_seed = {key: [float(np.mean(row)) for row in rows] for key, rows in by_seed_task.items()}
    for task in tasks:
        eps = [e for e in episodes if e.task == task]
        mean_return = float(np.mean([e.episode_return for e in eps]))
        per_task[task] = {
            "return_mean": mean_return,
            "return_std": sample_std([e.episode_return for e in eps]),
            "normalized": normalised(mean_return, references[task]),
            "n_episodes": len(eps),
            "ref_random_return": references[task][0],
            "ref_expert_return": references[task][1],
        }
        if eps[0].success is not None:
            per_task[task]["success_rate"] = float(np.mean([bool(e.success) for e in eps]))
    summary: dict[str, Any] = {
        "scores": "raw returns; normalized = 100·(R − R_random)/(R_expert − R_random); "
        "std over seeds with ddof 1; by_seed_task: [seed][task] means over episodes"
    }
    for key, values in per_seed.items():
        summary[f"{key}_mean"] = float(np.mean(values))
        summary[f"{key}_std"] = sample_std(values)
        summary[f"{key}_per_seed"] = values
    summary["by_seed_task"] = by_seed_task
    # identical rollouts (Meta-World ignores reset seeds; a prompt fixes the policy) count once
    summary["distinct_rollouts"] = len({(e.task, round(e.episode_return, 6), e.length) for e in episodes})
    summary["per_task"] = {str(t): v for t, v in per_task.items()}
    return summary
