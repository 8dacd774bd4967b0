"""The SAC teacher's training environment: each slot of the vector env plays a task drawn at every reset,
with the task's condition appended to the observation (what the task-conditioned teacher reads)."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium
import numpy as np

from pdiff.envs import TaskFamily
from pdiff.errors import UsageError


class RandomTaskEnv(gymnasium.Env):
    """One slot of the training vector env: every reset draws a task from the reset seed, builds that task's
    env if it is not the current one, and returns observation ‖ task condition (the teacher's input).

    `options={"replay_actions": per_slot_arrays}` replays those actions after the reset (used on resume).
    """

    def __init__(self, family: TaskFamily, slot: int) -> None:
        self.family = family
        self.slot = slot
        condition_dim = family.task_condition(0).shape[0]
        self.observation_space = gymnasium.spaces.Box(
            -np.inf, np.inf, shape=(family.obs_dim + condition_dim,), dtype=np.float32
        )
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, shape=(family.act_dim,), dtype=np.float32)
        self.task_id = -1
        self._env: gymnasium.Env | None = None
        self._condition = np.zeros(condition_dim, dtype=np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        task_id = int(self.np_random.integers(self.family.num_tasks))
        if task_id != self.task_id or self._env is None:
            if self._env is not None:
                self._env.close()
            self._env = self.family.make_env(task_id)
            _check_action_box(self._env.action_space, self.family)
            self.task_id, self._condition = task_id, self.family.task_condition(task_id)
        obs, info = self._env.reset(seed=int(self.np_random.integers(2**31)))
        for action in (options or {}).get("replay_actions", {}).get(self.slot, ()):
            obs, *_ = self._env.step(action)
        return self._with_condition(obs), {**info, "task_id": task_id}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self._env.step(action)
        return self._with_condition(obs), reward, terminated, truncated, info

    def _with_condition(self, obs: np.ndarray) -> np.ndarray:
        return np.concatenate((obs, self._condition)).astype(np.float32)

    def close(self) -> None:
        if self._env is not None:
            self._env.close()


def _check_action_box(space: gymnasium.spaces.Box, family: TaskFamily) -> None:
    if not (np.all(space.low == -1.0) and np.all(space.high == 1.0)):
        raise UsageError(
            f"{family.name} actions are not in [-1, 1]", hint="the SAC teacher squashes with tanh"
        )
