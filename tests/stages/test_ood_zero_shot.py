"""Table 3 end to end at the smoke preset on real simulators: an out-of-distribution family (cheetah-vel-ood,
the cheapest; ant-dir-ood is built the same way), whose data source may know the test range while the
Prompt-DT and the diffusion model never read it, and zero-shot prompts (`tune --shots 0`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from support.cli import pdiff_json
from support.stages import run_smoke
from typer.testing import CliRunner

from pdiff.cli.app import app
from pdiff.data.loader import load_family_data
from pdiff.data.minari_format import dataset_dir, parse_dataset_id
from pdiff.data.minari_read import read_metadata
from pdiff.data.prompts_file import read_prompts
from pdiff.envs import get_family
from pdiff.methods.zero_shot import ZERO_SHOT_METHODS
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import find_run, list_runs

pytestmark = [pytest.mark.mujoco, pytest.mark.slow]

OOD = "cheetah-vel-ood"
runner = CliRunner()


def cli(root: Path, *args: str) -> dict:
    return pdiff_json("-w", str(root), *args)


@pytest.fixture(scope="module")
def ood_template(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """cheetah-vel-ood collected (every task, the test range included) with a teacher trained on one cheetah-vel
    task's collect and reused, then a smoke Prompt-DT and diffusion model; (root, run id per stage)."""
    root = tmp_path_factory.mktemp("ood") / "ws"
    Workspace.init(root)
    teacher = cli(
        root, "collect", "--preset", "smoke", "--env", "cheetah-vel", "--tasks", "0", "--kinds", "expert"
    )
    collected = cli(
        root, "collect", "--preset", "smoke", "--env", OOD, "--kinds", "expert,random,prompt-expert"
    )
    ws = Workspace.open(root)
    pretrain, _ = run_smoke(ws, "pretrain", env=OOD)
    diffuse, _ = run_smoke(ws, "diffuse", env=OOD)
    runs = {"teacher": teacher["run_id"], "collect": collected["run_id"], "pretrain": pretrain.run_id,
            "diffuse": diffuse.run_id}  # fmt: skip
    return root, runs


@pytest.fixture
def ood_ws(ood_template, tmp_path) -> tuple[Workspace, dict[str, str]]:
    """A private copy of the OOD workspace (tests write runs into it)."""
    root = tmp_path / "ood-ws"
    shutil.copytree(ood_template[0], root)
    return Workspace.open(root), ood_template[1]


def test_no_test_range_dataset_reaches_pretrain_or_diffuse(ood_ws):
    ws, runs = ood_ws
    family = get_family(OOD)
    collect = find_run(ws, runs["collect"], "collect")
    collected_tasks = {o["task"] for o in collect.manifest["outputs"] if o["kind"] == "dataset"}
    assert set(family.test_tasks) <= collected_tasks  # the test range's data is there to be read by mistake
    # the teacher is the data source only: cheetah-vel's, trained on every task, reused as it is
    assert collect.manifest["summary"]["teacher"]["teacher_run"] == runs["teacher"]
    for stage in ("pretrain", "diffuse"):
        run = find_run(ws, runs[stage], stage)
        datasets = [e["ref"] for e in run.manifest["inputs"] if e["kind"] == "dataset"]
        assert datasets, f"{stage} recorded no dataset inputs"
        for ident in datasets:
            name, task, _, _ = parse_dataset_id(ident)
            block = read_metadata(dataset_dir(ws.datasets_dir, ident))["pdiff"]
            assert name == OOD and task in family.train_tasks and block["split"] == "train", (stage, ident)
            assert not family.ood.is_test(block["task_params"]["goal_vel"]), (stage, ident)
        read_tasks = {parse_dataset_id(ident)[1] for ident in datasets}
        assert read_tasks == set(family.train_tasks), stage


