"""diffuse → tune → eval at the smoke preset: the frozen PLM stays frozen, rules run, resume is exact."""

from __future__ import annotations

import json

import h5py
import pytest
from run_killer import kill_after_checkpoint
from safetensors.torch import load_file
from typer.testing import CliRunner

from pdiff.cli import app
from pdiff.config import resolve_config
from pdiff.stages.diffuse import DiffuseConfig, run_diffuse, weights_sha256
from pdiff.stages.pretrain import PretrainConfig, run_pretrain
from pdiff.workspace.runs import RunStatus, load_run

pytestmark = pytest.mark.metaworld
runner = CliRunner()
FAMILY = "metaworld-reach"


@pytest.fixture
def pretrained(reach_ws):
    config = resolve_config(
        PretrainConfig, "pretrain", workspace=reach_ws, preset="smoke", flags={"env": FAMILY}
    )
    run, _ = run_pretrain(reach_ws, config, argv=["pdiff", "pretrain"])
    return reach_ws, run


def _diffuse(ws, **flags):
    config = resolve_config(
        DiffuseConfig, "diffuse", workspace=ws, preset="smoke", flags={"env": FAMILY, **flags}
    )
    return run_diffuse(ws, config, argv=["pdiff", "diffuse"])


def _latest_weights(run_dir):
    name = json.loads((run_dir / "checkpoints" / "latest.json").read_text())["dir"]
    return load_file(str(run_dir / "checkpoints" / name / "model.safetensors"))


def test_diffuse_keeps_the_prompt_dt_frozen_and_logs_both_losses(pretrained):
    ws, pretrain = pretrained
    from pdiff.eval.rollout import load_policy
    from pdiff.stages.common import checkpoint_of

    before = weights_sha256(load_policy(checkpoint_of(pretrain), "cpu")[0].model)
    run, summary = _diffuse(ws)
    assert run.status is RunStatus.FINISHED and summary["plm_sha256"] == before
    assert weights_sha256(load_policy(checkpoint_of(pretrain), "cpu")[0].model) == before
    rows = [json.loads(line) for line in (run.dir / "metrics.jsonl").read_text().splitlines()]
    assert {"loss_dm", "loss_plm", "cosine"} <= set(rows[-1]) and rows[-1]["loss_plm"] is not None
    assert (run.dir / "learning_curve.png").is_file()


@pytest.mark.parametrize("rule", ["none", "plm-only", "sum"])
def test_each_guidance_rule_trains(pretrained, rule):
    ws, _ = pretrained
    run, summary = _diffuse(ws, guidance=rule, steps=3)
    assert run.status is RunStatus.FINISHED and run.config["guidance"] == rule
    if rule == "none":
        assert summary["final_loss_plm"] is None  # the L_DM-only ablation never runs the PLM


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
        assert handle["seed-0/task-11/states"].shape == (5, 39)
    assert (run_dir / "tuned" / "seed-0" / "task-11.safetensors").is_file()
    evaluated = runner.invoke(app, [*base, "--json", "eval", "--device", "cpu"])
    assert evaluated.exit_code == 0, evaluated.output
    result = json.loads(evaluated.stdout)
    assert result["method"] == "prompt-diffuser" and set(result["per_task"]) == {"11", "17", "25", "36", "41"}
    baseline = runner.invoke(app, [*base, "--json", "tune", "--method", "prompt-dt", "--shots", "2"])
    assert baseline.exit_code == 0 and json.loads(baseline.stdout)["tunable_parameters"] == 0


def test_x0_prediction_trains_and_tunes_through_the_cli(pretrained):
    ws, _ = pretrained
    base = ["-w", str(ws.root), "--json"]
    diffused = runner.invoke(app, [*base, "diffuse", "--preset", "smoke", "--set", "diffusion.prediction=x0"])
    assert diffused.exit_code == 0, diffused.output
    run = load_run(ws, "diffuse", json.loads(diffused.stdout)["run_id"])
    assert run.config["diffusion"]["prediction"] == "x0"
    tuned = runner.invoke(app, [*base, "tune", "--shots", "2", "--seeds", "0", "--preset", "smoke"])
    assert tuned.exit_code == 0, tuned.output
    assert json.loads(tuned.stdout)["prompt_state_rms"] > 0


def test_tune_rejects_bad_shots(pretrained):
    ws, _ = pretrained
    _diffuse(ws)
    for shots, message in (("0", "--shots 0"), ("3", "has only 2 expert episodes")):
        result = runner.invoke(app, ["-w", str(ws.root), "tune", "--shots", shots])
        assert result.exit_code == 2 and message in result.stderr
    assert not (ws.root / "runs" / "tune").exists()


def test_diffuse_resume_after_sigkill_matches_an_uninterrupted_run(pretrained):
    ws, _ = pretrained
    straight, _ = _diffuse(ws, steps=40)
    args = ["--env", FAMILY, "--preset", "smoke", "--steps", "40"]
    killed = kill_after_checkpoint(ws, "diffuse", args, step=10, ignore={straight.run_id})
    assert killed is not None and load_run(ws, "diffuse", killed.run_id).is_stale()
    result = runner.invoke(app, ["-w", str(ws.root), "diffuse", "--resume", killed.run_id])
    assert result.exit_code == 0, result.output
    resumed, reference = _latest_weights(killed.dir), _latest_weights(straight.dir)
    for key in reference:
        assert (resumed[key] == reference[key]).all(), key
