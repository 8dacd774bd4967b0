"""What zero-shot prompts may read (pdiff.methods.zero_shot), on the shared reach workspace's real
prompt-expert data: under `nearest` the nearest training task's episodes, as the target's few-shot data; under
`none` nothing chosen for the target; never the target task itself."""

from __future__ import annotations

from typing import get_args

import numpy as np
import pytest
from support.stages import FAMILY as REACH

from pdiff.data.batches import PromptBank
from pdiff.data.loader import FamilyData, load_family_data
from pdiff.data.minari_format import parse_dataset_id
from pdiff.envs import get_family
from pdiff.errors import UsageError
from pdiff.methods.zero_shot import (
    BEFORE_EQUAL_INFORMATION,
    SETTING_TEXT,
    ZERO_SHOT_METHODS,
    ZERO_SHOT_SETTINGS,
    ZeroShotPrompts,
    ZeroShotSetting,
    check_zero_shot,
    recorded_setting,
)

pytestmark = pytest.mark.metaworld
SOURCES = [0, 1, 2, 3, 11]  # 11 is a test task: included here to show it is never its own source
TARGET = 11


@pytest.fixture(scope="module")
def data(collected_template) -> FamilyData:
    return load_family_data(collected_template / "datasets", REACH, "prompt-expert", SOURCES)


def sources(data: FamilyData, setting: ZeroShotSetting) -> ZeroShotPrompts:
    """The zero-shot sources of `data` under `setting`, with states left as they are (identity
    normalisation)."""
    family = get_family(REACH)
    identity = {
        "state_mean": np.zeros(family.obs_dim, np.float32),
        "state_std": np.ones(family.obs_dim, np.float32),
    }
    return ZeroShotPrompts(
        data, PromptBank(data, prompt_len=5, rtg_scale=family.rtg_scale, **identity), family, setting
    )


def test_nearest_gives_the_target_every_episode_of_the_training_task_with_the_closest_goal(data):
    family = get_family(REACH)
    prompts = sources(data, "nearest")
    goals = {t: np.array(family.task_params(t)["goal"]) for t in SOURCES}
    closest = min((t for t in SOURCES if t != TARGET), key=lambda t: np.linalg.norm(goals[t] - goals[TARGET]))
    assert prompts.nearest_task(TARGET) == closest
    fewshot = prompts.nearest_episodes([TARGET, 0])
    assert fewshot.tasks() == [0, TARGET]
    own = data.select_episodes(data.task_episodes(closest))
    read = fewshot.select_episodes(fewshot.task_episodes(TARGET))
    assert np.array_equal(read.observations, own.observations) and np.array_equal(read.actions, own.actions)
    assert parse_dataset_id(fewshot.dataset_ids[1])[1] == closest  # per target, the dataset it comes from
    record = prompts.record([TARGET, 0])
    assert record["setting"] == "nearest"
    assert record["sources"][str(TARGET)] == {
        "task": closest,
        "dataset": fewshot.dataset_ids[1],
        "episodes": list(range(len(data.task_episodes(closest)))),
    }
    assert prompts.read([TARGET]) == (prompts.dataset_of(closest),)  # the run's only dataset input


def test_none_prompts_and_conditions_every_target_alike(data):
    family = get_family(REACH)
    prompts = sources(data.subset([0, 1, 2, 3]), "none")
    targets = range(4, family.num_tasks)
    a, b = next(
        (a, b) for a in targets for b in targets if prompts.nearest_task(a) != prompts.nearest_task(b)
    )
    # two targets with different nearest tasks get the same prompt from the same draws: none is chosen for
    # them
    first, second = (prompts.prompt(t, np.random.default_rng(7)) for t in (a, b))
    assert np.array_equal(first.actions, second.actions) and np.array_equal(first.states, second.states)
    drawn = {prompts.prompt(a, rng).actions.tobytes() for rng in map(np.random.default_rng, range(20))}
    assert len(drawn) > 1  # a random training task's prompt, not always the same
    conditions = [prompts.condition(t, np.random.default_rng(0)) for t in (a, b)]
    assert np.array_equal(conditions[0].returns_to_go, conditions[1].returns_to_go)
    tails = np.concatenate([prompts.bank.all_for_task(t).returns_to_go for t in range(4)])
    np.testing.assert_allclose(conditions[0].returns_to_go[0], tails.mean(axis=0), rtol=1e-5)
    assert "sources" not in prompts.record([a, b]) and prompts.read([a, b]) == prompts.datasets


def test_none_never_prompts_a_target_with_its_own_episodes(data):
    prompts = sources(data, "none")
    target_actions = prompts.bank.all_for_task(TARGET).actions
    for rng in map(np.random.default_rng, range(10)):
        actions = prompts.prompt(TARGET, rng).actions[0]
        assert not any(np.array_equal(actions, real) for real in target_actions)


def test_each_setting_is_named_once_and_older_records_read_as_what_they_did():
    assert tuple(SETTING_TEXT) == ZERO_SHOT_SETTINGS == get_args(ZeroShotSetting)
    assert recorded_setting({"setting": "none"}) == "none"
    assert recorded_setting({"source": "pooled"}) == "none"  # the same prompts as `none`
    assert recorded_setting({"source": "nearest"}) == BEFORE_EQUAL_INFORMATION
    assert recorded_setting(None) == BEFORE_EQUAL_INFORMATION


def test_methods_that_tune_on_target_data_refuse_zero_shot():
    for method in ZERO_SHOT_METHODS:
        check_zero_shot(method, 0)
    check_zero_shot("lora", 5)
    with pytest.raises(UsageError) as refused:
        check_zero_shot("lora", 0)
    assert "lora" in refused.value.message and "prompt-diffuser, prompt-dt" in refused.value.message
