"""`pdiff reproduce` and `pdiff report` at the smoke preset on Meta-World reach: the matrix runs end to end,
a second invocation starts nothing, a killed step is resumed, the full-data pretrain sees every task."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from support.cli import runner, succeeded
from support.killing import checkpoint_at, file_exists, kill_at

from pdiff.cli import app
from pdiff.collection.sources import episode_plan
from pdiff.results.scaling import write_scaling
from pdiff.workflows.pipeline import scored_against_current_references
from pdiff.workflows.scaling import run_fidelity
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import RunStatus, find_run, list_runs

pytestmark = pytest.mark.metaworld
FAMILY = "metaworld-reach"
MATRIX = [
    "reproduce",
    "--preset",
    "smoke",
    "--env",
    FAMILY,
    "--methods",
    "prompt-dt,prompt-diffuser,full-data",
]


@pytest.fixture(scope="module")
def reproduced_template(collected_template, tmp_path_factory):
    """One reproduce run for this module: (workspace root, its JSON output, its stderr)."""
    root = tmp_path_factory.mktemp("reproduce") / "ws"
    shutil.copytree(collected_template, root)
    result = succeeded(Workspace.open(root), "--json", *MATRIX)
    return root, result.stdout, result.stderr


@pytest.fixture
def reproduced(reproduced_template, tmp_path):
    """A private copy of the reproduced workspace, so that no test sees another's runs:
    (ws, payload, stderr)."""
    template, stdout, stderr = reproduced_template
    root = tmp_path / "reproduced-ws"
    shutil.copytree(template, root)
    payload = json.loads(stdout.replace(str(template), str(root)))
    return Workspace.open(root), payload, stderr


def all_run_ids(ws: Workspace) -> set[str]:
    return {r.run_id for r in list_runs(ws)}


def test_reproduce_runs_the_matrix_and_reports_it(reproduced):
    ws, payload, stderr = reproduced
    states = {s["step"]: s["state"] for s in payload["steps"]}
    assert states[f"collect:{FAMILY}"] == "reused"  # the fixture's collect holds expert and prompt-expert
    ran = {k for k, v in states.items() if v == "ran"}
    steps = {f"pretrain:{FAMILY}", f"pretrain-full:{FAMILY}", f"diffuse:{FAMILY}:project:seed-0", "report"}
    assert steps <= ran
    evals = [s for s in payload["steps"] if s["step"].startswith("eval:")]
    assert sorted(s["summary"]["method"] for s in evals) == ["full-data", "prompt-diffuser", "prompt-dt"]
    assert f"[1/{len(states)}]" in stderr
    assert "pdiff pretrain --env metaworld-reach --include-test-tasks" in stderr
    report = Path(payload["report"])
    text = report.read_text()
    table1 = text.split("### Table 1")[1].split("###")[0]
    assert "| method | metaworld-reach (ours) | MW reach-v2 (paper) |" in table1
    for row in ("| prompt-diffuser |", "| prompt-dt |", "| full-data |"):
        assert row in table1
    assert "555.7 ± 6.8" in table1 and "success" in table1  # the paper's reach figure; Meta-World detail
    assert "## Where Prompt Diffuser stands" in text and "### Setting: ours vs the paper's" in text
    assert "prompt-diffuser chosen: lr " in text  # what the selection protocol chose is in the settings
    assert "precision: fp32" in text and "torch threads: 1" in text and "cpu: " in text  # what computed them
    figures = sorted(p.name for p in (report.parent / "figures").iterdir())
    assert "table1-2shots.png" in figures and any(n.startswith("curve-pretrain-") for n in figures)
    assert all((report.parent / "figures" / n).read_bytes()[:4] == b"\x89PNG" for n in figures)


def test_a_second_reproduce_starts_nothing(reproduced):
    ws, first, _ = reproduced
    before = all_run_ids(ws)
    again = json.loads(succeeded(ws, "--json", *MATRIX).stdout)
    assert {s["state"] for s in again["steps"]} == {"reused"}
    assert all_run_ids(ws) == before and again["report"] == first["report"]
    # zero_shot_source is read only at shots=0: setting it leaves the few-shot cells as they are
    none = succeeded(ws, "--json", *MATRIX, "--set", "tune.zero_shot_source=none", "--dry-run")
    assert {s["state"] for s in json.loads(none.stdout)["steps"]} == {"reused"}


def test_expert_data_measured_again_reruns_the_evals_only(reproduced, monkeypatch):
    """The expert data collected again (a new version, the same episodes) by a collect that measured the
    random reference on one episode, as a Table-1-only collect once did: the Prompt-DTs, diffusion models
    and tunes stand (their data is unchanged), every eval runs again against the new references, and its
    raw returns are those it had."""
    ws, first, _ = reproduced

    def one_random_episode(*args, **kwargs) -> tuple:
        return tuple((spec, 1 if spec.kind == "random" else n) for spec, n in episode_plan(*args, **kwargs))

    monkeypatch.setattr("pdiff.stages.collect.episode_plan", one_random_episode)
    succeeded(ws, "collect", "--env", FAMILY, "--preset", "smoke", "--kinds", "expert")
    monkeypatch.undo()
    again = json.loads(succeeded(ws, "--json", *MATRIX).stdout)
    ran = {s["step"] for s in again["steps"] if s["state"] == "ran"}
    evals = {s["step"] for s in again["steps"] if s["step"].startswith("eval:")}
    assert evals and ran == evals | {"report"}
    before = {s["step"]: s["summary"] for s in first["steps"] if s["step"] in evals}
    for step in (s for s in again["steps"] if s["step"] in evals):
        assert step["summary"]["by_seed_task"]["return"] == before[step["step"]]["by_seed_task"]["return"]
        assert step["summary"]["normalized_mean"] != before[step["step"]]["normalized_mean"]


def test_an_eval_whose_results_cannot_be_read_is_not_reused(reproduced):
    ws, _, _ = reproduced
    evals = list_runs(ws, "eval", FAMILY)
    assert evals and all(scored_against_current_references(ws, run) for run in evals)
    results = evals[0].dir / "eval" / "results.json"
    results.write_text(results.read_text()[:40])  # cut short
    assert not scored_against_current_references(ws, evals[0])


def test_dry_run_prints_the_plan_and_creates_nothing(reproduced):
    ws, _, _ = reproduced
    before = all_run_ids(ws)
    result = succeeded(ws, "--json", *MATRIX[:-1], "prompt-dt,random-prompt", "--dry-run")
    states = {s["step"]: s["state"] for s in json.loads(result.stdout)["steps"]}
    assert states[f"eval:random-prompt:{FAMILY}"] == "planned" and states[f"pretrain:{FAMILY}"] == "reused"
    assert "run: pdiff eval --env metaworld-reach --pretrain" in result.stderr
    assert all_run_ids(ws) == before


def test_a_dry_run_on_a_new_path_plans_everything_and_leaves_no_workspace(tmp_path):
    root = tmp_path / "not-yet"
    result = runner.invoke(app, ["-w", str(root), "--json", *MATRIX, "--dry-run"])
    assert result.exit_code == 0, result.output
    states = {s["state"] for s in json.loads(result.stdout)["steps"]}
    assert states == {"planned"} and not root.exists()


def test_full_data_pretrain_trains_on_every_task(reproduced):
    ws, payload, _ = reproduced
    ids = {s["step"]: s["run_id"] for s in payload["steps"]}
    full, plain = (find_run(ws, ids[f"{k}:{FAMILY}"], "pretrain") for k in ("pretrain-full", "pretrain"))
    configs = [
        json.loads((r.dir / r.manifest["summary"]["checkpoint"] / "model_config.json").read_text())
        for r in (full, plain)
    ]
    assert configs[0]["train_tasks"] == list(range(50)) and 11 not in configs[1]["train_tasks"]
    assert configs[0]["state_mean"] != configs[1]["state_mean"]  # statistics of all the tasks used
    assert any("task-11/expert" in i["ref"] for i in full.manifest["inputs"])


def test_report_picks_the_newest_run_of_a_cell_and_copies_out(reproduced, tmp_path):
    ws, payload, _ = reproduced
    ids = {s["step"]: s["run_id"] for s in payload["steps"]}
    tune = ids[f"tune:{FAMILY}:prompt-dt:expert"]
    newer = json.loads(succeeded(ws, "--json", "eval", "--tune", tune).stdout)["run_id"]
    older = ids[f"eval:tune:{FAMILY}:prompt-dt:expert"]
    result = succeeded(
        ws, "--json", "report", "--runs", older, "--runs", newer, "--out", str(tmp_path / "out")
    )
    data = json.loads(result.stdout)["data"]
    assert [r["run_id"] for r in data["results"]] == [newer]
    assert data["superseded"] == [{"run": older, "used": newer}]
    copied = (tmp_path / "out" / "report.md").read_text()
    assert f"`{older}` is superseded by the newer `{newer}`" in copied
    assert (tmp_path / "out" / "figures" / "table1-2shots.png").is_file()


def test_fidelity_runs_on_training_tasks_are_reported_apart_from_the_test_cells(reproduced, tmp_path):
    """The scaling study's fidelity measurement: Table 1's prompt-diffuser and prompt-dt runs repeated on
    training tasks (every other setting as recorded), reported beside the test cells, never in their place."""
    ws, payload, _ = reproduced
    steps = run_fidelity(ws, FAMILY, None, ["pdiff-test"])
    assert [s.state for s in steps] == ["ran"] * 4
    for evaluated in (find_run(ws, s.run_id, "eval") for s in steps if s.step.startswith("eval:")):
        assert evaluated.config["tasks"] == [0, 12, 24, 37, 49]  # reach's test tasks are 11, 17, 25, 36, 41
        assert evaluated.manifest["summary"]["tasks_kind"] == "training"
    assert {s.state for s in run_fidelity(ws, FAMILY, None, ["pdiff-test"])} == {"reused"}
    out = tmp_path / "x1"
    succeeded(ws, "report", "--env", FAMILY, "--out", str(out))
    report = json.loads((out / "report.json").read_text())
    tested = {s["run_id"] for s in payload["steps"] if s["step"].startswith("eval:")}
    assert {r["run_id"] for r in report["results"]} == tested and not report["superseded"]
    assert sorted(r["method"] for r in report["fidelity"]) == ["prompt-diffuser", "prompt-dt"]
    assert "### Generator fidelity on training tasks" in (out / "report.md").read_text()
    page = write_scaling([out], tmp_path / "scaling").read_text()
    assert f"| x1 | {FAMILY} | expert | 2 | training tasks 0, 12, 24, 37, 49 |" in page
    assert "| method | x1 (900 samples) |" in page  # smoke: 20 steps × 1 segment × 45 training tasks


def test_missing_test_task_data_for_full_data_is_a_clear_error(collected_template, tmp_path):
    root = tmp_path / "ws"
    shutil.copytree(collected_template, root)
    shutil.rmtree(root / "datasets" / "pdiff" / FAMILY / "task-11")
    result = runner.invoke(
        app, ["-w", str(root), "pretrain", "--env", FAMILY, "--preset", "smoke", "--include-test-tasks"]
    )
    assert result.exit_code == 2 and "--include-test-tasks" in result.stderr
    assert "collect --env metaworld-reach --tasks 11,17,25,36,41" in result.stderr


def test_an_interrupted_reproduce_resumes_the_killed_step(reproduced):
    ws, _, _ = reproduced
    args = [*MATRIX[:-1], "prompt-dt", "--set", "pretrain.steps=150", "--set", "pretrain.checkpoint_every=10"]
    killed = kill_at(ws, "reproduce", args[1:], checkpoint_at(10), watch="pretrain")
    assert killed.step is not None and killed.step < 150
    assert find_run(ws, killed.run_id, "pretrain").is_stale()
    result = succeeded(ws, "--json", *args)
    steps = {s["step"]: s for s in json.loads(result.stdout)["steps"]}
    assert steps[f"pretrain:{FAMILY}"]["state"] == "resumed"
    assert steps[f"pretrain:{FAMILY}"]["run_id"] == killed.run_id
    assert f"--resume {killed.run_id}" in result.stderr
    resumed = find_run(ws, killed.run_id, "pretrain")
    assert resumed.status is RunStatus.FINISHED and resumed.manifest["resumes"]
    assert resumed.manifest["summary"]["steps"] == 150
    assert {s["state"] for s in steps.values()} <= {"reused", "ran", "resumed"}


def test_an_interrupted_reproduce_resumes_a_killed_tune_from_what_it_had_finished(reproduced):
    ws, _, _ = reproduced
    args = [*MATRIX[:-1], "prompt-diffuser", "--set", "tune.steps=4"]  # a new tune on the finished models
    killed = kill_at(ws, "reproduce", args[1:], file_exists("progress/seed-*-task-*.h5"), watch="tune")
    adaptations = len(list((killed.run_dir / "progress").glob("seed-*-task-*.h5")))
    result = succeeded(ws, "--json", *args)
    steps = {s["step"]: s for s in json.loads(result.stdout)["steps"]}
    tune = next(s for key, s in steps.items() if key.startswith("tune:"))
    assert tune["state"] == "resumed" and tune["run_id"] == killed.run_id
    log = (killed.run_dir / "log.txt").read_text()
    assert f"selection trials and {adaptations} adaptations were finished before" in log
    assert find_run(ws, killed.run_id, "tune").status is RunStatus.FINISHED


def summaries(payload: dict) -> dict[str, dict]:
    return {s["step"]: s["summary"] for s in payload["steps"] if s["step"].startswith("eval:")}


def test_jobs_run_the_same_matrix_in_parallel(reproduced_template, collected_template, tmp_path):
    """`--jobs 2` runs steps in processes of their own and computes what the sequential run computed: the same
    cells, seed by seed and task by task (each step's thread count is a recorded setting, not --jobs'), and a
    matrix that a sequential `reproduce` then finds finished."""
    _, sequential, _ = reproduced_template
    root = tmp_path / "ws"
    shutil.copytree(collected_template, root)
    ws = Workspace.open(root)
    result = succeeded(ws, "--json", *MATRIX, "--jobs", "2")
    parallel = json.loads(result.stdout)
    assert {s["state"] for s in parallel["steps"]} == {"reused", "ran"} and Path(parallel["report"]).is_file()
    assert "done in" in result.stderr  # the parallel scheduler ran them
    spans = [(r.manifest["created_at"], r.manifest["finished_at"]) for r in list_runs(ws, "pretrain")]
    assert len(spans) == 2 and spans[0][0] <= spans[1][1] and spans[1][0] <= spans[0][1]  # at the same time
    first = summaries(json.loads(sequential))
    assert first.keys() == summaries(parallel).keys()
    for key, summary in summaries(parallel).items():
        assert summary["by_seed_task"] == first[key]["by_seed_task"], key
    assert {r.manifest["compute"]["threads"] for r in list_runs(ws, "pretrain")} == {1}
    again = json.loads(succeeded(ws, "--json", *MATRIX).stdout)
    assert {s["state"] for s in again["steps"]} == {"reused"}


def test_a_failing_parallel_step_stops_the_matrix_with_its_error(collected_template, tmp_path):
    root = tmp_path / "ws"
    shutil.copytree(collected_template, root)
    shutil.rmtree(root / "datasets" / "pdiff" / FAMILY / "task-11")  # the full-data pretrain needs it
    result = runner.invoke(app, ["-w", str(root), *MATRIX, "--jobs", "2"])
    error = result.stderr.split("failed: pretrain-full:metaworld-reach")[
        1
    ]  # the child's own error, passed on
    assert result.exit_code == 2 and "collect --env metaworld-reach --tasks 11,17,25,36,41" in error
    ws = Workspace.open(root)
    statuses = {r.config["include_test_tasks"]: r.status for r in list_runs(ws, "pretrain")}
    assert statuses == {False: RunStatus.FINISHED}  # the running one finished; the full one refused its data


def test_a_step_whose_process_is_killed_fails_the_matrix_and_resumes(collected_template, tmp_path):
    """A child killed without a word (the OOM killer) ends `reproduce --jobs` with an error, not a hang; the
    next `reproduce` resumes the run it left stale."""
    root = tmp_path / "ws"
    shutil.copytree(collected_template, root)
    ws = Workspace.open(root)
    args = [
        *MATRIX[1:-1],
        "prompt-dt",
        "--jobs",
        "2",
        "--set",
        "pretrain.steps=150",
        "--set",
        "pretrain.checkpoint_every=10",
    ]
    killed = kill_at(ws, "reproduce", args, checkpoint_at(10), watch="pretrain", run_process=True)
    assert killed.returncode == 1 and "ended without a result" in killed.stderr
    assert find_run(ws, killed.run_id, "pretrain").is_stale()
    steps = {
        s["step"]: s
        for s in json.loads(succeeded(ws, "--json", *MATRIX[:-1], "prompt-dt", *args[-4:]).stdout)["steps"]
    }
    assert (
        steps[f"pretrain:{FAMILY}"]["state"] == "resumed"
        and steps[f"pretrain:{FAMILY}"]["run_id"] == killed.run_id
    )
