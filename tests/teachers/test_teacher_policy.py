"""TeacherPolicy: loading checkpoints and snapshots, acting, reproducing the recorded evaluation."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
from teacher_setup import tiny_family

from pdiff.envs import get_family
from pdiff.errors import ArtifactError
from pdiff.teachers import TaskEvaluator, TeacherPolicy, list_snapshots
from pdiff.workspace.atomic import sha256_file

pytestmark = pytest.mark.mujoco


@pytest.fixture(scope="module")
def policy(straight_run):
    return TeacherPolicy.load(straight_run.checkpoint_dir)


def _inputs(n: int = 5):
    family = get_family("cheetah-dir")
    obs = np.random.default_rng(0).normal(size=(n, family.obs_dim)).astype(np.float32)
    conditions = np.stack([family.task_condition(i % 2) for i in range(n)])
    return obs, conditions


def test_act_shapes_range_and_determinism(policy):
    obs, conditions = _inputs()
    action = policy.act(obs, conditions, deterministic=True)
    assert action.shape == (5, 6) and action.dtype == np.float32
    assert np.all(np.abs(action) <= 1.0)
    np.testing.assert_array_equal(action, policy.act(obs, conditions, deterministic=True))
    # The task condition changes the action: one network serves both directions.
    assert not np.array_equal(action, policy.act(obs, -conditions, deterministic=True))


def test_stochastic_actions_follow_the_rng(policy):
    obs, conditions = _inputs()
    first = policy.act(obs, conditions, deterministic=False, rng=np.random.default_rng(1))
    again = policy.act(obs, conditions, deterministic=False, rng=np.random.default_rng(1))
    other = policy.act(obs, conditions, deterministic=False, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    mean = policy.act(obs, conditions, deterministic=True)
    noisy = policy.act(obs, conditions, deterministic=True, noise_std=0.3, rng=np.random.default_rng(1))
    assert np.all(np.abs(noisy) <= 1.0) and 0.05 < np.abs(noisy - mean).mean() < 0.5
    with pytest.raises(ValueError, match="rng"):
        policy.act(obs, conditions, deterministic=False)


def test_identity_and_dimension_checks(policy, straight_run):
    assert policy.sha256 == sha256_file(straight_run.checkpoint_dir / "actor.safetensors")
    assert (policy.family, policy.obs_dim, policy.condition_dim, policy.act_dim) == ("cheetah-dir", 20, 1, 6)
    policy.check_family(get_family("cheetah-dir"))
    with pytest.raises(ArtifactError, match="ant-dir"):
        policy.check_family(get_family("ant-dir"))
    obs, conditions = _inputs()
    with pytest.raises(ArtifactError, match="expects observations"):
        policy.act(obs[:, :10], conditions, deterministic=True)
    with pytest.raises(ArtifactError, match="expects observations"):
        policy.act(obs, conditions[:3], deterministic=True)


def test_load_refuses_missing_or_corrupt_files(straight_run, tmp_path):
    with pytest.raises(ArtifactError, match="not a teacher checkpoint"):
        TeacherPolicy.load(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "policy.json").write_text((straight_run.checkpoint_dir / "policy.json").read_text())
    (broken / "actor.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ArtifactError, match="cannot be read"):
        TeacherPolicy.load(broken)


def test_loaded_snapshot_reproduces_its_recorded_evaluation(straight_run):
    snapshot = list_snapshots(straight_run.out_dir)[2]
    loaded = TeacherPolicy.load(snapshot.path)
    assert json.loads((snapshot.path / "policy.json").read_text())["update"] == snapshot.update
    evaluator = TaskEvaluator(tiny_family(), episodes=1, seed=3)  # the run's evaluator: same seeds
    try:
        returns = evaluator.evaluate(functools.partial(loaded.act, deterministic=True))
    finally:
        evaluator.close()
    assert float(np.mean(list(returns.values()))) == snapshot.mean_return
