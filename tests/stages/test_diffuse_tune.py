"""diffuse → tune → eval at the smoke preset: the frozen PLM stays frozen, rules run, resume is exact."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from support.cli import runner
from support.killing import checkpoint_at, kill_at
from support.stages import FAMILY, run_smoke
from support.weights import assert_same_weights, latest_weights

from pdiff.cli import app
from pdiff.models.checkpoint import weights_sha256
from pdiff.workspace.runs import RunStatus, load_run

pytestmark = pytest.mark.metaworld


def _diffuse(ws, **flags):
    return run_smoke(ws, "diffuse", **flags)


def test_diffuse_keeps_the_prompt_dt_frozen_and_logs_both_losses(pretrained):
    ws, pretrain = pretrained
    from pdiff.rollouts.rollout import load_policy
    from pdiff.stages.common import checkpoint_of

    before = weights_sha256(load_policy(checkpoint_of(pretrain), "cpu")[0].model)
    run, summary = _diffuse(ws)
    assert run.status is RunStatus.FINISHED and summary["plm_sha256"] == before
    assert weights_sha256(load_policy(checkpoint_of(pretrain), "cpu")[0].model) == before
    rows = [json.loads(line) for line in (run.dir / "metrics.jsonl").read_text().splitlines()]
    assert {"loss_dm", "loss_plm", "cosine"} <= set(rows[-1]) and rows[-1]["loss_plm"] is not None
    assert (run.dir / "learning_curve.png").is_file()


@pytest.mark.parametrize("rule", ["none", "plm-only", "sum", "gpm"])
def test_each_guidance_rule_trains(pretrained, rule):
    ws, _ = pretrained
    run, summary = _diffuse(ws, guidance=rule, steps=3)
    assert run.status is RunStatus.FINISHED and run.config["guidance"] == rule
    removed = summary["guidance_removed_share_median"]
    if rule == "none":
        assert summary["final_loss_plm"] is None  # the L_DM-only ablation never runs the PLM
        assert removed is None  # no g_PLM to remove anything from
    else:  # a rule that fell back to `project` would remove a share of g_PLM here
        assert summary["final_loss_plm"] is not None
        assert removed == 0.0 if rule in ("plm-only", "sum") else 0.0 <= removed <= 1.0
    if rule == "gpm":  # tuning follows the diffuse run's rule, with a basis of its own per task
        tuned, _ = run_smoke(ws, "tune", diffuse_run=run.run_id)
        assert tuned.status is RunStatus.FINISHED


def test_tune_then_eval_through_the_cli(pretrained):
    ws, _ = pretrained
    _diffuse(ws)
    base = ["-w", str(ws.root)]
    tuned = runner.invoke(app, [*base, "--json", "tune", "--shots", "2"])
    assert tuned.exit_code == 0, tuned.output
    payload = json.loads(tuned.stdout)
    assert payload["method"] == "prompt-diffuser" and payload["tunable_share_percent"] > 0
    distances = [m["prompt_state_rms"] for m in payload["per_task"].values()]
    jobs = 5 * len(payload["seeds"])
    assert len(distances) == jobs and all(d > 0 for d in distances)  # a sampled prompt is never the real one
    assert payload["prompt_state_rms"] == pytest.approx(sum(distances) / jobs)
    run_dir = ws.root / "runs" / "tune" / payload["run_id"]
    with h5py.File(run_dir / "prompts.h5") as handle:
        assert sorted(handle["seed-0"]) == ["task-11", "task-17", "task-25", "task-36", "task-41"]
        assert handle["seed-0/task-11/states"].shape == (2, 5, 39)  # Meta-World: one prompt per shot
    assert (run_dir / "tuned" / "seed-0" / "task-11.safetensors").is_file()
    evaluated = runner.invoke(app, [*base, "--json", "eval", "--shots", "2", "--device", "cpu"])
    assert evaluated.exit_code == 0, evaluated.output
    result = json.loads(evaluated.stdout)
    assert result["method"] == "prompt-diffuser" and set(result["per_task"]) == {"11", "17", "25", "36", "41"}
    # auto takes only a tune run with the shots and data kind asked for; --tune brings its own
    other = runner.invoke(app, [*base, "--json", "eval", "--shots", "1", "--tasks", "17,11,17"])
    assert other.exit_code == 0, other.output
    assert json.loads(other.stdout)["method"] == "prompt-dt" and json.loads(other.stdout)["tasks"] == [17, 11]
    clash = runner.invoke(app, [*base, "eval", "--tune", payload["run_id"], "--data-kind", "random"])
    assert clash.exit_code == 2 and "--data-kind cannot go with --tune" in clash.stderr
    baseline = runner.invoke(app, [*base, "--json", "tune", "--method", "prompt-dt", "--shots", "2"])
    assert baseline.exit_code == 0 and json.loads(baseline.stdout)["tunable_parameters"] == 0


# Real normalised prompt states of reach stay within about ±3; ε-prediction once generated states up to ±25.
STATE_BOUND, RMS_BOUND = 6.0, 2.5


def test_x0_predicted_prompts_stay_near_the_real_ones(pretrained):
    """On a small trained model, x0-prediction's generated states stay in the range of real ones."""
    ws, _ = pretrained
    base = ["-w", str(ws.root), "--json"]
    diffused = runner.invoke(
        app, [*base, "diffuse", "--preset", "smoke", "--set", "diffusion.prediction=x0", "--steps", "30"]
    )
    assert diffused.exit_code == 0, diffused.output
    run = load_run(ws, "diffuse", json.loads(diffused.stdout)["run_id"])
    assert run.config["diffusion"]["prediction"] == "x0"
    tuned = runner.invoke(app, [*base, "tune", "--shots", "2", "--seeds", "0", "--preset", "smoke"])
    assert tuned.exit_code == 0, tuned.output
    payload = json.loads(tuned.stdout)
    with h5py.File(ws.root / "runs" / "tune" / payload["run_id"] / "prompts.h5") as handle:
        states = np.stack([handle[f"seed-0/{task}/states"][()] for task in handle["seed-0"]])
    assert np.isfinite(states).all() and np.abs(states).max() < STATE_BOUND, np.abs(states).max()
    assert 0 < payload["prompt_state_rms"] < RMS_BOUND, payload["per_task"]


