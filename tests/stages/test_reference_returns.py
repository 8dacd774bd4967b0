"""Normalised scores use references measured the way eval runs episodes: on ant-dir the random reference
ends when the robot falls, although the stored random episodes run whole (they are training data); and the
reference is the same whichever kinds a collect wrote."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.cli import runner

from pdiff.cli.app import app
from pdiff.collection.behaviour import REFERENCE_RANDOM, PolicySpec, build_policy, episode_seed, run_episode
from pdiff.data.loader import load_family_data
from pdiff.envs import get_family
from pdiff.rollouts.scoring import reference_returns
from pdiff.workspace.root import Workspace

pytestmark = [pytest.mark.mujoco, pytest.mark.slow]
TASK, EPISODES, SEED, HORIZON = 6, 4, 0, 120  # uniform actions make the ant fall within ~50-190 steps


def collect_ant_dir(root: Path, kinds: str) -> Workspace:
    workspace, _ = Workspace.init(root)
    args = ["-w", str(root), "--json", "collect", "--preset", "smoke", "--env", "ant-dir"]
    args += ["--tasks", str(TASK), "--kinds", kinds, "--episodes", str(EPISODES), "--seed", str(SEED)]
    result = runner.invoke(app, [*args, "--set", f"horizon={HORIZON}"])
    assert result.exit_code == 0, result.output
    return workspace


def random_reference_episodes() -> list:
    """The uniform-action episodes the random reference averages, run here as eval runs them."""
    family = get_family("ant-dir")
    env = family.make_env(TASK, horizon=HORIZON, terminate_when_unhealthy=True)
    policy = build_policy(
        PolicySpec(REFERENCE_RANDOM, "uniform", terminate_when_unhealthy=True), family, TASK
    )
    try:
        return [
            run_episode(env, policy, episode_seed(SEED, TASK, REFERENCE_RANDOM, i)) for i in range(EPISODES)
        ]
    finally:
        env.close()


def test_ant_dir_random_reference_is_the_mean_of_episodes_under_evals_termination(tmp_path):
    workspace = collect_ant_dir(tmp_path / "ws", "random,expert")
    reference = random_reference_episodes()
    low, _ = reference_returns(workspace.datasets_dir, get_family("ant-dir"), TASK)
    assert low == pytest.approx(np.mean([e.total_return for e in reference]))
    stored = load_family_data(workspace.datasets_dir, "ant-dir", "random", [TASK])
    assert (stored.episode_lengths == HORIZON).all()  # the training data keeps its episodes whole
    assert any(e.length < HORIZON for e in reference)  # the reference ends where eval would
    assert low != pytest.approx(float(stored.episode_returns.mean()))


def test_the_random_reference_does_not_depend_on_the_kinds_collected(tmp_path):
    """Table 1 alone (`reproduce --data-kinds expert` collects no random kind) normalises by the random
    reference the whole matrix stores: the same `--episodes` episodes, not a shorter count."""
    workspace = collect_ant_dir(tmp_path / "ws", "expert")
    reference = random_reference_episodes()
    assert np.ptp([e.total_return for e in reference]) > 0  # a shorter count would give another mean
    low, _ = reference_returns(workspace.datasets_dir, get_family("ant-dir"), TASK)
    assert low == pytest.approx(np.mean([e.total_return for e in reference]))
