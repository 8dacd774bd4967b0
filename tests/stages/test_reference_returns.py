"""Normalised scores use references measured the way eval runs episodes: on ant-dir the random reference
ends when the robot falls, although the stored random episodes run whole (they are training data)."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from pdiff.cli.app import app
from pdiff.collection.behaviour import REFERENCE_RANDOM, PolicySpec, build_policy, episode_seed, run_episode
from pdiff.data.loader import load_family_data
from pdiff.envs import get_family
from pdiff.rollouts.scoring import reference_returns
from pdiff.workspace.root import Workspace

pytestmark = [pytest.mark.mujoco, pytest.mark.slow]
TASK, EPISODES, SEED, HORIZON = 6, 4, 0, 120  # uniform actions make the ant fall within ~50-190 steps


def test_ant_dir_random_reference_is_the_mean_of_episodes_under_evals_termination(tmp_path):
    workspace, _ = Workspace.init(tmp_path / "ws")
    result = CliRunner().invoke(
        app,
        [
            "-w",
            str(workspace.root),
            "--json",
            "collect",
            "--preset",
            "smoke",
            "--env",
            "ant-dir",
            "--tasks",
            str(TASK),
            "--kinds",
            "random,expert",
            "--episodes",
            str(EPISODES),
            "--seed",
            str(SEED),
            "--set",
            f"horizon={HORIZON}",
        ],
    )
    assert result.exit_code == 0, result.output
    horizon = HORIZON
    family = get_family("ant-dir")
    env = family.make_env(TASK, horizon=horizon, terminate_when_unhealthy=True)
    policy = build_policy(
        PolicySpec(REFERENCE_RANDOM, "uniform", terminate_when_unhealthy=True), family, TASK
    )
    try:
        reference = [
            run_episode(env, policy, episode_seed(SEED, TASK, REFERENCE_RANDOM, i)) for i in range(EPISODES)
        ]
    finally:
        env.close()
    low, _ = reference_returns(workspace.datasets_dir, family, TASK)
    assert low == pytest.approx(np.mean([e.total_return for e in reference]))
    stored = load_family_data(workspace.datasets_dir, "ant-dir", "random", [TASK])
    assert (stored.episode_lengths == horizon).all()  # the training data keeps its episodes whole
    assert any(e.length < horizon for e in reference)  # the reference ends where eval would
    assert low != pytest.approx(float(stored.episode_returns.mean()))
