"""What every tuning method receives for one (seed, test task), and what it returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pdiff.data.batches import PromptBank, Segments, SegmentSampler
from pdiff.eval.rollout import FrozenPolicy


@dataclass
class TaskContext:
    """The frozen policy plus the few-shot data of one test task, for one seed."""

    seed: int
    task: int
    policy: FrozenPolicy
    fewshot: SegmentSampler  # K-step segments of the task's few-shot episodes (normalised like the PLM)
    fewshot_prompts: PromptBank  # tail prompts of the same episodes
    rng: np.random.Generator
    device: torch.device
    out_dir: Path  # where the method may store per-task weights
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskResult:
    prompt: Segments  # one row: the prompt the (frozen or tuned) model is evaluated with
    tunable_parameters: int
    metrics: dict[str, float] = field(default_factory=dict)
    # Weight-changing methods: the tuned Prompt-DT (its trainable parameters are what tune saves) and the
    # options its method's `attach` needs to rebuild it (see pdiff.methods.finetuning).
    model: torch.nn.Module | None = None
    options: dict[str, Any] = field(default_factory=dict)


def load_fewshot(datasets_root: Path, family: str, tasks: list[int], kind: str, shots: int):  # noqa: ANN201
    """The first `shots` episodes of each test task's `kind` dataset; too few is a usage error."""
    from pdiff.data.loader import load_family_data
    from pdiff.errors import UsageError

    if shots < 1:
        raise UsageError(f"--shots {shots} must be at least 1", hint="use e.g. --shots 5")
    data = load_family_data(datasets_root, family, kind, tasks, max_episodes_per_task=shots)
    for task in tasks:
        have = len(data.task_episodes(task))
        if have < shots:
            raise UsageError(
                f"--shots {shots} but task {task} of {family} has only {have} {kind} episodes",
                hint=f"use --shots ≤ {have}, or collect more: pdiff collect --env {family} --episodes N",
            )
    return data
