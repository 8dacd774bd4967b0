"""SIGKILL every stage at several points: the run is stale, refused downstream by name, nothing complete is
damaged, and `--resume` finishes it to the same result as the uninterrupted run.

The default run kills each stage once; `pytest -m full_matrix` (or `make test-reliability`) runs the whole
matrix. A process that finishes before its kill point fails the test (tests/support/killing.py): a resume
always has work left, and the default pretrain point is a checkpoint before the smoke preset's last step.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from reliability_tools import FAMILY, one_line_error
from safetensors.torch import load_file
from support.cli import in_workspace
from support.killing import (
    after,
    checkpoint_at,
    checkpoint_step,
    file_exists,
    kill_at,
    metrics_rows,
    recorded_outputs,
    stale_run,
    started,
)
from support.stages import smoke_config

from pdiff.data.prompts_file import read_prompts
from pdiff.envs import get_family
from pdiff.methods.registry import METHODS
from pdiff.methods.selection import candidates, grid_for
from pdiff.results.inventory import verify_workspace
from pdiff.stages.common import checkpoint_of
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import RunStatus, load_run

pytestmark = pytest.mark.metaworld
COLLECT_FAMILY = "metaworld-pick-place"  # not collect's default family: a resume must take its run's
COLLECT_ARGS = [
    "--env",
    COLLECT_FAMILY,
    "--preset",
    "smoke",
    "--tasks",
    "0,11,17",
    "--kinds",
    "expert,random,prompt-expert",
]


def dataset_in_place(run_dir: Path) -> bool:
    """A dataset renamed into place, usually before the run has recorded it."""
    return any((run_dir.parents[2] / "datasets").glob("pdiff/*/task-*/*-v0/data/metadata.json"))


# (stage, kill point, predicate on the run directory, in the default run?); the `after-Ns` points are capped
# by a progress point so that a fast machine cannot finish the run first
KILL_POINTS = [
    ("collect", "first-dataset-recorded", recorded_outputs(1), True),
    ("collect", "run-opened", started, False),
    ("collect", "dataset-renamed", dataset_in_place, False),
    ("collect", "after-2s", after(2.0, at_latest=recorded_outputs(1)), False),
    ("pretrain", "checkpoint-10", checkpoint_at(10), True),  # of 20 steps: half the training is left
    ("pretrain", "final-checkpoint", checkpoint_at(20), False),
    ("pretrain", "run-opened", started, False),
    ("pretrain", "first-metrics", metrics_rows(1), False),
    ("pretrain", "after-1s", after(1.0, at_latest=checkpoint_at(20)), False),
    ("pretrain", "after-2s", after(2.0, at_latest=checkpoint_at(20)), False),
    ("diffuse", "run-opened", started, True),
    ("diffuse", "checkpoint-5", checkpoint_at(5), False),
    ("diffuse", "final-checkpoint", checkpoint_at(10), False),
    ("diffuse", "first-metrics", metrics_rows(1), False),
    ("diffuse", "after-1s", after(1.0, at_latest=checkpoint_at(10)), False),
    ("diffuse", "after-2s", after(2.0, at_latest=checkpoint_at(10)), False),
    ("tune", "run-opened", started, True),
    ("tune", "first-tuned-weights", file_exists("tuned/*/*.safetensors"), False),
    ("tune", "after-1s", after(1.0, at_latest=file_exists("tuned/*/*.safetensors")), False),
    ("eval", "run-opened", started, True),
    ("eval", "episodes-written", file_exists("eval/episodes.csv"), False),
    ("eval", "after-1s", after(1.0, at_latest=file_exists("eval/episodes.csv")), False),
]
MATRIX = [
    pytest.param(stage, predicate, id=f"{stage}-{point}", marks=() if default else pytest.mark.full_matrix)
    for stage, point, predicate, default in KILL_POINTS
]
DOWNSTREAM = {  # how a later stage names a run of this stage
    "pretrain": ["diffuse", "--pretrain"],
    "diffuse": ["tune", "--diffuse"],
    "tune": ["eval", "--tune"],
}


def result_of(ws: Workspace, stage: str, run_id: str) -> object:
    """What an uninterrupted and a resumed run must agree on."""
    run = load_run(ws, stage, run_id)
    assert run.status is RunStatus.FINISHED
    if stage in ("pretrain", "diffuse"):  # the tensors: safetensors orders header metadata at random
        weights = load_file(str(checkpoint_of(run) / "model.safetensors"))
        return {name: tensor.numpy().tobytes() for name, tensor in weights.items()}
    if stage == "tune":
        prompts, _ = read_prompts(run.dir / "prompts.h5")
        return {key: {k: v.tolist() for k, v in vars(seg).items()} for key, seg in prompts.items()}
    if stage == "eval":
        results = json.loads((run.dir / "eval" / "results.json").read_text())
        return {k: v for k, v in results.items() if k not in ("tune_run", "pretrain_run")}
    datasets = [o for o in run.manifest["outputs"] if o["kind"] == "dataset"]
    return sorted((o["dataset_id"], o["sha256"]) for o in datasets)


@pytest.fixture(scope="module")
def collect_reference(tmp_path_factory) -> object:
    ws, _ = Workspace.init(tmp_path_factory.mktemp("collect-ref") / "ws")
    result = in_workspace(ws, "--json", "collect", *COLLECT_ARGS)
    assert result.exit_code == 0, result.output
    return result_of(ws, "collect", json.loads(result.stdout)["run_id"])


@pytest.mark.parametrize(("stage", "predicate"), MATRIX)
def test_sigkill_then_resume(stage, predicate, request, tmp_path):
    if stage == "collect":
        reference = request.getfixturevalue("collect_reference")
        ws, _ = Workspace.init(tmp_path / "ws")
        args = COLLECT_ARGS
    else:
        p = request.getfixturevalue("pipeline")
        ws = p.ws
        reference = result_of(ws, stage, getattr(p, stage))
        args = {
            "pretrain": ["--env", FAMILY],
            "diffuse": ["--pretrain", p.pretrain],
            "tune": ["--diffuse", p.diffuse],
            "eval": ["--tune", p.tune, "--device", "cpu"],
        }[stage]
        args = [*args, "--preset", "smoke"]
    kill = kill_at(ws, stage, args, predicate)

    # marked unfinished: stale in the manifest and in `pdiff status`
    assert load_run(ws, stage, kill.run_id).is_stale()
    status = json.loads(in_workspace(ws, "--json", "status").stdout)
    assert any(r["run_id"] == kill.run_id and r["status"] == "STALE" for r in status["attention"])
    # refused by name downstream
    if stage in DOWNSTREAM:
        later = in_workspace(ws, *DOWNSTREAM[stage], kill.run_id, "--preset", "smoke")
        assert later.exit_code == 2
        line = one_line_error(later.stderr)
        assert kill.run_id in line and "STALE" in line
    # nothing complete before the kill is damaged (datasets, recorded outputs, every checkpoint)
    assert verify_workspace(ws)["problems"] == []

    resumed = in_workspace(ws, stage, "--resume", kill.run_id)
    assert resumed.exit_code == 0, resumed.output
    assert result_of(ws, stage, kill.run_id) == reference
    assert verify_workspace(ws)["problems"] == []
    if stage == "collect":  # datasets written before the kill are kept, not duplicated as a new version
        assert not list((ws.root / "datasets").glob("pdiff/*/task-*/*-v1"))
        assert (
            f"collect {COLLECT_FAMILY}" in resumed.output
            and f"pretrain --env {COLLECT_FAMILY}" in resumed.output
        )


def test_a_resume_refuses_inputs_changed_since_the_kill(reach_ws):
    """A dataset re-collected (a new version) after the kill is refused by --resume, not silently mixed in."""
    kill = kill_at(
        reach_ws, "pretrain", ["--env", FAMILY, "--preset", "smoke", "--steps", "40"], checkpoint_at(10)
    )
    again = in_workspace(
        reach_ws, "collect", "--env", FAMILY, "--preset", "smoke", "--tasks", "0", "--kinds", "expert"
    )
    assert again.exit_code == 0, again.output
    assert (reach_ws.datasets_dir / "pdiff" / FAMILY / "task-00" / "expert-v1").is_dir()
    resumed = in_workspace(reach_ws, "pretrain", "--resume", kill.run_id)
    assert resumed.exit_code == 2, resumed.output
    line = one_line_error(resumed.stderr)
    assert f"run {kill.run_id} started on other dataset inputs" in line and "task-00/expert" in line, line
    assert "pretrain` run instead of resuming this one" in resumed.stderr  # the hint: start a new run
    assert checkpoint_step(kill.run_dir) == kill.step  # refused before training: its checkpoint untouched


def test_a_resume_whose_input_is_gone_fails_the_run(pretrained):
    """A diffuse run killed, then its Prompt-DT removed: the resume fails the run (FAILED, exit 2) instead of
    leaving it locked and RUNNING for the next command to find stale."""
    ws, _ = pretrained
    config = smoke_config(ws, "diffuse", pretrain_run="20260101-000000-gone-000000").model_dump(mode="json")
    run_id = stale_run(ws, "diffuse", FAMILY, config)
    resumed = in_workspace(ws, "diffuse", "--resume", run_id)
    assert resumed.exit_code == 2 and "20260101-000000-gone-000000" in one_line_error(resumed.stderr)
    assert load_run(ws, "diffuse", run_id).status is RunStatus.FAILED


def test_a_resume_whose_recorded_config_is_invalid_leaves_the_run_as_it_was(reach_ws):
    run_id = stale_run(reach_ws, "pretrain", FAMILY, {"env": FAMILY, "steps": -1})
    resumed = in_workspace(reach_ws, "pretrain", "--resume", run_id)
    assert resumed.exit_code == 2 and "recorded config is not valid" in one_line_error(resumed.stderr)
    assert load_run(reach_ws, "pretrain", run_id).manifest["resumes"] == []  # never reopened


def finished_trials(run_dir: Path) -> int:
    """Selection trials recorded whole (a line cut by the kill does not count)."""
    path = run_dir / "progress" / "trials.jsonl"
    return path.read_text().count("\n") if path.exists() else 0


def tuned_tensors(run_dir: Path) -> dict[str, bytes]:
    return {
        f"{path.parent.name}/{path.name}/{name}": tensor.numpy().tobytes()
        for path in sorted((run_dir / "tuned").glob("*/*.safetensors"))
        for name, tensor in load_file(str(path)).items()
    }


def counted_tunes(monkeypatch: pytest.MonkeyPatch, method: str) -> list[int]:
    """A list that grows by one each time `method` tunes (a selection trial or an adaptation)."""
    calls: list[int] = []
    real = METHODS[method].tune_task
    monkeypatch.setattr(METHODS[method], "tune_task", lambda context: calls.append(1) or real(context))
    return calls


def every_tune(ws: Workspace, run_id: str) -> int:
    """How many tunes a tune run makes from scratch: every candidate's trial and the adaptation, per job."""
    config = load_run(ws, "tune", run_id).config
    jobs = len(config["seeds"]) * len(get_family(FAMILY).test_tasks)
    return len(candidates(grid_for(config["method"]))) * jobs + jobs


