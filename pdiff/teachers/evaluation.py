"""Evaluation of a teacher: a deterministic policy on every task of its family, all episodes at once.

The envs are built once and reused, and every evaluation resets them with the same seeds, so successive
evaluations of a training run differ only by the policy (the curve is not blurred by start states).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pdiff.envs import TaskFamily

# act(observations (n, obs_dim), task conditions (n, c)) -> actions (n, act_dim)
ActFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


class TaskEvaluator:
    """`episodes` evaluation episodes of each of the family's tasks, stepped together (one policy call per
    step for every episode still running)."""

    def __init__(
        self, family: TaskFamily, *, episodes: int, seed: int, tasks: list[int] | None = None
    ) -> None:
        self.tasks = list(range(family.num_tasks)) if tasks is None else list(tasks)
        self.episode_tasks = np.repeat(self.tasks, episodes)
        self.conditions = np.stack([family.task_condition(t) for t in self.episode_tasks]).astype(np.float32)
        self.seeds = [
            int(np.random.SeedSequence([seed, task, episode]).generate_state(1)[0])
            for task in self.tasks
            for episode in range(episodes)
        ]
        self.envs = [family.make_env(int(task)) for task in self.episode_tasks]

    def evaluate(self, act: ActFn) -> dict[int, float]:
        """Mean undiscounted return per task."""
        obs = np.stack([env.reset(seed=seed)[0] for env, seed in zip(self.envs, self.seeds, strict=True)])
        returns = np.zeros(len(self.envs))
        running = np.ones(len(self.envs), dtype=bool)
        while running.any():
            index = np.flatnonzero(running)
            actions = act(obs[index], self.conditions[index])
            for action, i in zip(actions, index, strict=True):
                obs[i], reward, terminated, truncated, _ = self.envs[i].step(action)
                returns[i] += reward
                running[i] = not (terminated or truncated)
        return {task: float(returns[self.episode_tasks == task].mean()) for task in self.tasks}

    def close(self) -> None:
        for env in self.envs:
            env.close()
