"""Which episodes one evaluation seed rolls out: every prompt of a task, each for one or more resets.

Where a task's episodes differ from reset to reset (MuJoCo's reset noise), one prompt is rolled out `episodes`
times with different reset seeds. Where they do not (Meta-World 3.1.1 ignores the reset seed and fixes each
task's start state), a repeated rollout is an identical copy, so each prompt is rolled out once and what
varies is the prompt: every (seed, task) runs as many prompts as there are few-shot episodes, whatever the
method, so every cell of a family stands on as many rollouts. The prompt-dt baseline runs each few-shot
prompt, Prompt Diffuser the prompt it generated from each, a weight-tuned model each few-shot prompt, and the
random-prompt control as many random prompts. A method that learns one prompt repeats it (ptdt), or ignores
the prompt it is given (soft-prompt, whose learned embeddings replace it): those rollouts count as episodes
but are copies, and `distinct_rollouts` says how many differ.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pdiff.data.batches import Segments, concat_segments
from pdiff.envs.base import TaskFamily

EVAL_STREAM = (
    0x5EED_E7A1  # a spawn key of its own: eval's resets never coincide with collect's by construction
)


def episode_seed(seed: int, task: int, episode: int) -> int:
    """The reset seed of one evaluation episode (drawn apart from collect's, pdiff.collection.behaviour)."""
    sequence = np.random.SeedSequence(seed, spawn_key=(EVAL_STREAM, task, episode))
    return int(sequence.generate_state(1)[0] & 0x7FFFFFFF)


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
    """Every prompt row of each task, each for `per_prompt` resets; `reset_seed(task, episode)` numbers
    them."""
    rows, parts, resets, numbers = [], [], [], []
    for task in tasks:
        for p in range(len(prompts[task])):
            episodes = [p * per_prompt + e for e in range(per_prompt)]
            rows.append(task)
            parts.append(prompts[task].take(np.array([p])))
            resets.append([reset_seed(task, e) for e in episodes])
            numbers.append(episodes)
    return EpisodePlan(rows, concat_segments(parts), resets, numbers)


def in_turn(prompts: Segments, count: int) -> Segments:
    """`count` rows cycling through `prompts` (a tune run's one learned prompt, repeated; or the first
    `count`)."""
    return prompts.take(np.arange(count) % len(prompts))


def random_prompts(family: TaskFamily, prompt_len: int, count: int, rng: np.random.Generator) -> Segments:
    """Noise in place of a prompt: states N(0, 1) in normalised space, actions and returns uniform."""
    return Segments(
        states=rng.normal(size=(count, prompt_len, family.obs_dim)).astype(np.float32),
        actions=rng.uniform(-1, 1, size=(count, prompt_len, family.act_dim)).astype(np.float32),
        rewards=np.zeros((count, prompt_len), np.float32),
        returns_to_go=rng.uniform(0, 1, size=(count, prompt_len, 1)).astype(np.float32),
        timesteps=np.tile(np.arange(prompt_len), (count, 1)).astype(np.int64),
        mask=np.ones((count, prompt_len), np.float32),
        tasks=np.full(count, -1, np.int64),
    )