@pytest.mark.parametrize(
    ("method", "point"),
    [
        ("prompt-diffuser", lambda run_dir: finished_trials(run_dir) > 0),
        ("prompt-diffuser", file_exists("progress/seed-*-task-*.h5")),
        ("lora", file_exists("progress/seed-*-task-*.h5")),
    ],
    ids=["during-selection", "during-adaptations", "weights-during-adaptations"],
)
def test_a_killed_tune_resumes_from_what_it_had_finished(method, point, pipeline, monkeypatch):
    """Finished selection trials and (seed, task) adaptations survive a SIGKILL and are not tuned again, and
    the resumed run's prompts (and tuned tensors) are the uninterrupted run's."""
    ws = pipeline.ws
    args = (
        ["--diffuse", pipeline.diffuse] if method == "prompt-diffuser" else ["--pretrain", pipeline.pretrain]
    )
    args = [*args, "--method", method, "--preset", "smoke"]
    uninterrupted = json.loads(in_workspace(ws, "--json", "tune", *args).stdout)["run_id"]
    kill = kill_at(ws, "tune", args, point)
    trials = finished_trials(kill.run_dir)
    adaptations = len(list((kill.run_dir / "progress").glob("seed-*-task-*.h5")))
    assert trials > 0

    calls = counted_tunes(monkeypatch, method)  # every trial and adaptation tuned after the resume
    resumed = in_workspace(ws, "tune", "--resume", kill.run_id)
    assert resumed.exit_code == 0, resumed.output
    assert len(calls) == every_tune(ws, kill.run_id) - trials - adaptations
    log = (kill.run_dir / "log.txt").read_text()
    assert f"resuming: {trials} selection trials and {adaptations} adaptations were finished before" in log
    assert result_of(ws, "tune", kill.run_id) == result_of(ws, "tune", uninterrupted)
    assert tuned_tensors(kill.run_dir) == tuned_tensors(load_run(ws, "tune", uninterrupted).dir)
    assert not (kill.run_dir / "progress").exists()  # dropped once the run's outputs and summary are written


