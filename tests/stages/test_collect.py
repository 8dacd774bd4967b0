"""`pdiff collect` end to end on real simulators: determinism, expert above random, teacher reuse and growth,
shipped teachers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file
from support.cli import pdiff_json, runner

from pdiff.cli import app
from pdiff.data.loader import load_family_data
from pdiff.teachers import shipped
from pdiff.teachers.shipped import ship_teacher
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import find_run, list_runs
from pdiff.workspace.verification import verify_run

pytestmark = [pytest.mark.mujoco, pytest.mark.slow]

# Enough teacher for an expert that clearly beats uniform actions, small enough for a test (~5 s a family).
SMALL_TEACHER = [
    "--set",
    "teacher.total_updates=1500",
    "--set",
    "teacher.learning_starts=500",
    "--set",
    "teacher.batch_size=64",
    "--set",
    "teacher.hidden_sizes=[64, 64]",
    "--set",
    "teacher.eval_every=500",
    "--set",
    "teacher.snapshot_every=500",
]


def collect(root: Path, *args: str) -> dict:
    return pdiff_json("-w", str(root), "collect", "--preset", "smoke", *args)


def dataset_files(root: Path) -> dict[str, bytes]:
    files = sorted((root / "datasets").rglob("main_data.hdf5"))
    return {str(f.relative_to(root)): f.read_bytes() for f in files}


def episode_returns(root: Path, family: str, kind: str, task: int) -> np.ndarray:
    return load_family_data(root / "datasets", family, kind, [task]).episode_returns


def workspace(path: Path) -> Path:
    Workspace.init(path)
    return path


def seeded_datasets(tmp_path: Path, args: list[str]) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """Collect with seed 0 on one worker and on two (byte-identical, checked here), then with seed 1; returns
    the seed-0 and seed-1 dataset files (same names)."""
    one, two = workspace(tmp_path / "one"), workspace(tmp_path / "two")
    collect(one, *args, "--workers", "1")
    collect(two, *args, "--workers", "2")
    files = dataset_files(one)
    assert len(files) == 6 and files == dataset_files(two)
    other_seed = workspace(tmp_path / "seed1")
    collect(other_seed, *args, "--set", "seed=1")
    assert dataset_files(other_seed).keys() == files.keys()
    return files, dataset_files(other_seed)


@pytest.mark.metaworld
def test_same_seed_gives_byte_identical_datasets_whatever_the_workers(tmp_path):
    args = [
        "--env",
        "metaworld-reach",
        "--tasks",
        "0,12",
        "--kinds",
        "expert,medium,random",
        "--episodes",
        "2",
    ]
    files, other_seed = seeded_datasets(tmp_path, args)
    assert other_seed != files


@pytest.mark.metaworld
def test_the_metaworld_medium_kind_is_calibrated_halfway_between_random_and_expert(tmp_path):
    root = workspace(tmp_path / "ws")
    args = ["--env", "metaworld-pick-place", "--tasks", "11", "--kinds", "medium", "--horizon", "100"]
    run = find_run(Workspace.open(root), collect(root, *args)["run_id"], "collect")
    calibration = run.manifest["summary"]["medium_calibration"]
    gap = calibration["expert_return"] - calibration["random_return"]
    assert gap > 100 and 0 < calibration["noise"] < 4  # pick-place: a scripted expert far above uniform
    assert abs(calibration["return"] - calibration["target_return"]) < 0.15 * gap, calibration
    metadata = root / "datasets/pdiff/metaworld-pick-place/task-11/medium-v0/data/metadata.json"
    assert json.loads(metadata.read_text())["pdiff"]["policy"]["noise_std"] == calibration["noise"]
    fixed = find_run(
        Workspace.open(root), collect(root, *args, "--set", "medium_noise=1.0")["run_id"], "collect"
    )
    assert "medium_calibration" not in fixed.manifest["summary"]  # a noise given is not searched for


def test_a_teacher_family_gives_byte_identical_datasets_with_a_fixed_seed(tmp_path):
    """cheetah-dir: a SAC teacher trained from scratch in each workspace, then its data;
    seed 0 twice, seed 1."""
    args = [
        "--env",
        "cheetah-dir",
        "--tasks",
        "0,1",
        "--kinds",
        "expert,medium,random",
        "--episodes",
        "2",
        "--set",
        "teacher.total_updates=300",
    ]
    files, other_seed = seeded_datasets(tmp_path, args)
    assert all(other_seed[name] != data for name, data in files.items())


@pytest.mark.parametrize(("family", "task"), [("cheetah-vel", 3), ("cheetah-dir", 0), ("ant-dir", 6)])
def test_the_expert_beats_random_actions(family, task, tmp_path):
    root = workspace(tmp_path / "ws")
    # 100 steps, not the smoke preset's 20: long enough for running to pay (seen: expert − random 14 to 113).
    args = ["--env", family, "--tasks", str(task), "--kinds", "expert,random", "--horizon", "100"]
    collect(root, *args, *SMALL_TEACHER)
    returns = {kind: episode_returns(root, family, kind, task).mean() for kind in ("expert", "random")}
    assert returns["expert"] > returns["random"] + 10, returns


@pytest.mark.metaworld
def test_the_metaworld_expert_beats_random_actions(reach_ws):
    # The smoke preset's 20 steps are too short to succeed; the scripted expert still closes in on the goal.
    returns = {
        kind: episode_returns(reach_ws.root, "metaworld-reach", kind, 0) for kind in ("expert", "random")
    }
    assert returns["expert"].min() > returns["random"].max(), returns


def test_more_teacher_updates_continue_the_earlier_teacher_in_a_copy(tmp_path):
    args = ["--env", "cheetah-dir", "--tasks", "0", "--kinds", "expert", "--episodes", "1"]
    root = workspace(tmp_path / "ws")
    first = collect(root, *args, "--set", "teacher.total_updates=300")
    ws = Workspace.open(root)
    source = find_run(ws, first["run_id"], "collect")
    source_files = sorted(p.relative_to(source.dir) for p in (source.dir / "teacher").rglob("*"))

    longer = collect(root, *args, "--set", "teacher.total_updates=500")
    grown = find_run(ws, longer["run_id"], "collect")
    teacher = grown.manifest["summary"]["teacher"]
    assert teacher["continued_from"] == {"run": source.run_id, "updates": 300}
    assert teacher["updates"] == 500 and teacher["teacher_run"] == grown.run_id
    # The earlier run is read, never written: same files, all matching their recorded hashes.
    assert sorted(p.relative_to(source.dir) for p in (source.dir / "teacher").rglob("*")) == source_files
    assert verify_run(source) == [] and verify_run(grown) == []

    straight_root = workspace(tmp_path / "straight")
    straight = collect(straight_root, *args, "--set", "teacher.total_updates=500")
    straight_run = find_run(Workspace.open(straight_root), straight["run_id"], "collect")
    weights = [
        load_file(str(Path(r.manifest["summary"]["teacher"]["expert_dir"]) / "actor.safetensors"))
        for r in (grown, straight_run)
    ]
    assert weights[0].keys() == weights[1].keys()
    assert all((weights[0][k] == weights[1][k]).all() for k in weights[0])

    again = collect(root, *args, "--set", "teacher.total_updates=500")  # the grown teacher is reused as is
    reusing = find_run(ws, again["run_id"], "collect")
    assert reusing.manifest["summary"]["teacher"]["teacher_run"] == grown.run_id
    assert not (reusing.dir / "teacher").exists()


def test_a_shipped_teacher_collects_in_a_fresh_workspace_what_it_collected_where_it_was_trained(
    tmp_path, monkeypatch
):
    args = ["--env", "cheetah-dir", "--tasks", "0", "--kinds", "expert,medium", "--episodes", "1"]
    trained = workspace(tmp_path / "trained")
    first = collect(trained, *args, "--set", "teacher.total_updates=300")
    package = tmp_path / "package"  # stands in for pdiff/teachers/weights of an installed pdiff
    monkeypatch.setattr(shipped, "SHIPPED_ROOT", package)
    ship_teacher(find_run(Workspace.open(trained), first["run_id"], "collect"), package)
    provenance = shipped.read_provenance("cheetah-dir")
    assert provenance["updates"] == 300 and provenance["trained_by"]["collect_run"] == first["run_id"]
    assert set(provenance["expert"]["eval_task_returns"]) == {"0", "1"}

    fresh = workspace(tmp_path / "fresh")
    again = collect(fresh, *args, "--set", "teacher_source=shipped")
    run = find_run(Workspace.open(fresh), again["run_id"], "collect")
    teacher = run.manifest["summary"]["teacher"]
    assert teacher["source"] == "shipped" and not (run.dir / "teacher").exists()
    inputs = [(i["ref"], i["sha256"]) for i in run.manifest["inputs"] if i["kind"] == "teacher"]
    assert inputs == [("shipped:cheetah-dir", provenance["expert"]["sha256"])]
    for kind in ("expert", "medium"):
        assert np.array_equal(
            episode_returns(fresh, "cheetah-dir", kind, 0), episode_returns(trained, "cheetah-dir", kind, 0)
        )

    runs_before = len(list_runs(Workspace.open(fresh), "collect"))
    refused = runner.invoke(
        app,
        [
            "-w",
            str(fresh),
            "collect",
            "--preset",
            "smoke",
            *args,
            "--set",
            "teacher_source=shipped",
            "--set",
            "medium_fraction=0.3",
        ],
    )
    assert refused.exit_code == 2 and "medium_fraction" in refused.output
    missing = runner.invoke(
        app,
        [
            "-w",
            str(fresh),
            "collect",
            "--preset",
            "smoke",
            "--env",
            "ant-dir",
            "--tasks",
            "0",
            "--set",
            "teacher_source=shipped",
        ],
    )
    assert missing.exit_code == 2 and "shipped: cheetah-dir" in missing.output
    assert len(list_runs(Workspace.open(fresh), "collect")) == runs_before  # refused before a run opens
