"""The learning curve that training budgets are sized by: the model being trained, rolled out on some of
its *training* tasks with one of their own prompt-expert prompts. A test task's return never enters it, so
a budget read off this curve has not looked at what the study measures.

The prompts and reset seeds are drawn once, so two points of the curve differ only in the weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pdiff.data.batches import PromptBank, Segments
from pdiff.envs.base import TaskFamily
from pdiff.eval.rollout import FrozenPolicy, rollout


@dataclass(frozen=True)
class TrainingTaskCurve:
    family: TaskFamily
    tasks: list[int]
    prompts: Segments  # one row per task
    resets: list[list[int]]  # reset seeds per task
    horizon: int

    @classmethod
    def build(cls, family: TaskFamily, bank: PromptBank, train_tasks: list[int], count: int, episodes: int,
              seed: int) -> TrainingTaskCurve:  # fmt: skip
        """`count` training tasks spread evenly over `train_tasks`, `episodes` episodes each."""
        picked = [
            train_tasks[i]
            for i in np.linspace(0, len(train_tasks) - 1, min(count, len(train_tasks))).astype(int)
        ]
        rng = np.random.default_rng([seed, 23])  # a stream of its own: the training draws are unchanged
        prompts = bank.sample(rng, np.array(picked))
        resets = [[int(s) for s in rng.integers(0, 2**31 - 1, size=episodes)] for _ in picked]
        return cls(family, picked, prompts, resets, family.horizon)

    @torch.no_grad()
    def measure(self, policy: FrozenPolicy) -> dict[str, float]:
        """Mean return (and success rate where the family has one) of the model under training, read
        through `policy` (which wraps it); the model is left in train mode."""
        try:
            results = rollout(self.family, policy, self.prompts.to_prompt(), self.tasks, self.resets,
                              horizon=self.horizon)  # fmt: skip
        finally:
            policy.model.train()
        metrics = {"train_task_return": float(np.mean([r.episode_return for r in results]))}
        if results[0].success is not None:
            metrics["train_task_success"] = float(np.mean([bool(r.success) for r in results]))
        return metrics
