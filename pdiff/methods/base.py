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

__all__ = ["TaskContext", "TaskResult", "load_fewshot"]


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
