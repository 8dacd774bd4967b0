"""Scripted Meta-World experts that see the hidden goal, aimed so that success is not on a knife edge.

Meta-World's stock `Sawyer<Task>V3Policy` reads the goal from obs[-3:], which ML1 zeroes, so the expert
puts the frozen goal back into a copy of the observation. For tasks whose success is the fingertip
centre (`tcp_center`) within 5 cm of the goal (reach, reach-wall), the stock policy drives the *hand*
onto the goal and the fingertips, about 4.5 cm lower, end 4.3-4.7 cm away; the expert
therefore aims the hand at goal − (tcp − hand), the offset measured from the env, which puts the
fingertips on the goal. Other tasks succeed by object position and keep the stock target.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np

from pdiff.envs.base import TaskFamily
from pdiff.envs.metaworld_family import MetaWorldFamily
from pdiff.errors import UsageError

# Tasks whose `success` is measured at the fingertips (tcp_center) rather than at an object.
FINGERTIP_TASKS = frozenset({"reach", "reach-wall"})


@functools.cache
def measure_tcp_offset(family: MetaWorldFamily) -> tuple[float, float, float]:
    """tcp_center − hand position (obs[:3]) on task 0 right after reset, measured once per process. The
    mocap weld holds the hand's orientation fixed, so the offset is the same everywhere (z ≈ −0.045 m)."""
    raw = family.make_raw_env(0)
    offset = np.asarray(raw.tcp_center) - np.asarray(raw.get_endeff_pos())
    raw.close()
    return tuple(float(x) for x in offset)


def _metaworld(family: TaskFamily) -> MetaWorldFamily:
    if not isinstance(family, MetaWorldFamily):
        raise UsageError(
            f"family {family.name} has no scripted expert",
            hint="scripted experts exist for metaworld-<task> families only",
        )
    return family


class ScriptedExpert:
    """The stock scripted policy of one Meta-World task, given the hidden goal. Needs no env object, so it
    can be built (or unpickled) in a worker process: `act(obs)` maps a family observation (goal zeroed)
    to an action in [-1, 1]^4."""

    def __init__(
        self, family: TaskFamily, task_id: int, *, tcp_offset: tuple[float, float, float] | None = None
    ) -> None:
        from metaworld.policies import ENV_POLICY_MAP

        self.family = _metaworld(family)
        self.task_id = self.family.check_task_id(task_id)
        self.goal = self.family.goal(self.task_id)
        self.policy = ENV_POLICY_MAP[f"{self.family.task}-v3"]()
        if self.family.task in FINGERTIP_TASKS:
            offset = np.asarray(tcp_offset if tcp_offset is not None else measure_tcp_offset(self.family))
            self.aim = self.goal - offset  # the hand target that puts the fingertips on the goal
        else:
            self.aim = self.goal.copy()

    def act(self, obs: np.ndarray) -> np.ndarray:
        full = np.array(obs, dtype=np.float64)  # a copy: the caller's (stored) observation keeps its zeros
        if full.shape != (self.family.obs_dim,):
            raise ValueError(f"expected an observation of shape ({self.family.obs_dim},), got {full.shape}")
        full[-3:] = self.aim
        with warnings.catch_warnings():
            # The stock policies warn whenever their P-gain saturates; the env clips actions anyway.
            warnings.filterwarnings("ignore", message="Constant\\(s\\) may be too high")
            action = self.policy.get_action(full)
        return np.clip(action, -1.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class ExpertEpisode:
    task_id: int
    success: bool  # info["success"] at any step (Meta-World's episode success)
    final_success: bool  # info["success"] at the last step
    first_success_step: int | None  # 0-based step of the first success
    episode_return: float
    steps: int
    final_obj_to_target: float  # info["obj_to_target"] at the end (for reach: fingertips to goal)


def run_expert_episode(
    family: TaskFamily,
    task_id: int,
    *,
    horizon: int | None = None,
    action_noise: float = 0.0,
    seed: int | None = None,
    expert: ScriptedExpert | None = None,
) -> ExpertEpisode:
    """Roll out the scripted expert (plus optional Gaussian action noise of std `action_noise`) once."""
    family = _metaworld(family)
    expert = expert or ScriptedExpert(family, task_id)
    rng = np.random.default_rng(seed)
    env = family.make_env(task_id, horizon=horizon)
    obs, _ = env.reset(seed=seed)
    total, steps, first_success, info = 0.0, 0, None, {}
    done = False
    while not done:
        action = expert.act(obs)
        if action_noise > 0:
            noisy = action + rng.normal(0.0, action_noise, action.shape)
            action = np.clip(noisy, -1.0, 1.0).astype(np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        if info["success"] and first_success is None:
            first_success = steps
        total += float(reward)
        steps += 1
        done = terminated or truncated
    env.close()
    return ExpertEpisode(
        task_id=task_id,
        success=first_success is not None,
        final_success=bool(info["success"]),
        first_success_step=first_success,
        episode_return=total,
        steps=steps,
        final_obj_to_target=float(info["obj_to_target"]),
    )


def measure_expert_success(
    family: TaskFamily, task_ids: tuple[int, ...] | None = None, *, horizon: int | None = None
) -> dict[int, ExpertEpisode]:
    """One noise-free expert episode per task (the env is deterministic per task); default: test tasks."""
    family = _metaworld(family)
    ids = family.test_tasks if task_ids is None else task_ids
    return {task_id: run_expert_episode(family, task_id, horizon=horizon) for task_id in ids}
