"""metaworld-<task> families on real Meta-World 3.1.1: hidden goal, reward, frozen goals, horizon, and the
scripted expert aimed at the fingertips."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from pdiff.envs import get_family
from pdiff.envs.metaworld_expert import ScriptedExpert, measure_expert_success, run_expert_episode
from pdiff.envs.metaworld_goals import check_live_goal
from pdiff.errors import RunFailed, UsageError

pytestmark = pytest.mark.metaworld


@pytest.fixture(scope="module")
def reach():
    return get_family("metaworld-reach")


def _reach_reward(tcp: np.ndarray, goal: np.ndarray, hand_init: np.ndarray) -> float:
    """10 · tolerance(‖tcp − goal‖, bounds (0, 0.05), margin ‖hand_init − goal‖, long tail, 0.1 at margin)."""
    distance = float(np.linalg.norm(tcp - goal))
    if distance <= 0.05:
        return 10.0
    scaled = (distance - 0.05) / float(np.linalg.norm(hand_init - goal))
    return 10.0 / (1.0 + 9.0 * scaled**2)  # long tail: 1 / ((x·s)² + 1) with s² = 1/0.1 − 1


def test_reach_hides_the_goal_and_pays_the_reach_reward(reach):
    task_id = 25
    env = reach.make_env(task_id)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (39,) and env.observation_space.contains(obs)
    assert np.all(obs[-3:] == 0.0)
    sim = env.unwrapped
    goal = np.array(reach.task_params(task_id)["goal"])
    np.testing.assert_array_equal(sim._target_pos, goal)
    expert = ScriptedExpert(reach, task_id)
    successes = []
    for _ in range(60):
        obs, reward, terminated, truncated, info = env.step(expert.act(obs))
        tcp = np.asarray(sim.tcp_center)
        assert reward == pytest.approx(_reach_reward(tcp, goal, np.asarray(sim.hand_init_pos)), abs=1e-9)
        assert info["success"] == float(np.linalg.norm(tcp - goal) <= 0.05)
        assert np.all(obs[-3:] == 0.0) and obs.dtype == np.float32
        assert not terminated and not truncated
        successes.append(info["success"])
    assert 0.0 in successes and 1.0 in successes  # both branches of the reward were exercised
    env.close()


def test_pick_place_builds_with_its_frozen_goal():
    family = get_family("metaworld-pick-place")
    env = family.make_env(36)
    obs, _ = env.reset()
    assert obs.shape == (39,) and np.all(obs[-3:] == 0.0)
    np.testing.assert_array_equal(env.unwrapped._target_pos, family.task_params(36)["goal"])
    _, reward, _, _, info = env.step(np.zeros(4, dtype=np.float32))
    assert "success" in info and 0.0 <= reward <= 10.0
    env.close()


def test_a_drifted_goal_is_refused(reach):
    goal = np.array(reach.task_params(3)["goal"])
    check_live_goal("reach", 3, goal)
    with pytest.raises(RunFailed, match="task 3"):
        check_live_goal("reach", 3, goal + [0.0, 0.0, 0.01])


def test_horizon_is_configurable_up_to_500(reach):
    env = reach.make_env(0, horizon=4)
    env.reset()
    assert [env.step(np.zeros(4))[3] for _ in range(4)] == [False, False, False, True]
    env.close()
    with pytest.raises(UsageError, match="horizon 501"):
        reach.make_env(0, horizon=501)
    with pytest.raises(UsageError, match="horizon 0"):
        reach.make_env(0, horizon=0)


def test_aimed_expert_succeeds_on_every_reach_test_task(reach):
    results = measure_expert_success(reach)  # the 5 test tasks, default horizon 100
    assert sorted(results) == [11, 17, 25, 36, 41]
    for episode in results.values():
        assert episode.steps == 100
        assert episode.success and episode.final_success, episode
        # Fingertips on the goal, not on the 5 cm edge where the stock target leaves them.
        assert episode.final_obj_to_target < 0.02, episode


def test_stock_target_leaves_the_fingertips_at_the_edge(reach):
    # Without the fingertip offset the hand sits on the goal and the fingertips 4.5 cm under it.
    episode = run_expert_episode(reach, 17, expert=ScriptedExpert(reach, 17, tcp_offset=(0.0, 0.0, 0.0)))
    assert episode.final_obj_to_target > 0.03


def test_expert_pickles_and_leaves_the_observation_alone(reach):
    expert = ScriptedExpert(reach, 11)
    clone = pickle.loads(pickle.dumps(expert))
    obs, _ = reach.make_env(11).reset()
    kept = obs.copy()
    action = expert.act(obs)
    np.testing.assert_array_equal(obs, kept)
    np.testing.assert_array_equal(clone.act(obs), action)
    assert action.dtype == np.float32 and action.shape == (4,) and np.all(np.abs(action) <= 1.0)


def test_expert_only_for_metaworld():
    with pytest.raises(UsageError, match="cheetah-vel"):
        ScriptedExpert(get_family("cheetah-vel"), 0)


def test_corner_camera_frames_come_back_upright(reach, renderer):
    env = reach.make_env(0, render_mode="rgb_array", camera_name="corner", render_size=(64, 48))
    env.reset()
    frame = env.render()
    assert frame.shape == (48, 64, 3)
    np.testing.assert_array_equal(frame, env.unwrapped.render()[::-1])  # Meta-World renders it upside down
    env.close()
