"""What every tuning method receives for one (seed, test task), and what it returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pdiff.data.batches import PromptBank, Segments, SegmentSampler
from pdiff.data.fewshot import load_fewshot
from pdiff.eval.rollout import FrozenPolicy
from pdiff.methods.zero_shot import ZeroShotPrompts

__all__ = ["TaskContext", "TaskResult", "load_fewshot"]


@dataclass
class TaskContext:
    """The frozen policy plus the few-shot data of one test task, for one seed. Zero-shot (`--shots 0`)
    there is no few-shot data: `fewshot` and `fewshot_prompts` are None and `zero_shot` holds the training
    tasks' prompts instead (only the methods of pdiff.methods.zero_shot.ZERO_SHOT_METHODS run so)."""

    seed: int
    task: int
    policy: FrozenPolicy
    fewshot: SegmentSampler | None  # K-step segments of the task's few-shot episodes, normalised as the PLM
    fewshot_prompts: PromptBank | None  # tail prompts of the same episodes
    rng: np.random.Generator
    device: torch.device
    out_dir: Path  # where the method may store per-task weights
    settings: dict[str, Any] = field(default_factory=dict)
    zero_shot: ZeroShotPrompts | None = None


@dataclass
class TaskResult:
    prompt: Segments  # one row: the prompt the (frozen or tuned) model is evaluated with
    tunable_parameters: int
    metrics: dict[str, float] = field(default_factory=dict)
    # Weight-changing methods: the tuned Prompt-DT (its trainable parameters are what tune saves) and the
    # options its method's `attach` needs to rebuild it (see pdiff.methods.finetuning).
    model: torch.nn.Module | None = None
    options: dict[str, Any] = field(default_factory=dict)
