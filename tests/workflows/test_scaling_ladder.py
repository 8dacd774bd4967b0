"""The scaling ladder's parts: the rungs' budgets, reproduce reusing a pretrain that differs only in how often
it logged and checkpointed, tune on chosen tasks (training tasks for the fidelity measurement only)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pdiff.envs import get_family
from pdiff.errors import UsageError
from pdiff.ladder import RUNGS, STRONGEST_WEIGHT_TUNING, implied_samples, rung_commands
from pdiff.results.editions import EARLIER_DIR
from pdiff.stages.common import open_run, stage_run
from pdiff.stages.tune import TuneConfig, tune_tasks
from pdiff.workflows.pipeline import find_done, resolve_step, split_overrides, stage_config
from pdiff.workflows.scaling import fidelity_tasks
from pdiff.workflows.steps import Step
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import RunStatus

FAMILY = "cheetah-vel"


def test_the_paper_rung_is_the_papers_budget_two_hundred_times_the_study_presets():
    study = implied_samples(RUNGS["x1"], FAMILY)
    assert study == 4000 * 1 * 35  # the study preset: 4,000 steps × 1 segment × 35 training tasks
    assert [implied_samples(RUNGS[r], FAMILY) // study for r in ("x4", "x16", "paper")] == [4, 16, 200]


@pytest.mark.parametrize("name", list(RUNGS))
def test_every_rung_is_a_valid_set_family_of_reproduce(tmp_path, name):
    ws, _ = Workspace.init(tmp_path / "ws")
    for stage, items in split_overrides(list(RUNGS[name].overrides)).items():
        config = stage_config(ws, stage, "study", {"env": FAMILY}, items)
        for item in items:
            key, value = item.split("=")
            assert getattr(config, key) == int(value)


# The settings that make each training stage's config (a diffuse run names its Prompt-DT), and a budget.
INPUTS = {"pretrain": {"env": FAMILY}, "diffuse": {"env": FAMILY, "pretrain_run": "a-pretrain-run"}}
BUDGETS = {"pretrain": {"batch_per_task": 4}, "diffuse": {"steps": 7}}


def finished_run(ws: Workspace, stage: str, killed: bool = False, **settings: int) -> str:
    """A FINISHED (or KILLED) run record of `stage`'s smoke config with `settings` changed (nothing
    trained)."""
    config = stage_config(ws, stage, "smoke", {**INPUTS[stage], **settings})
    run, _ = open_run(ws, stage, config, argv=["pdiff", stage], family=FAMILY, seed=0)
    if killed:  # as a Ctrl-C leaves it
        run.end_badly(RunStatus.KILLED, "interrupted")
        run.release()
        return run.run_id
    with stage_run(run):
        pass
    return run.run_id


@pytest.mark.parametrize("stage", ["pretrain", "diffuse"])
def test_reproduce_reuses_a_run_that_differs_only_in_logging_and_checkpointing(tmp_path, stage):
    ws, _ = Workspace.init(tmp_path / "ws")
    cadence = finished_run(ws, stage, log_every=7, checkpoint_every=3, keep_checkpoints=5)
    step = Step(f"{stage}:{FAMILY}", stage, FAMILY, INPUTS[stage])
    wanted = stage_config(ws, stage, "smoke", INPUTS[stage])
    assert find_done(ws, step, wanted).run_id == cadence
    for changed in (BUDGETS[stage], {"curve_every": 5}):  # a budget; a curve the reused run never drew
        assert find_done(ws, step, stage_config(ws, stage, "smoke", {**INPUTS[stage], **changed})) is None


@pytest.mark.parametrize("stage", ["pretrain", "diffuse"])
def test_reproduce_resumes_a_killed_run_that_differs_only_in_logging_and_checkpointing(tmp_path, stage):
    ws, _ = Workspace.init(tmp_path / "ws")
    killed = finished_run(ws, stage, killed=True, log_every=7, checkpoint_every=3)
    step = Step(f"{stage}:{FAMILY}", stage, FAMILY, INPUTS[stage])
    assert resolve_step(ws, step, "smoke", {}, {}, {}).stale.run_id == killed
    other_budget = Step(f"{stage}:{FAMILY}", stage, FAMILY, {**INPUTS[stage], **BUDGETS[stage]})
    assert resolve_step(ws, other_budget, "smoke", {}, {}, {}).stale is None


def tune_config(**settings) -> TuneConfig:
    return TuneConfig(env=FAMILY, **settings)


def test_tune_adapts_to_the_test_tasks_unless_told_otherwise():
    family = get_family(FAMILY)
    assert tune_tasks(tune_config(), family) == list(family.test_tasks)
    assert tune_tasks(tune_config(tasks=[7, 2, 7]), family) == [7, 2]
    for method in ("prompt-diffuser", "prompt-dt"):  # training tasks: the fidelity measurement
        assert tune_tasks(tune_config(method=method, tasks=[0, 10]), family) == [0, 10]


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        (
            {"method": "soft-prompt", "tasks": [0]},
            "0 is a training task of cheetah-vel, and soft-prompt tunes on test",
        ),
        ({"shots": 0, "tasks": [0]}, "shots=0 has no few-shot data"),
        ({"tasks": [40]}, "task id 40 is out of range"),
    ],
)
def test_tasks_tune_may_not_take_are_refused(settings, words):
    with pytest.raises(UsageError, match=words):
        tune_tasks(tune_config(**settings), get_family(FAMILY))


def test_fidelity_takes_as_many_training_tasks_as_there_are_test_tasks():
    family = get_family(FAMILY)
    tasks = fidelity_tasks(family)
    assert len(tasks) == len(family.test_tasks) and not set(tasks) & set(family.test_tasks)
    assert tasks[0] == min(family.train_tasks) and tasks[-1] == max(family.train_tasks)
    with pytest.raises(UsageError, match="test tasks are its training tasks"):
        fidelity_tasks(get_family("cheetah-dir"))


def test_the_study_pages_ladder_is_the_codes():
    page = (Path(__file__).resolve().parents[2] / "docs" / "study.md").read_text().split("## Scaling")[1]
    rows = {line.split(" | ")[0].strip("| `"): line for line in page.splitlines() if line.startswith("| `")}
    assert list(rows) == list(RUNGS)
    for name, rung in RUNGS.items():
        assert all(item in rows[name] for item in rung.overrides)
        samples = [f"{implied_samples(rung, family):,}" for family in ("cheetah-dir", FAMILY)]
        assert rows[name].rstrip(" |").split(" | ")[-2:] == samples


def test_each_rung_runs_the_strongest_weight_tuning_method_of_the_first_edition():
    """The weight-tuning method a rung runs is the one with the highest Table 1 mean in the published
    study."""
    import json

    results = Path(__file__).resolve().parents[2] / "docs" / "results"
    for family, method in STRONGEST_WEIGHT_TUNING.items():
        first_edition = results / EARLIER_DIR / f"{family}-study"  # once a second edition replaced it
        study = first_edition if first_edition.exists() else results / f"{family}-study"
        cells = json.loads((study / "report.json").read_text())["results"]
        means = {
            c["method"]: c["score"]["mean"]
            for c in cells
            if c["data_kind"] == "expert" and c["method"] in ("adaptor", "lora", "full-ft")
        }
        assert max(means, key=means.get) == method, (family, means)
        assert (
            f"--methods prompt-diffuser,prompt-dt,ptdt,full-data,{method} "
            in rung_commands(RUNGS["x4"], family, "d")[0]
        )


REPO = Path(__file__).resolve().parents[2]


def run_rung_script(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "run_rung.py"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
    )


def test_the_rung_script_prints_the_paper_rung_of_a_held_out_family_with_its_fidelity_runs():
    shown = run_rung_script("paper", "--env", FAMILY, "--workspace", "ws", "--jobs", "1", "--dry-run")
    assert shown.returncode == 0, shown.stderr
    commands = [line.removeprefix("$ ") for line in shown.stdout.splitlines()]
    report_dir = f"docs/results/scaling/{FAMILY}/paper"
    assert commands == rung_commands(RUNGS["paper"], FAMILY, report_dir, "ws", 1)
    assert "--set pretrain.steps=50000" in commands[0] and "--jobs 1" in commands[0]
    assert commands[1] == f"python scripts/fidelity.py ws --env {FAMILY}"


def test_the_rung_script_stops_at_the_first_failing_command_with_its_exit_code(tmp_path):
    not_a_workspace = tmp_path / "file"
    not_a_workspace.write_text("")
    ran = run_rung_script("x4", "--env", "cheetah-dir", "--workspace", str(not_a_workspace), cwd=tmp_path)
    assert ran.returncode == 2, ran.stderr
    reproduce = rung_commands(RUNGS["x4"], "cheetah-dir", "unused", str(not_a_workspace))[0]
    shown = [line for line in ran.stdout.splitlines() if line.startswith("$ ")]
    assert shown == [f"$ {reproduce}"]  # the report never ran
    unknown = run_rung_script("x9", "--env", FAMILY, "--dry-run")
    assert unknown.returncode == 2 and "rungs: x1, x4, x16, paper" in unknown.stderr
