"""Env factories survive pickling and build envs in worker processes (as collect and eval use them)."""

from __future__ import annotations

import functools
import pickle

import gymnasium
import numpy as np
import pytest

from pdiff.envs import get_family


@pytest.mark.mujoco
def test_factories_pickle_and_build_the_same_env():
    for name, task_id in [("cheetah-vel", 2), ("cheetah-dir", 1), ("ant-dir", 6)]:
        family = get_family(name)
        factory = functools.partial(family.make_env, task_id, horizon=7)
        pickled, direct = pickle.loads(pickle.dumps(factory))(), factory()
        assert pickled.action_space.shape == (family.act_dim,)
        actions = np.random.default_rng(task_id).uniform(-1.0, 1.0, size=(7, family.act_dim))
        first = [env.reset(seed=0)[0] for env in (pickled, direct)]
        assert first[0].shape == (family.obs_dim,)
        np.testing.assert_array_equal(*first)
        for step, action in enumerate(actions):  # same task and horizon: equal steps, truncated at the 7th
            (obs_p, reward_p, done_p, cut_p, _), (obs_d, reward_d, done_d, cut_d, _) = (
                env.step(action) for env in (pickled, direct)
            )
            np.testing.assert_array_equal(obs_p, obs_d)
            assert (reward_p, done_p, cut_p) == (reward_d, done_d, cut_d)
            assert cut_p == (step == 6) or done_p
        pickled.close()
        direct.close()


@pytest.mark.mujoco
def test_async_vector_env_in_spawned_workers():
    # "spawn" forces the factories through pickle and the workers to import pdiff.envs from scratch.
    family = get_family("cheetah-vel")
    env_fns = [functools.partial(family.make_env, task_id, horizon=5) for task_id in (0, 39)]
    envs = gymnasium.vector.AsyncVectorEnv(env_fns, context="spawn")
    try:
        obs, _ = envs.reset(seed=0)
        assert obs.shape == (2, 20) and obs.dtype == np.float32
        for step in range(5):
            obs, reward, terminated, truncated, info = envs.step(np.zeros((2, 6), dtype=np.float32))
            assert not terminated.any()
            assert truncated.tolist() == [step == 4] * 2
        # Under zero actions the cheetah barely moves, so goal 0.075 pays far more than goal 3.0.
        assert reward[0] > reward[1]
        assert info["goal_vel"].tolist() == [0.075, 3.0]
    finally:
        envs.close()


@pytest.mark.metaworld
def test_metaworld_envs_step_in_worker_processes():
    family = get_family("metaworld-reach")
    env_fns = [functools.partial(family.make_env, task_id, horizon=3) for task_id in family.test_tasks[:2]]
    envs = gymnasium.vector.AsyncVectorEnv(env_fns)
    try:
        obs, _ = envs.reset()
        assert obs.shape == (2, 39) and obs.dtype == np.float32 and np.all(obs[:, -3:] == 0.0)
        for step in range(3):
            _, reward, _, truncated, info = envs.step(np.zeros((2, 4), dtype=np.float32))
            assert truncated.tolist() == [step == 2] * 2
        assert "success" in info and np.all((reward >= 0.0) & (reward <= 10.0))
    finally:
        envs.close()
