"""Which prompts each (seed, task) is evaluated with: a tune run's stored ones, the prompt-dt baseline's
few-shot tails, or noise (the random-prompt control); and how many (pdiff.rollouts.plan)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from pdiff.data.batches import Segments
from pdiff.data.fewshot import load_fewshot
from pdiff.envs.base import TaskFamily
from pdiff.rollouts.plan import in_turn, random_prompts
from pdiff.rollouts.rollout import FrozenPolicy
from pdiff.workspace.runs import Run


class PromptSettings(Protocol):
    """What of an eval config chooses the prompts (pdiff.stages.eval.EvalConfig has it)."""

    @property
    def prompt(self) -> str: ...  # auto | fewshot | random

    @property
    def shots(self) -> int: ...

    @property
    def data_kind(self) -> str: ...


def prompts_per_task(family: TaskFamily, settings: PromptSettings, stored: int = 1) -> int:
    """How many prompts each (seed, task) is evaluated with (pdiff.rollouts.plan): one where resets vary (it
    runs `episodes` times); else one per few-shot episode for every method alike, so that every cell of a
    family stands on as many rollouts; a zero-shot tune run's own count (`stored`, its most per (seed,
    task))."""
    if family.resets_vary:
        return 1
    return settings.shots or stored


def fewshot_baseline(settings: PromptSettings, tuned: Run | None) -> bool:
    """Whether the prompts are the seed's real few-shot prompts (`eval --prompt fewshot`, `tune -m prompt-dt`
    with shots; zero-shot, its prompts come from training tasks and are read from the tune run)."""
    if tuned is not None:
        return tuned.config["method"] == "prompt-dt" and tuned.config["shots"] > 0
    return settings.prompt == "fewshot"


def seed_prompts(
    datasets_dir: Path,
    family: TaskFamily,
    tasks: list[int],
    settings: PromptSettings,
    policy: FrozenPolicy,
    seed: int,
    tuned: Run | None,
    stored: dict[tuple[int, int], Segments] | None,
    count: int,
) -> dict[int, Segments]:
    """Each task's `count` prompts for seed `seed`: a tune run's stored ones in turn (ptdt's one learned
    prompt repeats), or the prompt-dt baseline's few-shot tails (every one where resets do not vary, else one
    drawn; a tune run's own draw), or noise (the random-prompt control)."""
    rng = np.random.default_rng([seed, 11])
    baseline = fewshot_baseline(settings, tuned)
    if stored is not None and (count == 1 or not baseline):
        return {t: in_turn(stored[(seed, t)], count) for t in tasks}
    if baseline:  # prompt-dt tune runs made before it stored every tail hold one: every tail is read again
        data = load_fewshot(datasets_dir, family.name, tasks, settings.data_kind, settings.shots, seed)
        bank = policy.prompt_bank(data)
        return {t: bank.all_for_task(t) if count > 1 else bank.for_task(t, rng) for t in tasks}
    length = policy.model.config.prompt_len
    return {t: random_prompts(family, length, count, rng) for t in tasks}