def test_a_teacher_of_another_family_is_refused(ood_ws):
    ws, runs = ood_ws
    args = [
        "--preset",
        "smoke",
        "--env",
        "ant-dir",
        "--tasks",
        "0",
        "--set",
        f"teacher_run={runs['teacher']}",
    ]
    refused = runner.invoke(app, ["-w", str(ws.root), "collect", *args])
    assert refused.exit_code == 2 and "for cheetah-vel, not ant-dir" in refused.output, refused.output


def tails(ws: Workspace, task: int, field: str) -> list[list[float]]:
    """`field` over the 5-step tail (T−6…T−2) of each of `task`'s prompt-expert episodes, raw."""
    data = load_family_data(ws.datasets_dir, OOD, "prompt-expert", [task])
    values = getattr(data, field)
    return [
        values[s + n - 6 : s + n - 1].tolist()
        for s, n in zip(data.episode_starts, data.episode_lengths, strict=True)
    ]


def test_zero_shot_prompts_come_from_the_nearest_training_task_and_other_methods_refuse(ood_ws):
    ws, _ = ood_ws
    root = str(ws.root)
    refused = runner.invoke(
        app, ["-w", root, "tune", "--env", OOD, "--method", "lora", "--shots", "0", "--preset", "smoke"]
    )
    errors = [line for line in refused.output.splitlines() if line.startswith("error:")]
    assert refused.exit_code == 2 and len(errors) == 1, refused.output  # one error line (and its hint)
    assert "lora" in errors[0] and "prompt-diffuser, prompt-dt" in errors[0]
    assert not list_runs(ws, "tune")
    family = get_family(OOD)
    nearest = max(family.train_tasks)  # 2.25 m/s: the training velocity nearest every test velocity
    scale = family.rtg_scale
    for method in ZERO_SHOT_METHODS:
        payload = cli(root, "tune", "--env", OOD, "--method", method, "--shots", "0", "--preset", "smoke")
        assert payload["shots"] == 0 and payload["zero_shot"]["source"] == "nearest"
        run = find_run(ws, payload["run_id"], "tune")
        read = [parse_dataset_id(e["ref"]) for e in run.manifest["inputs"] if e["kind"] == "dataset"]
        assert read and {(name, kind) for name, _, kind, _ in read} == {(OOD, "prompt-expert")}
        assert {task for _, task, _, _ in read} <= set(family.train_tasks)  # no trajectory of a test task
        prompts, _ = read_prompts(run.dir / "prompts.h5")
        assert sorted(task for _, task in prompts) == list(family.test_tasks)
        for prompt in prompts.values():
            rtg = (prompt.returns_to_go[0, :, 0] * scale).tolist()
            assert any(rtg == pytest.approx(real, rel=1e-4) for real in tails(ws, nearest, "returns_to_go"))
            if method == "prompt-dt":  # a real prompt of that task; prompt-diffuser generates its own
                assert any(np.allclose(prompt.actions[0], real) for real in tails(ws, nearest, "actions"))
        evaluated = cli(root, "eval", "--tune", payload["run_id"], "--preset", "smoke", "--device", "cpu")
        assert evaluated["shots"] == 0 and evaluated["method"] == method


def test_report_has_table3_with_few_shot_and_zero_shot_rows(ood_ws):
    ws, _ = ood_ws
    root = str(ws.root)
    for shots in ("2", "0"):
        tuned = cli(
            root, "tune", "--env", OOD, "--method", "prompt-dt", "--shots", shots, "--preset", "smoke"
        )
        cli(root, "eval", "--tune", tuned["run_id"], "--preset", "smoke", "--device", "cpu")
    report = cli(root, "report")
    text = (ws.root / report["report"]).read_text()
    table = text.split("### Table 3: out-of-distribution tasks and zero-shot prompts")[1].split("###")[0]
    assert (
        f"| {OOD} | few-shot (2 shots) | prompt-dt |" in table
        and f"| {OOD} | zero-shot | prompt-dt |" in table
    )
    assert get_family(OOD).split_note in table and "### Table 1" not in text  # OOD families: Table 3 only
