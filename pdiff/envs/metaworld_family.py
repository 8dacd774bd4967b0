"""`metaworld-<task>` families: Meta-World 3.1.1 ML1 tasks as Prompt-DT defines them (docs/families.md,
§9.3).

Task i is `ML1(f"{task}-v3", seed=1).train_tasks[i]` set on a fresh env of the benchmark's train class; the
goal is hidden from the observation (obs[-3:] == 0) and the reward is the env's own. Both train and test
ids index `train_tasks`, as in the reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pdiff.envs.base import TaskFamily, TaskParams, complement, render_kwargs
from pdiff.envs.metaworld_goals import check_live_goal, frozen_goal
from pdiff.envs.metaworld_ml1 import ML1_SEED, ml1_benchmark

if TYPE_CHECKING:
    import gymnasium

NUM_TASKS = 50
TEST_TASKS = (11, 17, 25, 36, 41)  # Prompt-DT's ML1 pick-place split, reused for every task
DEFAULT_HORIZON = 100  # ours (the paper does not say; docs/families.md); the env itself allows 500
MAX_HORIZON = 500  # the env's max_path_length: a 501st step raises until reset
RTG_SCALE = 650.0
EVAL_TARGET = 650.0
FAMILY_PREFIX = "metaworld-"


@dataclass(frozen=True)
class MetaWorldFamily(TaskFamily):
    """One ML1 task: 50 goals (or goal + object positions), the goal hidden from the observation."""

    @property
    def scripted_expert(self) -> bool:
        return True

    @property
    def task(self) -> str:
        """The Meta-World task name, e.g. "reach" (the env is `reach-v3`)."""
        return self.name.removeprefix(FAMILY_PREFIX)

    @property
    def resets_vary(self) -> bool:
        return False  # Meta-World 3.1.1 ignores reset(seed) and each task fixes its start state

    @property
    def max_horizon(self) -> int:
        return MAX_HORIZON  # the env raises on a step past its max_path_length

    def goal(self, task_id: int) -> np.ndarray:
        """The (hidden) goal position of task `task_id`, from the frozen goal file."""
        return frozen_goal(self.task, self.check_task_id(task_id))

    def task_params(self, task_id: int) -> TaskParams:
        return {"goal": self.goal(task_id).tolist()}

    def task_condition(self, task_id: int) -> np.ndarray:
        return self.goal(task_id).astype(np.float32)

    @property
    def description(self) -> str:
        return f"{self.simulator}: 50 goals, goal hidden in the observation, success in info"

    def make_env(
        self,
        task_id: int,
        *,
        horizon: int | None = None,
        render_mode: str | None = None,
        terminate_when_unhealthy: bool = True,
        camera_name: str | None = None,
        render_size: tuple[int, int] | None = None,
    ) -> gymnasium.Env:
        from gymnasium.wrappers import TimeLimit

        from pdiff.envs.wrappers import MetaWorldTaskEnv

        task_id = self.check_task_id(task_id)
        horizon = self.resolve_horizon(horizon, max_horizon=MAX_HORIZON)
        raw = self.make_raw_env(
            task_id, render_mode=render_mode, camera_name=camera_name, render_size=render_size
        )
        return TimeLimit(MetaWorldTaskEnv(raw, camera_name=camera_name), max_episode_steps=horizon)

    def make_raw_env(
        self,
        task_id: int,
        *,
        render_mode: str | None = None,
        camera_name: str | None = None,
        render_size: tuple[int, int] | None = None,
    ) -> Any:
        """The bare Meta-World env (float64 obs, 500-step limit) with the task set and its goal checked."""
        task_id = self.check_task_id(task_id)
        benchmark = ml1_benchmark(self.task)
        raw = benchmark.train_classes[f"{self.task}-v3"](
            **render_kwargs(render_mode, camera_name, render_size)
        )
        raw.set_task(benchmark.train_tasks[task_id])
        raw.reset()  # the goal is placed at reset
        check_live_goal(self.task, task_id, np.asarray(raw._target_pos))
        return raw


def metaworld_family(task: str) -> MetaWorldFamily:
    return MetaWorldFamily(
        name=f"{FAMILY_PREFIX}{task}",
        simulator=f"Meta-World ML1 {task}-v3 (seed {ML1_SEED})",
        num_tasks=NUM_TASKS,
        train_tasks=complement(NUM_TASKS, TEST_TASKS),
        test_tasks=TEST_TASKS,
        horizon=DEFAULT_HORIZON,
        obs_dim=39,
        act_dim=4,
        rtg_scale=RTG_SCALE,
        eval_target=EVAL_TARGET,
    )