def test_a_killed_tune_keeps_nothing_when_its_fewshot_data_changed(pipeline, monkeypatch):
    """A test task's few-shot dataset re-collected (a new version) between the kill and the resume: the
    finished trials were computed from the old data, so the resumed run tunes everything again."""
    args = ["--diffuse", pipeline.diffuse, "--preset", "smoke"]
    kill = kill_at(pipeline.ws, "tune", args, lambda run_dir: finished_trials(run_dir) > 0)
    task = get_family(FAMILY).test_tasks[0]
    again = in_workspace(
        pipeline.ws,
        "collect",
        "--env",
        FAMILY,
        "--preset",
        "smoke",
        "--tasks",
        str(task),
        "--kinds",
        "expert",
    )
    assert again.exit_code == 0, again.output
    calls = counted_tunes(monkeypatch, load_run(pipeline.ws, "tune", kill.run_id).config["method"])
    resumed = in_workspace(pipeline.ws, "tune", "--resume", kill.run_id)
    assert resumed.exit_code == 0, resumed.output
    assert len(calls) == every_tune(pipeline.ws, kill.run_id)
    log = (kill.run_dir / "log.txt").read_text()
    assert "the few-shot data or device changed since the kill; tuning starts again" in log
    assert "selection trials and" not in log.split("tuning starts again")[-1]  # nothing kept after that
