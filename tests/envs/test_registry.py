"""The family registry and the task definitions: names, splits, task parameters, id validation, pickling.
No simulator is stepped here."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from pdiff.envs import TaskFamily, family_names, get_family
from pdiff.envs.metaworld_goals import frozen_goals
from pdiff.envs.metaworld_ml1 import scripted_tasks
from pdiff.errors import UsageError

# Prompt-DT's released ant_dir goals, tasks 0-9, 23 and 49, copied by hand.
ANT_ANGLES = {0: 1.2034, 6: 0.2454, 9: 0.3773, 17: 1.7781, 23: 0.9042, 30: 3.5688, 41: 4.1419, 49: 0.1832}


def test_family_names_cover_the_four_kinds_and_the_ood_splits():
    names = family_names()
    assert names[:5] == ["cheetah-vel", "cheetah-dir", "ant-dir", "cheetah-vel-ood", "ant-dir-ood"]
    assert {"metaworld-reach", "metaworld-pick-place"} <= set(names)
    assert len(names) == len(set(names))
    assert all(name.startswith("metaworld-") for name in names[5:])


# Our out-of-distribution splits (docs/families.md): (parameter, test range); the training range is the rest.
OOD_RANGES = {
    "ant-dir-ood": ("goal_angle", 1.5 * math.pi, 2 * math.pi),
    "cheetah-vel-ood": ("goal_vel", 2.25, 3.0),
}


@pytest.mark.parametrize("name", sorted(OOD_RANGES))
def test_ood_split_keeps_the_test_parameters_outside_the_training_range(name):
    family, (key, low, high) = get_family(name), OOD_RANGES[name]
    base = get_family(family.ood.base)
    train = [family.task_params(t)[key] for t in family.train_tasks]
    test = [family.task_params(t)[key] for t in family.test_tasks]
    assert test and low <= min(test) and max(test) <= high
    assert max(train) <= low and max(train) < min(
        test
    )  # no overlap: every training task lies below the range
    assert sorted(family.train_tasks + family.test_tasks) == list(range(family.num_tasks))
    # the base family's tasks, re-split: its teacher and its task conditions apply as they are
    assert [family.task_params(t) for t in range(family.num_tasks)] == [
        base.task_params(t) for t in range(base.num_tasks)
    ]
    assert "ours" in family.split_note and family.ood.text in family.split_note
    assert base.ood is None and base.split_note == ""


def test_only_a_family_that_tests_its_training_tasks_is_in_distribution():
    names = ["cheetah-vel", "cheetah-dir", "ant-dir", "ant-dir-ood", "metaworld-reach"]
    assert [name for name in names if get_family(name).in_distribution] == ["cheetah-dir"]
    assert get_family("cheetah-dir").test_note.startswith("in distribution")
    ood = get_family("ant-dir-ood")
    assert ood.test_note == ood.split_note and get_family("ant-dir").test_note == ""


def test_task_distance_is_euclidean_and_goal_angles_wrap_around():
    vel = get_family("cheetah-vel")
    assert vel.task_distance(0, 3) == pytest.approx(0.225)
    ant = get_family("ant-dir")
    assert ant.task_distance(49, 40) == pytest.approx(0.1832 + 2 * math.pi - 6.0368)  # across 0 = 2π
    assert ant.task_distance(6, 6) == 0.0
    reach = get_family("metaworld-reach")
    goals = np.array([reach.task_params(t)["goal"] for t in (0, 1)])
    assert reach.task_distance(0, 1) == pytest.approx(float(np.linalg.norm(goals[0] - goals[1])))


@pytest.mark.parametrize(
    ("name", "num_tasks", "test", "horizon", "dims", "scale", "target"),
    [
        ("cheetah-vel", 40, (2, 7, 15, 23, 26), 200, (20, 6), 500, 0),
        ("cheetah-dir", 2, (0, 1), 200, (20, 6), 1000, 1500),
        ("ant-dir", 50, (6, 17, 23, 30, 41), 200, (27, 8), 500, 500),
        ("metaworld-reach", 50, (11, 17, 25, 36, 41), 100, (39, 4), 650, 650),
        ("metaworld-pick-place", 50, (11, 17, 25, 36, 41), 100, (39, 4), 650, 650),
    ],
)
def test_family_constants(name, num_tasks, test, horizon, dims, scale, target):
    family = get_family(name)
    assert isinstance(family, TaskFamily)
    assert (family.name, family.num_tasks, family.horizon) == (name, num_tasks, horizon)
    assert family.test_tasks == test
    assert (family.obs_dim, family.act_dim, family.rtg_scale, family.eval_target) == (*dims, scale, target)


@pytest.mark.parametrize("name", ["cheetah-vel", "ant-dir", "metaworld-reach", "metaworld-door-open"])
def test_disjoint_splits_cover_every_task(name):
    family = get_family(name)
    assert not set(family.train_tasks) & set(family.test_tasks)
    assert sorted(family.train_tasks + family.test_tasks) == list(range(family.num_tasks))
    assert len(family.test_tasks) == 5 and len(family.train_tasks) == family.num_tasks - 5
    assert [family.split(i) for i in family.test_tasks] == ["test"] * 5
    assert {family.split(i) for i in family.train_tasks} == {"train"}


def test_cheetah_dir_tasks_are_both_train_and_test():
    family = get_family("cheetah-dir")
    assert family.train_tasks == family.test_tasks == (0, 1)
    assert [family.split(0), family.split(1)] == ["train+test", "train+test"]
    assert [family.task_params(i) for i in (0, 1)] == [{"direction": 1.0}, {"direction": -1.0}]
    assert [family.task_condition(i).tolist() for i in (0, 1)] == [[1.0], [-1.0]]


def test_cheetah_vel_targets():
    family = get_family("cheetah-vel")
    velocities = [family.task_params(i)["goal_vel"] for i in range(40)]
    assert velocities == pytest.approx(np.linspace(0.075, 3.0, 40).tolist(), abs=1e-12)
    assert [velocities[i] for i in family.test_tasks] == [0.225, 0.6, 1.2, 1.8, 2.025]
    condition = family.task_condition(39)
    assert condition.dtype == np.float32 and condition.tolist() == [1.0]


def test_ant_dir_angles_match_the_reference_table():
    family = get_family("ant-dir")
    for task_id, angle in ANT_ANGLES.items():
        assert family.task_params(task_id) == {"goal_angle": angle}
    angles = [family.task_params(i)["goal_angle"] for i in range(50)]
    assert len(set(angles)) == 50 and all(0 < a < 2 * math.pi for a in angles)
    condition = family.task_condition(17)
    assert condition.dtype == np.float32
    np.testing.assert_allclose(condition, [math.cos(1.7781), math.sin(1.7781)], rtol=1e-6)


def test_metaworld_goals_are_frozen_for_every_scripted_task():
    goals = frozen_goals()
    assert sorted(goals) == scripted_tasks()
    assert all(len(task_goals) == 50 for task_goals in goals.values())
    reach = get_family("metaworld-reach")
    assert reach.task_params(0) == {"goal": list(goals["reach"][0])}
    assert len({tuple(reach.task_params(i)["goal"]) for i in range(50)}) == 50
    # reach-v3 goal box: x ∈ [−0.1, 0.1], y ∈ [0.8, 0.9], z ∈ [0.05, 0.3]
    box = np.array(goals["reach"])
    assert np.all(box >= [-0.1, 0.8, 0.05]) and np.all(box <= [0.1, 0.9, 0.3])
    condition = reach.task_condition(11)
    assert condition.dtype == np.float32 and condition.shape == (3,)


def test_unknown_family_suggests_close_names():
    with pytest.raises(UsageError) as raised:
        get_family("metaworld-rech")
    assert "metaworld-rech" in raised.value.message
    assert "metaworld-reach" in raised.value.hint and "pdiff envs" in raised.value.hint
    with pytest.raises(UsageError, match="cheetah-vel"):
        get_family("cheetah_vel")
    with pytest.raises(UsageError, match="choose one of"):
        get_family("walker")


@pytest.mark.parametrize("bad_id", [-1, 40, 1000, 2.0, "3", True])
def test_bad_task_id_names_the_id_and_the_range(bad_id):
    family = get_family("cheetah-vel")
    with pytest.raises(UsageError) as raised:
        family.task_params(bad_id)
    assert repr(bad_id) in raised.value.message and "cheetah-vel" in raised.value.message
    assert "0..39" in raised.value.hint
    with pytest.raises(UsageError):
        family.make_env(bad_id)


def test_bad_task_id_for_metaworld_and_ant():
    with pytest.raises(UsageError, match="0..49"):
        get_family("metaworld-reach").make_env(50)
    with pytest.raises(UsageError, match="0..49"):
        get_family("ant-dir").split(50)
    assert get_family("ant-dir").task_params(np.int64(6)) == {"goal_angle": 0.2454}


def test_every_family_pickles():
    for name in family_names():
        family = get_family(name)
        clone = pickle.loads(pickle.dumps(family))
        assert clone == family and type(clone) is type(family)
        assert family.description
