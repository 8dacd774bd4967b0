"""Out-of-distribution families end to end at the smoke preset on real simulators (cheetah-vel-ood, the
cheapest; ant-dir-ood is built the same way): the data source may know the test range, the Prompt-DT and the
diffusion model never read it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from support.stages import run_smoke
from typer.testing import CliRunner

from pdiff.cli.app import app
from pdiff.data.minari_format import dataset_dir, parse_dataset_id
from pdiff.data.minari_read import read_metadata
from pdiff.envs import get_family
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import find_run

pytestmark = [pytest.mark.mujoco, pytest.mark.slow]

OOD = "cheetah-vel-ood"
runner = CliRunner()


def cli(root: Path, *args: str) -> dict:
    result = runner.invoke(app, ["-w", str(root), "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


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
