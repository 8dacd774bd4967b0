"""Zero-shot adaptation (`tune --shots 0`, the paper's Table 3): no trajectory of the target task at all.

What stands in for the target data is our reading (reference paper.md §12 #13; the paper does not say): the
tail prompts of the *training* tasks' prompt-expert episodes, the ones the Prompt-DT was pretrained to read.
- prompt-diffuser generates the prompt with the trained diffusion model, not fine-tuned, conditioned on the
  returns-to-go and timesteps of a training task's tail prompt;
- prompt-dt, the zero-shot baseline, is prompted with a training task's real tail prompt.
Which training task (`zero_shot_source`, ours): `nearest`, the one nearest the target in task-parameter
space (every family of pdiff knows its tasks' parameters), or `pooled`, all of them (prompt-diffuser: the
mean returns-to-go and timesteps of their tails; prompt-dt: a random training task's prompt).
The other methods tune on the target's trajectories, so they have no zero-shot form.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from pdiff.data.batches import PromptBank, Segments
from pdiff.data.loader import load_family_data
from pdiff.envs.base import TaskFamily
from pdiff.errors import UsageError

if TYPE_CHECKING:
    from pdiff.eval.rollout import FrozenPolicy

ZERO_SHOT_METHODS = ("prompt-diffuser", "prompt-dt")
ZeroShotSource = Literal["nearest", "pooled"]
SOURCE_KIND = "prompt-expert"  # the training tasks' data zero-shot prompts come from


def check_zero_shot(method: str, shots: int) -> None:
    """UsageError (exit 2) when `--shots 0` is asked of a method that needs target trajectories to tune."""
    if shots == 0 and method not in ZERO_SHOT_METHODS:
        raise UsageError(
            f"--shots 0: {method} tunes on the target task's trajectories; zero-shot methods: "
            f"{', '.join(ZERO_SHOT_METHODS)}",
            hint=f"use --method {'|'.join(ZERO_SHOT_METHODS)} with --shots 0, or --shots N ≥ 1 with {method}",
        )


@dataclass
class ZeroShotPrompts:
    """The training tasks' tail prompts (normalised as the frozen Prompt-DT reads them), and which of them a
    target task's zero-shot prompt or condition comes from."""

    bank: PromptBank  # tails of the training tasks' prompt-expert episodes
    family: TaskFamily
    source: ZeroShotSource
    datasets: tuple[tuple[str, str], ...] = ()  # (dataset id, content sha256) of what the bank was cut from

    def sources(self, task: int) -> list[int]:
        """The training tasks a prompt for `task` may come from: never `task` itself (cheetah-dir trains on
        its test tasks; a zero-shot prompt must not be cut from the target's own trajectories)."""
        sources = [t for t in self.bank.tasks() if t != task]
        if not sources:
            raise UsageError(f"no training task other than task {task} to prompt it zero-shot",
                             hint="zero-shot needs a family with training tasks besides the test task")  # fmt: skip
        return sources

    def nearest_task(self, task: int) -> int:
        """The training task nearest `task` in task-parameter space (the lower id on a tie)."""
        return min(self.sources(task), key=lambda other: (self.family.task_distance(task, other), other))

    def prompt(self, task: int, rng: np.random.Generator) -> Segments:
        """prompt-dt's zero-shot prompt for `task`: one real tail prompt of a training task."""
        source = self.nearest_task(task) if self.source == "nearest" else int(rng.choice(self.sources(task)))
        return _for_target(self.bank.for_task(source, rng), task)

    def condition(self, task: int, rng: np.random.Generator) -> Segments:
        """prompt-diffuser's conditioning segment for `task`: only its returns-to-go and timesteps are read."""
        if self.source == "nearest":
            return _for_target(self.bank.for_task(self.nearest_task(task), rng), task)
        tails = self.bank.prompts.take(np.flatnonzero(np.isin(self.bank.prompts.tasks, self.sources(task))))
        first = tails.take(np.array([0]))
        mean = replace(
            first,
            states=np.zeros_like(first.states),
            actions=np.zeros_like(first.actions),
            rewards=np.zeros_like(first.rewards),
            returns_to_go=tails.returns_to_go.mean(axis=0, keepdims=True).astype(np.float32),
            timesteps=np.rint(tails.timesteps.mean(axis=0, keepdims=True)).astype(np.int64),
        )
        return _for_target(mean, task)

    def record(self) -> dict[str, object]:
        """What a tune run's summary says about its zero-shot prompts."""
        return {"source": self.source, "kind": SOURCE_KIND, "training_tasks": self.bank.tasks(),
                "reading": "ours (paper.md §12 #13)"}  # fmt: skip


def training_prompts(datasets_root: Path, family: TaskFamily, train_tasks: list[int], policy: FrozenPolicy,
                     source: ZeroShotSource) -> ZeroShotPrompts:  # fmt: skip
    """The tail prompts of the Prompt-DT's training tasks, normalised as `policy` reads them."""
    data = load_family_data(datasets_root, family.name, SOURCE_KIND, train_tasks)
    datasets = tuple(zip(data.dataset_ids, data.content_sha256, strict=True))
    return ZeroShotPrompts(policy.prompt_bank(data), family, source, datasets)


def _for_target(segment: Segments, task: int) -> Segments:
    return replace(segment, tasks=np.full(len(segment), task, dtype=np.int64))
