"""Table 3 end to end at the smoke preset on real simulators: an out-of-distribution family (cheetah-vel-ood,
the cheapest; ant-dir-ood is built the same way), whose data source may know the test range while the
Prompt-DT and the diffusion model never read it, and zero-shot prompts (`tune --shots 0`) under each setting,
with the same information for prompt-diffuser and prompt-dt."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from support.cli import runner, workspace_json
from support.stages import run_smoke

from pdiff.cli.app import app
from pdiff.data.loader import load_family_data
from pdiff.data.minari_format import dataset_dir, parse_dataset_id
from pdiff.data.minari_read import read_metadata
from pdiff.data.prompts_file import read_prompts
from pdiff.envs import get_family
from pdiff.methods.zero_shot import ZERO_SHOT_METHODS, ZERO_SHOT_SETTINGS
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import find_run, list_runs

pytestmark = [pytest.mark.mujoco, pytest.mark.slow]

OOD = "cheetah-vel-ood"


@pytest.fixture(scope="module")
def ood_template(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """cheetah-vel-ood collected (every task, the test range included) with a teacher trained on one
    cheetah-vel task's collect and reused, then a smoke Prompt-DT and diffusion model; (root, run id per
    stage)."""
    root = tmp_path_factory.mktemp("ood") / "ws"
    Workspace.init(root)
    teacher = workspace_json(
        root, "collect", "--preset", "smoke", "--env", "cheetah-vel", "--tasks", "0", "--kinds", "expert"
    )
    collected = workspace_json(
        root, "collect", "--preset", "smoke", "--env", OOD, "--kinds", "expert,random,prompt-expert"
    )
    ws = Workspace.open(root)
    pretrain, _ = run_smoke(ws, "pretrain", env=OOD)
    diffuse, _ = run_smoke(ws, "diffuse", env=OOD)
    runs = {
        "teacher": teacher["run_id"],
        "collect": collected["run_id"],
        "pretrain": pretrain.run_id,
        "diffuse": diffuse.run_id,
    }
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


def zero_shot_tune(root: str, method: str, setting: str) -> tuple[dict, set[str]]:
    """A smoke `tune --shots 0` of `method` under `setting`: its JSON payload and the datasets the run
    read."""
    payload = workspace_json(
        root,
        "tune",
        "--env",
        OOD,
        "--method",
        method,
        "--shots",
        "0",
        "--preset",
        "smoke",
        "--set",
        f"zero_shot_source={setting}",
    )
    run = find_run(Workspace.open(Path(root)), payload["run_id"], "tune")
    return payload, {e["ref"] for e in run.manifest["inputs"] if e["kind"] == "dataset"}


def test_zero_shot_nearest_gives_both_methods_the_nearest_training_tasks_episodes_and_other_methods_refuse(
    ood_ws,
):
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
    nearest_dataset = load_family_data(ws.datasets_dir, OOD, "prompt-expert", [nearest]).dataset_ids[0]
    scale = family.rtg_scale
    records, tunable = {}, {}
    for method in ZERO_SHOT_METHODS:
        payload, read = zero_shot_tune(root, method, "nearest")
        records[method], tunable[method] = payload["zero_shot"], payload["tunable_parameters"]
        assert payload["shots"] == 0 and read == {
            nearest_dataset
        }  # no trajectory of a test task, nor of others
        run = find_run(ws, payload["run_id"], "tune")
        prompts, _ = read_prompts(run.dir / "prompts.h5")
        assert sorted(task for _, task in prompts) == list(family.test_tasks)
        for prompt in prompts.values():
            rtg = (prompt.returns_to_go[0, :, 0] * scale).tolist()
            assert any(rtg == pytest.approx(real, rel=1e-4) for real in tails(ws, nearest, "returns_to_go"))
            if method == "prompt-dt":  # a real prompt of that task; prompt-diffuser generates its own
                assert any(np.allclose(prompt.actions[0], real) for real in tails(ws, nearest, "actions"))
        evaluated = workspace_json(
            root, "eval", "--tune", payload["run_id"], "--preset", "smoke", "--device", "cpu"
        )
        assert evaluated["shots"] == 0 and evaluated["method"] == method
    assert records["prompt-diffuser"] == records["prompt-dt"]  # the same source episodes for both
    sources = records["prompt-dt"]["sources"]
    assert sorted(map(int, sources)) == list(family.test_tasks)
    assert all(
        s == {"task": nearest, "dataset": nearest_dataset, "episodes": [0, 1]} for s in sources.values()
    )
    # prompt-diffuser tuned on them as on few-shot episodes; prompt-dt tunes nothing
    assert tunable["prompt-diffuser"] > 0 and tunable["prompt-dt"] == 0


def test_zero_shot_none_reads_every_training_task_alike_for_both_methods(ood_ws):
    ws, _ = ood_ws
    family = get_family(OOD)
    every = set(load_family_data(ws.datasets_dir, OOD, "prompt-expert", list(family.train_tasks)).dataset_ids)
    tuned = [zero_shot_tune(str(ws.root), method, "none") for method in ZERO_SHOT_METHODS]
    assert [read for _, read in tuned] == [every, every]  # no training task singled out, the nearest neither
    assert tuned[0][0]["zero_shot"] == tuned[1][0]["zero_shot"] and "sources" not in tuned[0][0]["zero_shot"]
    assert [payload["tunable_parameters"] for payload, _ in tuned] == [0, 0]  # nothing is tuned


def test_report_has_table3_with_few_shot_and_zero_shot_rows(ood_ws):
    ws, _ = ood_ws
    root = str(ws.root)
    tuned = [
        workspace_json(
            root, "tune", "--env", OOD, "--method", "prompt-dt", "--shots", "2", "--preset", "smoke"
        )
    ]
    tuned += [zero_shot_tune(root, "prompt-dt", setting)[0] for setting in ZERO_SHOT_SETTINGS]
    for payload in tuned:
        workspace_json(root, "eval", "--tune", payload["run_id"], "--preset", "smoke", "--device", "cpu")
    report = workspace_json(root, "report")
    text = (ws.root / report["report"]).read_text()
    table = text.split("### Table 3: out-of-distribution tasks and zero-shot prompts")[1].split("###")[0]
    for setting in ("few-shot (2 shots)", "zero-shot, nearest", "zero-shot, none"):  # each its own rows
        assert f"| {OOD} | {setting} | prompt-dt |" in table, setting
    assert get_family(OOD).split_note in table and "### Table 1" not in text  # OOD families: Table 3 only
