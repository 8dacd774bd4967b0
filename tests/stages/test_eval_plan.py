"""Evaluation counts what varies: on Meta-World (resets ignored) every few-shot prompt runs once instead of
one rollout repeated, and every method's cell stands on as many rollouts per (seed, task); results say how
many distinct rollouts stand behind them."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from support.cli import runner

from pdiff.cli import app
from pdiff.config import resolve_config
from pdiff.data.batches import Segments
from pdiff.data.loader import load_family_data
from pdiff.data.prompts_file import read_prompts
from pdiff.envs import get_family
from pdiff.methods.registry import METHODS
from pdiff.models.checkpoint import read_model_config
from pdiff.rollouts.plan import in_turn, plan_episodes
from pdiff.rollouts.prompt_sources import prompts_per_task
from pdiff.stages.common import checkpoint_of
from pdiff.stages.eval import EvalConfig, run_eval
from pdiff.stages.pretrain import PretrainConfig, run_pretrain
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import find_run

REACH = "metaworld-reach"


def _prompts(count: int, task: int) -> Segments:
    ones = np.ones((count, 5), np.float32)
    return Segments(
        states=np.zeros((count, 5, 2), np.float32),
        actions=np.zeros((count, 5, 1), np.float32),
        rewards=ones * task,
        returns_to_go=ones[..., None],
        timesteps=np.zeros((count, 5), np.int64),
        mask=ones,
        tasks=np.full(count, task),
    )


def distinct_rollouts(episodes_csv: Path) -> tuple[int, list[dict]]:
    """Rollouts that differ (task, return, length) in a run's episodes.csv, and its rows."""
    with open(episodes_csv) as handle:
        rows = list(csv.DictReader(handle))
    return len({(r["task"], float(r["return"]), int(r["length"])) for r in rows}), rows


def test_plan_rolls_every_prompt_for_each_reset():
    plan = plan_episodes([3, 8], {3: _prompts(2, 3), 8: _prompts(1, 8)}, 2, lambda task, e: 100 * task + e)
    assert plan.tasks == [3, 3, 8]
    assert plan.resets == [[300, 301], [302, 303], [800, 801]]
    assert plan.episode_numbers == [[0, 1], [2, 3], [0, 1]]
    assert plan.prompts.rewards[:, 0].tolist() == [3, 3, 8] and plan.rows_of(3) == [0, 1]


def test_a_learned_prompt_repeats_in_turn_up_to_the_count():
    assert in_turn(_prompts(1, 3), 3).rewards[:, 0].tolist() == [3, 3, 3]
    two = _prompts(2, 3)
    two.rewards[1] = 7
    assert in_turn(two, 3).rewards[:, 0].tolist() == [3, 7, 3]


@pytest.mark.metaworld
def test_every_method_gets_one_prompt_per_fewshot_episode_where_resets_do_not_vary():
    reach, cheetah = get_family(REACH), get_family("cheetah-vel")
    assert prompts_per_task(reach, EvalConfig(env=REACH, shots=2)) == 2  # whatever the method
    assert prompts_per_task(reach, EvalConfig(env=REACH, shots=0), stored=1) == 1  # a zero-shot run's own
    assert (
        prompts_per_task(cheetah, EvalConfig(env="cheetah-vel", shots=5)) == 1
    )  # rolled out `episodes` times


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
    config = resolve_config(
        EvalConfig,
        "eval",
        workspace=reach_ws,
        preset="smoke",
        flags={"env": REACH, "prompt": "fewshot", "episodes": 3},
    )
    run, summary = run_eval(reach_ws, config, argv=["pdiff", "eval"])
    shots, tasks = config.shots, get_family(REACH).test_tasks
    distinct, rows = distinct_rollouts(run.dir / "eval" / "episodes.csv")
    assert len(rows) == len(config.seeds) * len(tasks) * shots  # `episodes` repeats nothing here
    assert sorted({int(r["episode"]) for r in rows}) == list(range(shots))
    assert summary["episodes_per_task"] == shots
    assert summary["distinct_rollouts"] == distinct
    assert np.array(summary["by_seed_task"]["return"]).shape == (len(config.seeds), len(tasks))


@pytest.mark.metaworld
def test_every_cell_of_a_smoke_reach_matrix_stands_on_equal_rollouts(collected_template, tmp_path):
    root = tmp_path / "ws"
    shutil.copytree(collected_template, root)
    methods = [*METHODS, "full-data", "random-prompt"]
    result = runner.invoke(
        app,
        [
            "-w",
            str(root),
            "--json",
            "reproduce",
            "--preset",
            "smoke",
            "--env",
            REACH,
            "--methods",
            ",".join(methods),
            "--seeds",
            "0,1",
        ],
    )
    assert result.exit_code == 0, result.output
    ws = Workspace.open(root)
    evals = {
        s["summary"]["method"]: s for s in json.loads(result.stdout)["steps"] if s["step"].startswith("eval:")
    }
    assert sorted(evals) == sorted(methods)
    shots, seeds, tasks = 2, [0, 1], get_family(REACH).test_tasks  # the smoke preset's shots
    for method, step in evals.items():
        distinct, rows = distinct_rollouts(find_run(ws, step["run_id"], "eval").dir / "eval" / "episodes.csv")
        counts = Counter((int(r["seed"]), int(r["task"])) for r in rows)
        assert counts == {(seed, task): shots for seed in seeds for task in tasks}, method
        assert step["summary"]["episodes_per_task"] == shots
        assert step["summary"]["distinct_rollouts"] == distinct, method

    def stored(method: str) -> dict:
        tuned = find_run(ws, find_run(ws, evals[method]["run_id"], "eval").config["tune_run"], "tune")
        return read_prompts(tuned.dir / "prompts.h5")[0]

    # one prompt per few-shot episode (Prompt Diffuser's generated from each); ptdt's is the one it learns
    for method in METHODS:
        assert {len(p) for p in stored(method).values()} == {1 if method == "ptdt" else shots}, method
    assert evals["ptdt"]["summary"]["distinct_rollouts"] <= len(seeds) * len(tasks)


def test_an_eval_config_names_each_task_once_so_the_one_a_run_records_matches_the_one_computed():
    # reproduce and scripts/fidelity.py compare a finished eval's recorded config with the one they compute
    assert EvalConfig(tasks=[0, 0, 10]).tasks == [0, 10] == EvalConfig(tasks=[0, 10]).tasks
