"""The MuJoCo locomotion families of Prompt-DT on gymnasium v5: cheetah-vel, cheetah-dir and ant-dir.

Definitions follow Prompt-DT's (docs/families.md): HalfCheetah-v5 with ctrl_cost_weight 0.05 and a
20-dim observation (qpos[1:] ‖ qvel ‖ torso xyz), Ant-v5 with the construction flags of §9.2 (27-dim
observation). The rewards are rebuilt from the step info the v5 envs already report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pdiff.envs.base import TaskFamily, TaskParams, complement, render_kwargs

if TYPE_CHECKING:
    import gymnasium

# Goal angles (radians) of Prompt-DT's ant_dir tasks 0..49, the table of Prompt-DT's released task files
# (the same draws from U(0, 2π) as MACAW's).
ANT_DIR_GOAL_ANGLES: tuple[float, ...] = (
    1.2034,
    0.4266,
    4.9448,
    4.1239,
    4.0057,
    3.6166,
    0.2454,
    2.2482,
    5.9419,
    0.3773,
    5.4289,
    5.5122,
    0.3217,
    4.0993,
    3.4668,
    3.7543,
    3.0381,
    1.7781,
    1.8707,
    3.5281,
    2.4884,
    4.9556,
    2.6294,
    0.9042,
    0.9482,
    0.3471,
    4.5116,
    1.8367,
    1.2489,
    5.2236,
    3.5688,
    0.5174,
    3.4243,
    0.9988,
    4.2522,
    0.7444,
    2.7960,
    5.5794,
    5.0094,
    0.4271,
    6.0368,
    4.1419,
    4.5162,
    4.6720,
    5.5778,
    0.8416,
    4.8819,
    5.2653,
    5.2107,
    0.1832,
)

CHEETAH_CTRL_COST = 0.05
CHEETAH_VEL_STEP = 0.075  # v_goal = 0.075 * (i + 1), i.e. linspace(0.075, 3.0, 40)
CHEETAH_DIRECTIONS = (1.0, -1.0)  # task 0 runs forward, task 1 backward


def _time_limited(env: gymnasium.Env, horizon: int) -> gymnasium.Env:
    from gymnasium.wrappers import TimeLimit

    return TimeLimit(env, max_episode_steps=horizon)


@dataclass(frozen=True)
class _HalfCheetahFamily(TaskFamily):
    """HalfCheetah-v5 with a 0.05 control cost, its reward rebuilt for a goal velocity or a direction."""

    def cheetah_goal(self, task_id: int) -> dict[str, float | None]:
        """`goal_vel` and `direction` of task `task_id`, one of them None."""
        raise NotImplementedError(f"{type(self).__name__} does not define cheetah_goal")

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
        from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv

        from pdiff.envs.wrappers import HalfCheetahTaskEnv

        bare = HalfCheetahEnv(
            ctrl_cost_weight=CHEETAH_CTRL_COST, **render_kwargs(render_mode, camera_name, render_size)
        )
        task = HalfCheetahTaskEnv(bare, **self.cheetah_goal(task_id))
        return _time_limited(task, self.resolve_horizon(horizon))


@dataclass(frozen=True)
class CheetahVelFamily(_HalfCheetahFamily):
    """HalfCheetah running at a target velocity: r = −|v − v_goal| − 0.05‖a‖²."""

    def goal_vel(self, task_id: int) -> float:
        return round(CHEETAH_VEL_STEP * (self.check_task_id(task_id) + 1), 6)

    def task_params(self, task_id: int) -> TaskParams:
        return {"goal_vel": self.goal_vel(task_id)}

    def task_condition(self, task_id: int) -> np.ndarray:
        return np.array([self.goal_vel(task_id) / 3.0], dtype=np.float32)

    def cheetah_goal(self, task_id: int) -> dict[str, float | None]:
        return {"goal_vel": self.goal_vel(task_id), "direction": None}

    @property
    def description(self) -> str:
        return f"{self.simulator}: run at v_goal = 0.075·(i+1) m/s, reward −|v − v_goal| − 0.05‖a‖²"


@dataclass(frozen=True)
class CheetahDirFamily(_HalfCheetahFamily):
    """HalfCheetah running forward (task 0) or backward (task 1): r = d·v − 0.05‖a‖²."""

    def direction(self, task_id: int) -> float:
        return CHEETAH_DIRECTIONS[self.check_task_id(task_id)]

    def task_params(self, task_id: int) -> TaskParams:
        return {"direction": self.direction(task_id)}

    def task_condition(self, task_id: int) -> np.ndarray:
        return np.array([self.direction(task_id)], dtype=np.float32)

    def cheetah_goal(self, task_id: int) -> dict[str, float | None]:
        return {"goal_vel": None, "direction": self.direction(task_id)}

    @property
    def description(self) -> str:
        return f"{self.simulator}: run forward (d=+1) or backward (d=−1), reward d·v − 0.05‖a‖²"


@dataclass(frozen=True)
class AntDirFamily(TaskFamily):
    """Ant walking along goal angle g: r = (cos g, sin g)·v_xy − 0.5‖a‖² − 5e-4·contact + 1·healthy."""

    def goal_angle(self, task_id: int) -> float:
        return ANT_DIR_GOAL_ANGLES[self.check_task_id(task_id)]

    def task_params(self, task_id: int) -> TaskParams:
        return {"goal_angle": self.goal_angle(task_id)}

    def task_condition(self, task_id: int) -> np.ndarray:
        angle = self.goal_angle(task_id)
        return np.array([math.cos(angle), math.sin(angle)], dtype=np.float32)

    def task_distance(self, a: int, b: int) -> float:
        """The angle between the two goal directions (on the circle: 0.1 and 2π − 0.1 are 0.2 apart)."""
        gap = abs(self.goal_angle(a) - self.goal_angle(b)) % (2 * math.pi)
        return min(gap, 2 * math.pi - gap)

    @property
    def terminates_early(self) -> bool:
        return True

    @property
    def description(self) -> str:
        return f"{self.simulator}: walk along one of 50 goal angles, ends when the torso leaves z ∈ [0.2, 1]"

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
        from gymnasium.envs.mujoco.ant_v5 import AntEnv

        from pdiff.envs.wrappers import AntDirEnv

        angle = self.goal_angle(task_id)
        bare = AntEnv(
            include_cfrc_ext_in_observation=False,  # 27-dim observation, as the reference
            ctrl_cost_weight=0.5,
            contact_cost_weight=5e-4,
            healthy_reward=1.0,
            terminate_when_unhealthy=terminate_when_unhealthy,
            healthy_z_range=(0.2, 1.0),
            contact_force_range=(-1.0, 1.0),
            reset_noise_scale=0.1,
            **render_kwargs(render_mode, camera_name, render_size),
        )
        return _time_limited(AntDirEnv(bare, goal_angle=angle), self.resolve_horizon(horizon))


CHEETAH_VEL_TEST = (2, 7, 15, 23, 26)
ANT_DIR_TEST = (6, 17, 23, 30, 41)

CHEETAH_VEL = CheetahVelFamily(
    name="cheetah-vel",
    simulator="gymnasium HalfCheetah-v5",
    num_tasks=40,
    train_tasks=complement(40, CHEETAH_VEL_TEST),
    test_tasks=CHEETAH_VEL_TEST,
    horizon=200,
    obs_dim=20,
    act_dim=6,
    rtg_scale=500.0,
    eval_target=0.0,
)
CHEETAH_DIR = CheetahDirFamily(
    name="cheetah-dir",
    simulator="gymnasium HalfCheetah-v5",
    num_tasks=2,
    train_tasks=(0, 1),  # train = test, as in Prompt-DT
    test_tasks=(0, 1),
    horizon=200,
    obs_dim=20,
    act_dim=6,
    rtg_scale=1000.0,
    eval_target=1500.0,
)
ANT_DIR = AntDirFamily(
    name="ant-dir",
    simulator="gymnasium Ant-v5",
    num_tasks=50,
    train_tasks=complement(50, ANT_DIR_TEST),
    test_tasks=ANT_DIR_TEST,
    horizon=200,
    obs_dim=27,
    act_dim=8,
    rtg_scale=500.0,
    eval_target=500.0,
)
