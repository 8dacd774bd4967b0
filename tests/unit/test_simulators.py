"""Simulators in worker processes step exactly as in this one, and a failing worker is one clear error."""

from __future__ import annotations

import numpy as np
import pytest

from pdiff.envs import get_family
from pdiff.errors import RunFailed
from pdiff.rollouts.simulators import EnvPool

pytestmark = pytest.mark.mujoco


def _trajectories(workers: int, steps: int = 12) -> list:
    family = get_family("cheetah-vel")
    tasks = [3, 3, 7]
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, len(tasks), family.act_dim)).astype(np.float32)
    with EnvPool(workers) as pool:
        out = []
        for _ in range(2):  # the second lease reuses the first one's simulators
            lease = pool.lease(family, tasks, horizon=steps, render=[False] * len(tasks))
            out.append([obs for obs, _ in lease.reset([11, 12, 13])])
            for t in range(steps):
                out.append(lease.step([0, 1, 2], actions[t]))
            lease.release()
    return out


def test_worker_processes_give_the_same_transitions():
    here, spread = _trajectories(1), _trajectories(2)
    assert len(here) == len(spread)
    for a, b in zip(here, spread, strict=True):
        for x, y in zip(a, b, strict=True):
            if isinstance(x, tuple):
                np.testing.assert_array_equal(x[0], y[0])
                assert x[1:4] == y[1:4]
            else:
                np.testing.assert_array_equal(x, y)


def test_a_failing_worker_is_one_clear_error():
    family = get_family("cheetah-vel")
    with EnvPool(2) as pool, pytest.raises(RunFailed, match="simulator worker 1 failed") as caught:
        pool.lease(family, [0, 10_000], horizon=5, render=[False, False])
    assert "\n" not in caught.value.message
