"""Rolling out every seed's planned episodes (pdiff.rollouts.plan): prompt-only methods in one batched model
call per step for all tasks, a weight-tuned method with each (seed, task)'s own model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from pdiff.console import StageProgress
from pdiff.data.batches import Segments
from pdiff.envs.base import TaskFamily
from pdiff.models.prompt_dt import PromptDT
from pdiff.rollouts.plan import episode_seed, plan_episodes
from pdiff.rollouts.rollout import EpisodeResult, FrozenPolicy, rollout
from pdiff.rollouts.simulators import EnvPool

TunedModel = Callable[[int, int], PromptDT]
"""(seed, task) → that adaptation's model, rebuilt from the seed's frozen Prompt-DT and its tuned tensors."""


def roll_out_seeds(
    family: TaskFamily,
    policies: dict[int, FrozenPolicy],
    tasks: list[int],
    prompts: dict[int, dict[int, Segments]],
    episodes: int,
    horizon: int,
    *,
    tuned_model: TunedModel | None = None,
    video: int = 0,
    workers: int = 1,
) -> tuple[list[EpisodeResult], list[int]]:
    """Every seed's episodes in plan order, and the seed of each. `prompts`: seed → task → its prompt rows,
    each rolled out `episodes` times where resets vary; `video`: record the first N episodes of each task
    (first seed); `workers`: processes stepping the simulators."""
    per_prompt = episodes if family.resets_vary else 1  # Meta-World: a repeat is an identical copy
    rows = sum(len(by_task[task]) for by_task in prompts.values() for task in tasks)
    results: list[EpisodeResult] = []
    seed_of: list[int] = []
    with (
        StageProgress(f"eval {family.name}", total=rows * per_prompt * horizon, unit="episode steps") as bar,
        EnvPool(workers) as pool,
    ):
        for s, (seed, by_task) in enumerate(prompts.items()):
            bar.label(f"eval {family.name} seed {seed} (tasks {','.join(map(str, tasks))})")
            policy = policies[seed]
            plan = plan_episodes(
                tasks, by_task, per_prompt, lambda task, e, seed=seed: episode_seed(seed, task, e)
            )
            render = video if s == 0 else 0
            if tuned_model is not None:
                seed_results = []
                for task in tasks:  # one model per task: one rollout per task
                    bar.label(f"eval {family.name} seed {seed} task {task}")
                    task_rows = plan.rows_of(task)
                    seed_results += rollout(
                        family,
                        replace(policy, model=tuned_model(seed, task)),
                        plan.prompts.take(np.array(task_rows)).to_prompt(),
                        [task] * len(task_rows),
                        [plan.resets[i] for i in task_rows],
                        horizon=horizon,
                        render_episodes=render,
                        on_step=bar.update,
                        pool=pool,
                    )
            else:
                seed_results = rollout(
                    family,
                    policy,
                    plan.prompts.to_prompt(),
                    plan.tasks,
                    plan.resets,
                    horizon=horizon,
                    render_episodes=render,
                    on_step=bar.update,
                    pool=pool,
                )
            numbers = (n for row in plan.episode_numbers for n in row)
            for result, number in zip(seed_results, numbers, strict=True):
                result.episode = number  # rows come back in plan order, grouped by task either way
            results += seed_results
            seed_of += [seed] * len(seed_results)
    return results, seed_of
