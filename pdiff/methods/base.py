"""What every tuning method receives for one (seed, test task), and what it returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from pdiff.data.batches import PromptBank, Segments, SegmentSampler
from pdiff.envs.base import TaskFamily
from pdiff.methods.zero_shot import ZeroShotPrompts
from pdiff.rollouts.rollout import FrozenPolicy

Options = TypeVar("Options")


@dataclass(frozen=True)
class TuneSettings:
    """What a method is tuned with besides the data: the tune settings every method shares, and its own."""

    steps: int = 0  # tuning steps (ptdt: rounds)
    batch_size: int = 1  # few-shot segments per step
    lr: float | None = None  # the learning rate (ptdt: η); None where nothing is trained
    grad_clip: float | None = None
    # The method's own settings: its module's `Options` (prompt-diffuser: those resolved against the diffusion
    # model, diffusion_settings.Tuning); read them with TaskContext.options.
    options: Any = None
    family: TaskFamily | None = None  # online PTDT rolls its candidates out in it


@dataclass
class TaskContext:
    """The frozen policy plus the few-shot data of one test task, for one seed. Zero-shot (`--shots 0`, only
    the methods of pdiff.methods.zero_shot.ZERO_SHOT_METHODS) under `nearest`, the few-shot data is the
    nearest training task's episodes; under `none` there is none: `fewshot` and `fewshot_prompts` are None and
    `zero_shot` holds the training tasks' prompts instead."""

    seed: int
    task: int
    policy: FrozenPolicy
    fewshot: SegmentSampler | None  # K-step segments of the task's few-shot episodes, normalised as the PLM
    fewshot_prompts: PromptBank | None  # tail prompts of the same episodes
    rng: np.random.Generator
    device: torch.device
    out_dir: Path  # where the method may store per-task weights
    settings: TuneSettings = field(default_factory=TuneSettings)
    zero_shot: ZeroShotPrompts | None = None
    # Set by a selection trial (pdiff.methods.selection): called after every tuning step with the step number
    # and a builder of the result as it stands; True stops the tuning there (early stopping).
    after_step: Callable[[int, Callable[[], TaskResult]], bool] | None = None

    def options(self, kind: type[Options]) -> Options:
        """The method's own settings, as the type its module declares."""
        if not isinstance(self.settings.options, kind):
            raise TypeError(
                f"the context holds {type(self.settings.options).__name__} options, not {kind.__name__}"
            )
        return self.settings.options

    @property
    def torch_seed(self) -> int:
        """The (seed, task) job's seed for torch's global generator (new parameters' init, dropout, the
        diffusion noise), apart from `rng`'s draws."""
        return self.seed * 1000 + self.task

    def stop_after(self, step: int, current: Callable[[], TaskResult]) -> bool:
        """Whether tuning stops after `step` (never outside a selection trial)."""
        return self.after_step is not None and self.after_step(step, current)

    # Where the family's resets do not vary (Meta-World), one rollout per prompt is all a prompt can show, so
    # the result holds one prompt per few-shot episode and eval rolls out each (pdiff.rollouts.plan).
    prompt_per_episode: bool = False

    def fewshot_tails(self) -> Segments:
        """The few-shot tail prompts a result is evaluated with or conditioned on: every one of the task's
        with `prompt_per_episode`, else one drawn at random."""
        assert self.fewshot_prompts is not None
        if self.prompt_per_episode:
            return self.fewshot_prompts.all_for_task(self.task)
        return self.fewshot_prompts.for_task(self.task, self.rng)


@dataclass
class TaskResult:
    prompt: (
        Segments  # the prompt(s) the (frozen or tuned) model is evaluated with: one row, or one per episode
    )
    tunable_parameters: int
    metrics: dict[str, float] = field(default_factory=dict)
    # Weight-changing methods: the tuned Prompt-DT (its trainable parameters are what tune saves) and the
    # options its method's `attach` needs to rebuild it (see pdiff.methods.finetuning).
    model: torch.nn.Module | None = None
    options: dict[str, Any] = field(default_factory=dict)
