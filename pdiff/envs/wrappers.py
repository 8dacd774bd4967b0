"""gymnasium wrappers that turn the bare simulators into the task families' envs.

Kept apart from the family modules so that listing families never imports gymnasium or MuJoCo.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.core import RenderFrame


def _float32_box(dim: int) -> spaces.Box:
    return spaces.Box(-np.inf, np.inf, shape=(dim,), dtype=np.float32)


class HalfCheetahTaskEnv(gymnasium.Wrapper):
    """HalfCheetah-v5 with the 20-dim reference observation and a velocity (cheetah-vel) or direction
    (cheetah-dir) reward. Exactly one of `goal_vel` and `direction` is given.

    v = info["x_velocity"] = Δqpos[0]/dt and info["reward_ctrl"] = −ctrl_cost_weight·‖a‖² come from v5.
    """

    def __init__(
        self, env: gymnasium.Env, *, goal_vel: float | None = None, direction: float | None = None
    ) -> None:
        if (goal_vel is None) == (direction is None):
            raise ValueError("give exactly one of goal_vel and direction")
        super().__init__(env)
        self.goal_vel = goal_vel
        self.direction = direction
        self.observation_space = _float32_box(20)
        self._data = env.unwrapped.data
        self._torso = env.unwrapped.model.body("torso").id

    def _observation(self) -> np.ndarray:
        # qpos[1:] (8) ‖ qvel (9) ‖ torso body position (3): the reference layout, absolute x included.
        data = self._data
        return np.concatenate((data.qpos[1:], data.qvel, data.xpos[self._torso])).astype(np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        _, info = self.env.reset(seed=seed, options=options)
        return self._observation(), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        _, _, terminated, truncated, info = self.env.step(action)
        velocity = float(info["x_velocity"])
        if self.goal_vel is not None:
            reward = -abs(velocity - self.goal_vel) + float(info["reward_ctrl"])
            info["goal_vel"] = self.goal_vel
        else:
            reward = self.direction * velocity + float(info["reward_ctrl"])
            info["direction"] = self.direction
        return self._observation(), reward, terminated, truncated, info


class AntDirEnv(gymnasium.Wrapper):
    """Ant-v5 (27-dim observation) rewarded for torso velocity along the goal angle.

    r = (cos g, sin g)·(x_velocity, y_velocity) + reward_ctrl + reward_contact + reward_survive, all from
    the v5 step info. v5 pays the survive bonus only while healthy (the reference paid it always; this
    only changes the last step of an episode that ends by falling).
    """

    def __init__(self, env: gymnasium.Env, *, goal_angle: float) -> None:
        super().__init__(env)
        self.goal_angle = goal_angle
        self._goal_direction = (float(np.cos(goal_angle)), float(np.sin(goal_angle)))
        self.observation_space = _float32_box(27)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        return obs.astype(np.float32), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, _, terminated, truncated, info = self.env.step(action)
        cos_g, sin_g = self._goal_direction
        forward = cos_g * float(info["x_velocity"]) + sin_g * float(info["y_velocity"])
        reward = forward + float(info["reward_ctrl"] + info["reward_contact"] + info["reward_survive"])
        info["goal_angle"] = self.goal_angle
        info["forward_velocity"] = forward
        return obs.astype(np.float32), reward, terminated, truncated, info


# Meta-World's corner cameras render upside down; frames are flipped back here.
_FLIPPED_CAMERAS = frozenset({"corner", "corner2", "corner3"})


class MetaWorldTaskEnv(gymnasium.Wrapper):
    """A Meta-World env with float32 observations (goal still hidden) and upright corner-camera frames.

    Reward, `info["success"]` and the rest of the info are the env's own.
    """

    def __init__(self, env: gymnasium.Env, *, camera_name: str | None = None) -> None:
        super().__init__(env)
        raw_space = env.observation_space
        self.observation_space = spaces.Box(
            raw_space.low.astype(np.float32), raw_space.high.astype(np.float32), dtype=np.float32
        )
        self._flip_frames = camera_name in _FLIPPED_CAMERAS

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        return obs.astype(np.float32), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs.astype(np.float32), float(reward), terminated, truncated, info

    def render(self) -> RenderFrame | list[RenderFrame] | None:
        frame = self.env.render()
        if self._flip_frames and isinstance(frame, np.ndarray):
            return np.ascontiguousarray(frame[::-1])
        return frame
