"""Where zero-shot prompts come from (pdiff.methods.zero_shot), on the shared reach workspace's real
prompt-expert data: the nearest training task by goal, or all of them; never the target task itself."""

from __future__ import annotations

import numpy as np
import pytest
from support.stages import FAMILY as REACH

from pdiff.data.batches import PromptBank
from pdiff.data.loader import load_family_data
from pdiff.envs import get_family
from pdiff.errors import UsageError
from pdiff.methods.zero_shot import ZERO_SHOT_METHODS, ZeroShotPrompts, check_zero_shot

pytestmark = pytest.mark.metaworld
SOURCES = [0, 1, 2, 3, 11]  # 11 is a test task: included here to show it is never its own source
TARGET = 11


@pytest.fixture(scope="module")
def bank(collected_template) -> PromptBank:
    family = get_family(REACH)
    data = load_family_data(collected_template / "datasets", REACH, "prompt-expert", SOURCES)
    identity = {
        "state_mean": np.zeros(family.obs_dim, np.float32),
        "state_std": np.ones(family.obs_dim, np.float32),
    }
    return PromptBank(data, prompt_len=5, rtg_scale=family.rtg_scale, **identity)


def test_nearest_is_the_training_task_with_the_closest_goal_and_never_the_target(bank):
    family = get_family(REACH)
    prompts = ZeroShotPrompts(bank, family, "nearest")
    goals = {t: np.array(family.task_params(t)["goal"]) for t in SOURCES}
    closest = min((t for t in SOURCES if t != TARGET), key=lambda t: np.linalg.norm(goals[t] - goals[TARGET]))
    assert prompts.nearest_task(TARGET) == closest
    rng = np.random.default_rng(0)
    prompt = prompts.prompt(TARGET, rng)
    assert prompt.tasks.tolist() == [TARGET]
    assert any(np.array_equal(prompt.actions[0], real) for real in bank.all_for_task(closest).actions)
    condition = prompts.condition(TARGET, rng)
    assert any(
        np.array_equal(condition.returns_to_go[0], real) for real in bank.all_for_task(closest).returns_to_go
    )


def test_pooled_conditions_on_the_mean_of_every_other_task_and_prompts_from_a_random_one(bank):
    prompts = ZeroShotPrompts(bank, get_family(REACH), "pooled")
    others = [bank.all_for_task(t) for t in SOURCES if t != TARGET]
    rtg = np.concatenate([o.returns_to_go for o in others]).mean(axis=0)
    timesteps = np.rint(np.concatenate([o.timesteps for o in others]).mean(axis=0))
    condition = prompts.condition(TARGET, np.random.default_rng(0))
    np.testing.assert_allclose(condition.returns_to_go[0], rtg, rtol=1e-5)
    assert condition.timesteps[0].tolist() == timesteps.tolist()
    rng = np.random.default_rng(1)
    target_actions = bank.all_for_task(TARGET).actions
    for _ in range(10):
        actions = prompts.prompt(TARGET, rng).actions[0]
        assert not any(np.array_equal(actions, real) for real in target_actions)


def test_methods_that_tune_on_target_data_refuse_zero_shot():
    for method in ZERO_SHOT_METHODS:
        check_zero_shot(method, 0)
    check_zero_shot("lora", 5)
    with pytest.raises(UsageError) as refused:
        check_zero_shot("lora", 0)
    assert "lora" in refused.value.message and "prompt-diffuser, prompt-dt" in refused.value.message
