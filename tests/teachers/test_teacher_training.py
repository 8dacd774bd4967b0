"""Teacher training runs at a tiny scale: outputs on disk, exact resume, refusals."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from teacher_setup import TINY_UPDATES, tiny_config, tiny_family

from pdiff.errors import RunFailed, UsageError
from pdiff.teachers import (
    TeacherPolicy,
    latest_checkpoint,
    list_snapshots,
    nearest_snapshot,
    read_metrics,
    train_teacher,
)
from pdiff.workspace.atomic import sha256_file

pytestmark = pytest.mark.mujoco


def _without_wall_time(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in record.items() if k != "wall_s"} for record in records]


def _train_state(out_dir):
    return torch.load(latest_checkpoint(out_dir) / "train_state.pt", weights_only=True)


def test_tiny_run_writes_metrics_checkpoints_and_snapshots(straight_run):
    out_dir, total = straight_run.out_dir, 2 * TINY_UPDATES
    assert straight_run.updates == total
    assert straight_run.checkpoint_dir == out_dir / "checkpoints" / f"{total:08d}"
    for name in ("actor.safetensors", "policy.json", "config.json", "train_state.pt", "replay.npz"):
        assert (straight_run.checkpoint_dir / name).is_file()
    # Only the newest `keep_checkpoints` (2) are kept; latest.json names the final one.
    assert sorted(p.name for p in (out_dir / "checkpoints").glob("0*")) == ["00000300", f"{total:08d}"]
    assert json.loads((out_dir / "checkpoints" / "latest.json").read_text())["update"] == total

    records = read_metrics(out_dir)
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["update"] for r in evals] == [50, 100, 150, 200, 250, 300, total]
    assert set(evals[-1]["task_returns"]) == {"0", "1"}
    train = [r for r in records if r["kind"] == "train"]
    assert all(np.isfinite(r["critic_loss"]) and r["alpha"] > 0 for r in train)
    assert any(r["train_episode_return"] is not None for r in train)

    snapshots = list_snapshots(out_dir)
    assert [s.update for s in snapshots] == [50, 100, 150, 200, 250, 300, total]
    assert snapshots[-1].mean_return == pytest.approx(straight_run.expert_return)
    assert straight_run.task_returns.keys() == {0, 1}


def test_nearest_snapshot_picks_the_closest_mean_return(straight_run):
    snapshots = list_snapshots(straight_run.out_dir)
    for target in (snapshots[0].mean_return, snapshots[3].mean_return + 1e-6):
        chosen = nearest_snapshot(straight_run.out_dir, target)
        assert abs(chosen.mean_return - target) == min(abs(s.mean_return - target) for s in snapshots)


def test_resume_continues_to_the_same_weights(straight_run, tmp_path):
    family, out_dir = tiny_family(), tmp_path / "resumed"
    first = train_teacher(family, tiny_config(total_updates=TINY_UPDATES), out_dir, seed=3)
    assert first.updates == TINY_UPDATES
    # The first leg ends between the two updates of one env step and in the middle of episodes.
    resumed = train_teacher(family, tiny_config(), out_dir, seed=3, resume=True)
    assert resumed.resumed_from == TINY_UPDATES and resumed.updates == straight_run.updates
    assert resumed.env_steps == straight_run.env_steps
    assert sha256_file(resumed.checkpoint_dir / "actor.safetensors") == sha256_file(
        straight_run.checkpoint_dir / "actor.safetensors"
    )
    ours, theirs = _train_state(out_dir), _train_state(straight_run.out_dir)
    for key in ("critic", "critic_target"):
        for name, tensor in ours[key].items():
            assert torch.equal(tensor, theirs[key][name]), f"{key}.{name}"
    assert resumed.expert_return == straight_run.expert_return


def test_interrupted_run_resumes_to_the_same_result(straight_run, tmp_path):
    """Killed after checkpoint 150 but past it (metrics lines and a snapshot written): resume drops those."""
    family, out_dir = tiny_family(), tmp_path / "interrupted"

    def interrupt(record):
        if record["update"] == 190:
            raise KeyboardInterrupt

    config = tiny_config(snapshot_every=25, log_every=10, checkpoint_every=75)
    with pytest.raises(KeyboardInterrupt):
        train_teacher(family, config, out_dir, seed=3, on_progress=interrupt)
    assert latest_checkpoint(out_dir).name == "00000150"
    assert (out_dir / "snapshots" / "00000175").is_dir()

    resumed = train_teacher(family, config, out_dir, seed=3, resume=True)
    assert resumed.resumed_from == 150
    assert sha256_file(resumed.checkpoint_dir / "actor.safetensors") == sha256_file(
        straight_run.checkpoint_dir / "actor.safetensors"
    )
    records = read_metrics(out_dir)
    updates = [(r["kind"], r["update"]) for r in records]
    assert len(updates) == len(set(updates)), "duplicated metrics records after resume"
    evals = {r["update"]: r["mean_return"] for r in records if r["kind"] == "eval"}
    straight_evals = {
        r["update"]: r["mean_return"] for r in read_metrics(straight_run.out_dir) if r["kind"] == "eval"
    }
    # it evaluates every 25 updates, the straight run every 50: each of the straight run's evaluations recurs
    assert straight_evals and straight_evals.keys() <= evals.keys()
    assert all(evals[u] == straight_evals[u] for u in straight_evals)


def test_ant_dir_resume_matches_uninterrupted(tmp_path):
    """Ant episodes end early (falls) at different times in each env; conditions are 2-dimensional."""
    family = tiny_family("ant-dir", horizon=30)
    config = tiny_config(total_updates=120, eval_every=120, snapshot_every=120, checkpoint_every=120)
    straight = train_teacher(family, config, tmp_path / "straight", seed=5)
    train_teacher(family, config.model_copy(update={"total_updates": 61}), tmp_path / "resumed", seed=5)
    resumed = train_teacher(family, config, tmp_path / "resumed", seed=5, resume=True)
    assert sha256_file(resumed.checkpoint_dir / "actor.safetensors") == sha256_file(
        straight.checkpoint_dir / "actor.safetensors"
    )
    assert TeacherPolicy.load(resumed.checkpoint_dir).condition_dim == 2


def test_existing_run_is_not_overwritten_and_resume_checks_settings(straight_run, tmp_path):
    family = tiny_family()
    with pytest.raises(UsageError, match="already holds a teacher run"):
        train_teacher(family, tiny_config(), straight_run.out_dir, seed=3)
    with pytest.raises(UsageError, match="lr"):
        train_teacher(family, tiny_config(lr=1e-3), straight_run.out_dir, seed=3, resume=True)
    with pytest.raises(UsageError, match="seed"):
        train_teacher(family, tiny_config(), straight_run.out_dir, seed=4, resume=True)
    # A finished run resumed with the same settings has nothing left to do.
    again = train_teacher(family, tiny_config(), straight_run.out_dir, seed=3, resume=True)
    assert again.updates == straight_run.updates and again.expert_return == straight_run.expert_return


def test_a_non_finite_loss_stops_the_teacher_and_keeps_the_last_good_checkpoint(tmp_path):
    out_dir = tmp_path / "diverging"
    # lr = 10 diverges within a few updates (at update 7 on CPU); a checkpoint after every update
    with pytest.raises(RunFailed, match=r"SAC loss became .* at update \d+") as failure:
        train_teacher(tiny_family(), tiny_config(lr=10.0, checkpoint_every=1), out_dir, seed=3)
    failed_at = int(re.search(r"at update (\d+)", str(failure.value)).group(1))
    assert failed_at > 1, "diverged at once: no good checkpoint to keep"
    kept = latest_checkpoint(out_dir)
    assert json.loads((out_dir / "checkpoints" / "latest.json").read_text())["update"] == failed_at - 1
    policy = TeacherPolicy.load(kept)  # whole, its hashes checked, and finite
    assert all(torch.isfinite(p).all() for p in policy.actor.parameters())
    state = torch.load(kept / "train_state.pt", weights_only=True)
    assert all(torch.isfinite(t).all() for t in state["critic"].values())
