"""Evaluation counts what varies: on Meta-World (resets ignored) every few-shot prompt runs once instead of
one rollout repeated; results say how many distinct rollouts stand behind them."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import numpy as np
import pytest

from pdiff.config import resolve_config
from pdiff.data.batches import Segments
from pdiff.data.loader import load_family_data
from pdiff.envs import get_family
from pdiff.eval.plan import plan_episodes
from pdiff.models.checkpoint import read_model_config
from pdiff.stages.common import checkpoint_of
from pdiff.stages.eval import EvalConfig, prompts_per_task, run_eval
from pdiff.stages.pretrain import PretrainConfig, run_pretrain

REACH = "metaworld-reach"


def _prompts(count: int, task: int) -> Segments:
    ones = np.ones((count, 5), np.float32)
    return Segments(states=np.zeros((count, 5, 2), np.float32), actions=np.zeros((count, 5, 1), np.float32),
                    rewards=ones * task, returns_to_go=ones[..., None], timesteps=np.zeros((count, 5), np.int64),
                    mask=ones, tasks=np.full(count, task))  # fmt: skip


def test_plan_rolls_every_prompt_for_each_reset():
    plan = plan_episodes([3, 8], {3: _prompts(2, 3), 8: _prompts(1, 8)}, 2, lambda task, e: 100 * task + e)
    assert plan.tasks == [3, 3, 8]
    assert plan.resets == [[300, 301], [302, 303], [800, 801]]
    assert plan.episode_numbers == [[0, 1], [2, 3], [0, 1]]
    assert plan.prompts.rewards[:, 0].tolist() == [3, 3, 8] and plan.rows_of(3) == [0, 1]


@pytest.mark.metaworld
def test_a_zero_shot_prompt_dt_run_is_evaluated_with_its_one_prompt_per_task():
    few, zero = (
        SimpleNamespace(config={"method": "prompt-dt", "shots": n}) for n in (2, 0)
    )  # tune runs' configs
    reach = get_family(REACH)
    assert prompts_per_task(reach, EvalConfig(env=REACH, shots=2), few) == 2  # each few-shot prompt in turn
    assert prompts_per_task(reach, EvalConfig(env=REACH, shots=0), zero) == 1  # its own, from training tasks


@pytest.mark.metaworld
def test_metaworld_eval_runs_each_fewshot_prompt_once_and_counts_distinct_rollouts(reach_ws):
    assert not get_family(REACH).resets_vary and get_family("cheetah-vel").resets_vary
    config = resolve_config(
        PretrainConfig, "pretrain", workspace=reach_ws, preset="smoke", flags={"env": REACH}
    )
    pretrain, _ = run_pretrain(reach_ws, config, argv=["pdiff", "pretrain"])
    # the starting return-to-go is one the training data reaches: its best episode return
    model_config = read_model_config(checkpoint_of(pretrain))
    data = load_family_data(reach_ws.datasets_dir, REACH, "expert", get_family(REACH).train_tasks)
    assert model_config["eval_target"] == pytest.approx(float(data.episode_returns.max()))
    config = resolve_config(EvalConfig, "eval", workspace=reach_ws, preset="smoke",
                            flags={"env": REACH, "prompt": "fewshot", "episodes": 3})  # fmt: skip
    run, summary = run_eval(reach_ws, config, argv=["pdiff", "eval"])
    shots, tasks = config.shots, get_family(REACH).test_tasks
    with open(run.dir / "eval" / "episodes.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(config.seeds) * len(tasks) * shots  # `episodes` repeats nothing here
    assert sorted({int(r["episode"]) for r in rows}) == list(range(shots))
    assert summary["episodes_per_task"] == shots
    assert 1 <= summary["distinct_rollouts"] <= len(rows)
    assert np.array(summary["by_seed_task"]["return"]).shape == (len(config.seeds), len(tasks))
