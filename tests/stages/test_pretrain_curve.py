"""pretrain's learning curve on training tasks (`curve_every`): logged and plotted, rolled out on training
tasks only, and without any effect on what is trained; and a run recorded before the setting existed still
counts as finished for reproduce."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support.stages import run_smoke, smoke_config
from support.weights import assert_same_weights, latest_weights

from pdiff.data.batches import PromptBank
from pdiff.data.loader import load_family_data
from pdiff.envs import get_family
from pdiff.rollouts.budget import plateau_budget
from pdiff.rollouts.curve import TrainingTaskCurve
from pdiff.workflows.pipeline import same_config

pytestmark = pytest.mark.metaworld


def test_the_curve_is_logged_and_plotted_and_changes_nothing_trained(reach_ws):
    plain, _ = run_smoke(reach_ws, "pretrain")
    curved, _ = run_smoke(reach_ws, "pretrain", curve_every=10, curve_tasks=2)
    rows = [json.loads(line) for line in (curved.dir / "metrics.jsonl").read_text().splitlines()]
    points = [r for r in rows if r["phase"] == "curve"]
    assert [r["step"] for r in points] == [10, 20]
    assert all(np.isfinite(r["train_task_return"]) and 0 <= r["train_task_success"] <= 1 for r in points)
    assert (curved.dir / "learning_curve.png").is_file()
    assert_same_weights(latest_weights(curved.dir), latest_weights(plain.dir))


def test_the_curve_rolls_out_training_tasks_only(reach_ws):
    family = get_family("metaworld-reach")
    tasks = family.training_tasks()
    data = load_family_data(reach_ws.datasets_dir, family.name, "prompt-expert", tasks)
    bank = PromptBank(
        data,
        prompt_len=5,
        rtg_scale=family.rtg_scale,
        state_mean=np.zeros(39, np.float32),
        state_std=np.ones(39, np.float32),
        max_ep_len=1000,
    )
    curve = TrainingTaskCurve.build(family, bank, tasks, count=50, episodes=1, seed=0)
    assert curve.tasks == tasks and not set(curve.tasks) & set(family.test_tasks)
    assert set(curve.prompts.tasks.tolist()) == set(tasks)  # each task reads a prompt of its own


def test_a_run_recorded_before_a_setting_existed_still_matches(reach_ws):
    older, _ = run_smoke(reach_ws, "pretrain")
    for key in ("curve_every", "curve_tasks", "curve_episodes"):
        del older.manifest["config"][key]  # as an older pdiff recorded it
    config = smoke_config(reach_ws, "pretrain")
    assert same_config("pretrain", config)(older)
    assert not same_config("pretrain", config.model_copy(update={"curve_every": 5}))(older)


def test_the_budget_script_reads_the_curve_and_draws_it(reach_ws, tmp_path):
    curved, _ = run_smoke(reach_ws, "pretrain", curve_every=2, curve_tasks=2)
    script = Path(__file__).parents[2] / "scripts" / "size_budget.py"
    command = [
        sys.executable,
        str(script),
        str(reach_ws.root),
        curved.run_id,
        "--json",
        "--out",
        str(tmp_path / "b.png"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    budget = json.loads(done.stdout)[f"pretrain {curved.run_id}"]
    assert (tmp_path / "b.png").is_file()
    rows = [json.loads(line) for line in (curved.dir / "metrics.jsonl").read_text().splitlines()]
    points = [(r["step"], r["train_task_return"]) for r in rows if r["phase"] == "curve"]
    assert [s for s, _ in points] == list(range(2, 21, 2))
    expected = plateau_budget([s for s, _ in points], [v for _, v in points], key="train_task_return")
    # the script reads what the run logged (compared as JSON text: a curve that never rose has NaN shares)
    as_read = json.loads(json.dumps(expected.to_dict()))
    assert json.dumps(budget, sort_keys=True) == json.dumps(as_read, sort_keys=True)
