"""Which episodes one evaluation seed rolls out: every prompt of a task, each for one or more resets.

Where a task's episodes differ from reset to reset (MuJoCo's reset noise), each prompt is rolled out
`episodes` times with different reset seeds. Where they do not (Meta-World 3.1.1 ignores the reset seed and
fixes each task's start state), a repeated rollout is an identical copy, so each prompt is rolled out once
and what varies is the prompt: every few-shot prompt of the seed's episodes for the prompt-dt baseline,
`episodes` random prompts for the random-prompt control, the tuned prompt for a tune run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pdiff.data.batches import Segments, concat_segments


@dataclass
class EpisodePlan:
    """Rows for `rollout`: row i rolls out prompt row i on task `tasks[i]` once per seed in `resets[i]`."""

    tasks: list[int]
    prompts: Segments
    resets: list[list[int]]
    episode_numbers: list[list[int]]  # per row, the episode index each reset gets in episodes.csv

    def rows_of(self, task: int) -> list[int]:
        return [i for i, t in enumerate(self.tasks) if t == task]


def plan_episodes(
    tasks: list[int],
    prompts: dict[int, Segments],
    per_prompt: int,
    reset_seed: Callable[[int, int], int],
) -> EpisodePlan:
    """Every prompt row of each task, each for `per_prompt` resets; `reset_seed(task, episode)` numbers them."""
    rows, parts, resets, numbers = [], [], [], []
    for task in tasks:
        for p in range(len(prompts[task])):
            episodes = [p * per_prompt + e for e in range(per_prompt)]
            rows.append(task)
            parts.append(prompts[task].take(np.array([p])))
            resets.append([reset_seed(task, e) for e in episodes])
            numbers.append(episodes)
    return EpisodePlan(rows, concat_segments(parts), resets, numbers)
