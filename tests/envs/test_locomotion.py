"""cheetah-vel, cheetah-dir and ant-dir on real MuJoCo: observation layout and reward recomputed from the
simulator state around each step (not from the info the wrappers read)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pdiff.envs import get_family

pytestmark = pytest.mark.mujoco


def _cheetah_observation(data) -> np.ndarray:
    return np.concatenate([data.qpos[1:], data.qvel, data.body("torso").xpos]).astype(np.float32)


@pytest.mark.parametrize(("name", "task_id"), [("cheetah-vel", 23), ("cheetah-dir", 0), ("cheetah-dir", 1)])
def test_cheetah_reward_and_observation_follow_the_formula(name, task_id):
    family = get_family(name)
    env = family.make_env(task_id)
    obs, _ = env.reset(seed=3)
    sim = env.unwrapped
    data = sim.data
    assert sim.dt == pytest.approx(0.05)  # timestep 0.01, frame skip 5, as in the reference
    assert obs.dtype == np.float32 and obs.shape == (20,) and env.observation_space.contains(obs)
    np.testing.assert_array_equal(obs, _cheetah_observation(data))
    params = family.task_params(task_id)
    rng = np.random.default_rng(task_id)
    for _ in range(25):
        action = rng.uniform(-1.0, 1.0, size=6)
        x_before = float(data.qpos[0])
        obs, reward, terminated, truncated, info = env.step(action)
        velocity = (float(data.qpos[0]) - x_before) / 0.05
        control = 0.05 * float(np.sum(action**2))
        if name == "cheetah-vel":
            expected = -abs(velocity - params["goal_vel"]) - control
        else:
            expected = params["direction"] * velocity - control
        assert reward == pytest.approx(expected, abs=1e-9)
        assert info["x_velocity"] == pytest.approx(velocity, abs=1e-9)
        assert not terminated and not truncated
        np.testing.assert_array_equal(obs, _cheetah_observation(data))
    env.close()


def test_cheetah_velocity_tasks_differ_only_in_the_goal():
    family = get_family("cheetah-vel")
    steps = []
    for task_id in (0, 39):
        env = family.make_env(task_id)
        env.reset(seed=0)
        obs, reward, _, _, info = env.step(np.full(6, 0.5))
        steps.append((obs, reward, info["x_velocity"], family.task_params(task_id)["goal_vel"]))
        env.close()
    (obs_a, reward_a, v, goal_a), (obs_b, reward_b, v_b, goal_b) = steps
    # same seed and action, so the same state and velocity v: only -|v - goal| differs
    np.testing.assert_array_equal(obs_a, obs_b)
    assert v == v_b and goal_a != goal_b
    assert reward_a - reward_b == pytest.approx(abs(v - goal_b) - abs(v - goal_a), abs=1e-9)


@pytest.mark.parametrize(("horizon", "steps"), [(None, 200), (3, 3)])
def test_horizon_truncates_the_episode(horizon, steps):
    env = get_family("cheetah-dir").make_env(0, horizon=horizon)
    env.reset(seed=0)
    flags = [env.step(np.zeros(6))[3] for _ in range(steps)]
    assert flags == [False] * (steps - 1) + [True]
    env.close()


def test_ant_dir_reward_and_observation_follow_the_formula():
    family = get_family("ant-dir")
    task_id = 17
    angle = family.task_params(task_id)["goal_angle"]
    env = family.make_env(task_id, terminate_when_unhealthy=False)
    obs, _ = env.reset(seed=1)
    data = env.unwrapped.data
    assert obs.dtype == np.float32 and obs.shape == (27,)
    rng = np.random.default_rng(0)
    contact_seen = False
    for _ in range(40):
        action = rng.uniform(-1.0, 1.0, size=8)
        xy_before = data.body("torso").xpos[:2].copy()
        obs, reward, terminated, _, info = env.step(action)
        velocity = (data.body("torso").xpos[:2] - xy_before) / 0.05
        forward = math.cos(angle) * velocity[0] + math.sin(angle) * velocity[1]
        contact = 5e-4 * float(np.sum(np.clip(data.cfrc_ext, -1.0, 1.0) ** 2))
        finite = np.isfinite(data.qpos).all() and np.isfinite(data.qvel).all()
        healthy = bool(finite and 0.2 <= data.qpos[2] <= 1.0)
        expected = forward - 0.5 * float(np.sum(action**2)) - contact + (1.0 if healthy else 0.0)
        assert reward == pytest.approx(expected, abs=1e-9)
        assert info["forward_velocity"] == pytest.approx(forward, abs=1e-9)
        np.testing.assert_array_equal(obs, np.concatenate([data.qpos[2:], data.qvel]).astype(np.float32))
        assert not terminated
        contact_seen |= contact > 0
    assert contact_seen, "the contact term was never exercised"
    env.close()


@pytest.mark.parametrize("terminate", [True, False])
def test_ant_dir_ends_when_unhealthy_only_if_asked(terminate):
    env = get_family("ant-dir").make_env(0, terminate_when_unhealthy=terminate)
    env.reset(seed=0)
    sim = env.unwrapped
    qpos = sim.data.qpos.copy()
    qpos[2] = 1.5  # torso above the healthy range [0.2, 1.0]
    sim.set_state(qpos, sim.data.qvel.copy())
    _, _, terminated, _, info = env.step(np.zeros(8))
    assert terminated is terminate
    assert info["reward_survive"] == 0.0
    env.close()