def test_tune_rejects_bad_shots(pretrained):
    ws, _ = pretrained
    _diffuse(ws)
    for shots, message in (("-1", "--shots -1"), ("3", "has only 2 expert episodes")):  # 0 is zero-shot
        result = runner.invoke(app, ["-w", str(ws.root), "tune", "--shots", shots])
        assert result.exit_code == 2 and message in result.stderr
    assert not (ws.root / "runs" / "tune").exists()


# gpm with a basis refreshed every 3 steps from a ring of 4: the kill falls between refreshes and after the
# ring wrapped, so the resume needs both the ring and the stale basis from the checkpoint.
GPM = {"guidance": "gpm", "gpm.memory": 4, "gpm.refresh_every": 3}


@pytest.mark.parametrize("flags", [{}, GPM], ids=["project", "gpm"])
def test_diffuse_resume_after_sigkill_matches_an_uninterrupted_run(pretrained, flags):
    ws, _ = pretrained
    straight, summary = _diffuse(ws, steps=40, **flags)
    args = ["--env", FAMILY, "--preset", "smoke", "--steps", "40"]
    args += [item for key, value in flags.items() for item in ("--set", f"{key}={value}")]
    killed = kill_at(ws, "diffuse", args, checkpoint_at(10))
    assert killed.step is not None and killed.step < 40
    assert load_run(ws, "diffuse", killed.run_id).is_stale()
    result = runner.invoke(app, ["-w", str(ws.root), "diffuse", "--resume", killed.run_id])
    assert result.exit_code == 0, result.output
    assert_same_weights(latest_weights(killed.run_dir), latest_weights(straight.dir))
    # the summary's guidance figures are medians over all 40 steps, the killed ones included
    resumed = load_run(ws, "diffuse", killed.run_id).manifest["summary"]
    keys = ["guidance_removed_share_median", "guidance_cosine_median", "guidance_basis_rank_median"]
    assert {k: resumed[k] for k in keys} == {k: summary[k] for k in keys}
    assert 0 < summary["guidance_removed_share_median"] < 1
    assert (summary["guidance_basis_rank_median"] is None) is (flags.get("guidance") != "gpm")
    if flags:
        rows = [json.loads(line) for line in (straight.dir / "metrics.jsonl").read_text().splitlines()]
        assert all(
            1 <= r["basis_rank"] <= 5 and 0 < r["removed_share"] < 1 for r in rows if r["phase"] == "train"
        )
