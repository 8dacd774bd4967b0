"""Building each (seed, test task)'s TaskContext from a tune config: the shared settings (SharedTuneConfig),
the method's own options (prompt-diffuser's resolved against its diffusion model) and what the selection
protocol chose."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pdiff.compute import Compute
from pdiff.console import StageProgress
from pdiff.data.loader import FamilyData
from pdiff.envs.base import TaskFamily
from pdiff.methods.base import TaskContext, TuneSettings
from pdiff.methods.diffusion_settings import load_tuning
from pdiff.methods.registry import METHODS
from pdiff.methods.selection import (
    Curve,
    EarlyStopping,
    Selection,
    candidates,
    grid_for,
    select,
    with_overrides,
)
from pdiff.methods.shared_config import SharedTuneConfig
from pdiff.methods.zero_shot import ZeroShotPrompts
from pdiff.rollouts.rollout import FrozenPolicy


def fallback_lr(config: SharedTuneConfig) -> float | None:
    """`lr`, else the method's default: what tuning uses when the selection protocol does not choose (one
    shot leaves nothing to hold out)."""
    return config.lr if config.lr is not None else METHODS[config.method].DEFAULT_LR


def method_settings(
    config: SharedTuneConfig, family: TaskFamily, diffusion: Path | None, compute: Compute
) -> TuneSettings:
    """What the method is tuned with; `diffusion`: the checkpoint of prompt-diffuser's diffusion model."""
    options: Any = config.options()
    if diffusion is not None:
        options = load_tuning(options, diffusion, compute)
    return TuneSettings(
        steps=config.steps,
        batch_size=config.batch_size,
        lr=fallback_lr(config),
        grad_clip=config.grad_clip,
        options=options,
        family=family,
    )


def task_context(
    policy: FrozenPolicy,
    data: FamilyData | None,
    seed: int,
    task: int,
    settings: TuneSettings,
    device: Any,
    out_dir: Path,
    stream: int = 3,
    zero_shot: ZeroShotPrompts | None = None,
    prompt_per_episode: bool = False,
) -> TaskContext:
    """One (seed, task)'s tuning inputs (zero-shot: no few-shot `data`, the training tasks' prompts instead);
    `stream` keeps the selection's random draws apart from the final tuning's, so selecting does not change
    what the chosen setting then does; `prompt_per_episode`: see TaskContext."""
    return TaskContext(
        seed=seed,
        task=task,
        policy=policy,
        fewshot=policy.segment_sampler(data) if data is not None else None,
        fewshot_prompts=policy.prompt_bank(data) if data is not None else None,
        rng=np.random.default_rng([seed, task, stream]),
        device=device,
        out_dir=out_dir,
        settings=settings,
        zero_shot=zero_shot,
        prompt_per_episode=prompt_per_episode,
    )


def choose_settings(
    config: SharedTuneConfig,
    jobs: list[tuple[int, int]],
    fewshot: dict[int, FamilyData],
    settings: dict[int, TuneSettings],
    policies: dict[int, FrozenPolicy],
    device: Any,
    known: Callable[[dict[str, float], int, int], Curve | None] | None = None,
    record: Callable[[dict[str, float], int, int, Curve], None] | None = None,
) -> Selection | None:
    """The selection protocol's choice of settings and steps (None when it is off, nothing is trained, or one
    shot leaves nothing to hold out); `known` and `record` reuse and keep finished trials (see `select`).
    Under torchrun every rank selects alike, so all reach the same choice."""
    trains = config.steps > 0 and config.options().trains()
    # zero-shot `nearest` tunes on the nearest training task's episodes as on that many few-shot ones
    episodes = [len(d.task_episodes(t)) for d in fewshot.values() for t in d.tasks()]
    shots = config.shots or min(episodes, default=0)
    if config.selection != "holdout" or shots < 2 or not grid_for(config.method) or not trains:
        return None
    with tempfile.TemporaryDirectory() as scratch:

        def context_for(seed: int, task: int, data: FamilyData, trial: dict[str, Any]) -> TaskContext:
            return task_context(
                policies[seed],
                data,
                seed,
                task,
                with_overrides(settings[seed], trial),
                device,
                Path(scratch),
                stream=4,
            )

        trials = len(candidates(grid_for(config.method))) * len(jobs)
        with StageProgress(f"select {config.method} settings", total=max(trials, 1), unit="trials") as bar:
            kept = {"known": known, "record": record} if known is not None and record is not None else {}
            rule = EarlyStopping(every=config.eval_every, patience=config.patience, cap=config.steps)
            return select(
                METHODS[config.method],
                config.method,
                jobs,
                fewshot.__getitem__,
                context_for,
                policies.__getitem__,
                device,
                rule,
                on_trial=lambda reused: bar.update(1, reused=reused),
                **kept,
            )
