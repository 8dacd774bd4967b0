"""The learning curve that training budgets are sized by: the model being trained, rolled out on some of
its *training* tasks, each with a prompt of its own (one of its prompt-expert tails, or one generated from
it). A test task's return never enters it, so a budget read off this curve has not looked at what the study
measures.

The tails and reset seeds are drawn once, so two points of the curve differ only in the weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from pdiff.data.batches import PromptBank, Segments
from pdiff.envs.base import TaskFamily
from pdiff.errors import UsageError
from pdiff.rollouts.rollout import FrozenPolicy, rollout

PromptSource = Callable[[Segments], Segments]
"""The drawn tails (one row per task) → the prompts rolled out with (e.g. generated, conditioned on them)."""


@dataclass(frozen=True)
class TrainingTaskCurve:
    family: TaskFamily
    tasks: list[int]
    prompts: Segments  # one prompt-expert tail per task
    resets: list[list[int]]  # reset seeds per task
    horizon: int

    @classmethod
    def build(
        cls,
        family: TaskFamily,
        bank: PromptBank,
        train_tasks: list[int],
        count: int,
        episodes: int,
        seed: int,
    ) -> TrainingTaskCurve:
        """`count` of the family's training tasks among `train_tasks` (a full-data model also trains on the
        test tasks: those are left out), spread evenly, `episodes` episodes each."""
        eligible = [t for t in train_tasks if t in set(family.train_tasks)]
        if not eligible:
            raise UsageError(
                f"no training task of {family.name} to draw the learning curve on",
                hint="turn the curve off (curve_every unset)",
            )
        picked = [
            eligible[i] for i in np.linspace(0, len(eligible) - 1, min(count, len(eligible))).astype(int)
        ]
        rng = np.random.default_rng([seed, 23])  # a stream of its own: the training draws are unchanged
        prompts = bank.sample(rng, np.array(picked))
        resets = [[int(s) for s in rng.integers(0, 2**31 - 1, size=episodes)] for _ in picked]
        return cls(family, picked, prompts, resets, family.horizon)

    @torch.no_grad()
    def measure(self, policy: FrozenPolicy, source: PromptSource | None = None) -> dict[str, float]:
        """Mean return (and success rate where the family has one) of `policy` prompted with the drawn tails,
        or with what `source` makes of them; the Prompt-DT is left in the mode (train or eval) it was in."""
        training = policy.model.training
        prompts = self.prompts if source is None else source(self.prompts)
        try:
            results = rollout(
                self.family, policy, prompts.to_prompt(), self.tasks, self.resets, horizon=self.horizon
            )
        finally:
            policy.model.train(training)
        metrics = {"train_task_return": float(np.mean([r.episode_return for r in results]))}
        if results[0].success is not None:
            metrics["train_task_success"] = float(np.mean([bool(r.success) for r in results]))
        return metrics
