"""pretrain → eval on real Meta-World data at the smoke preset: files, resume, DDP, determinism, errors."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from support.cli import runner
from support.distributed import newest_finished, run_torchrun
from support.killing import checkpoint_at, kill_at
from support.stages import FAMILY, run_smoke
from support.weights import assert_same_weights, latest_weights

from pdiff.cli import app
from pdiff.workspace.runs import RunStatus, load_run

pytestmark = pytest.mark.metaworld


def _pretrain(ws, **flags):
    return run_smoke(ws, "pretrain", **flags)


def test_pretrain_writes_checkpoints_metrics_and_a_curve(reach_ws):
    run, summary = _pretrain(reach_ws)
    assert run.status is RunStatus.FINISHED and summary["steps"] == 20 and np.isfinite(summary["final_loss"])
    checkpoint = run.dir / summary["checkpoint"]
    for name in ("model.safetensors", "model_config.json", "train_state.pt"):
        assert (checkpoint / name).is_file()
    model_config = json.loads((checkpoint / "model_config.json").read_text())
    assert model_config["family"] == FAMILY and len(model_config["state_mean"]) == 39
    assert model_config["train_tasks"] == [t for t in range(50) if t not in (11, 17, 25, 36, 41)]
    rows = [json.loads(line) for line in (run.dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [5, 10, 15, 20] and (
        run.dir / "learning_curve.png"
    ).stat().st_size > 1000
    inputs = {i["ref"] for i in run.manifest["inputs"]}
    assert f"pdiff/{FAMILY}/task-11/expert-v0" not in inputs  # no test-task data in pretraining
    assert f"pdiff/{FAMILY}/task-00/expert-v0" in inputs


def test_resume_after_sigkill_matches_an_uninterrupted_run(reach_ws):
    straight, _ = _pretrain(reach_ws, steps=40)
    args = ["--env", FAMILY, "--preset", "smoke", "--steps", "40", "--set", "checkpoint_every=5"]
    killed = kill_at(reach_ws, "pretrain", args, checkpoint_at(15))
    assert killed.step is not None and killed.step < 40
    assert load_run(reach_ws, "pretrain", killed.run_id).is_stale()
    # the killed run's config has checkpoint_every=5; the straight run's differs only in that
    result = runner.invoke(app, ["-w", str(reach_ws.root), "pretrain", "--resume", killed.run_id])
    assert result.exit_code == 0, result.output
    assert_same_weights(latest_weights(killed.run_dir), latest_weights(straight.dir))


def test_ddp_with_two_gloo_processes_matches_one_process(reach_ws):
    # one checkpoint, at the end: rank 1 leaves the loop before rank 0 has written it, and must not need it
    single, _ = _pretrain(reach_ws, steps=30, model={"dropout": 0.0}, checkpoint_every=1000)
    settings = ["--preset", "smoke", "--steps", "30", "--set", "model.dropout=0.0"]
    settings += ["--set", "checkpoint_every=1000"]
    run_torchrun(reach_ws, "pretrain", "--env", FAMILY, *settings)
    ddp = newest_finished(reach_ws, "pretrain", single.run_id)
    assert_same_weights(latest_weights(ddp.dir), latest_weights(single.dir), atol=2e-5)
    losses = [json.loads(line)["loss"] for line in (ddp.dir / "metrics.jsonl").read_text().splitlines()]
    assert losses[-1] < losses[0]


def test_eval_writes_results_and_is_deterministic(reach_ws):
    _pretrain(reach_ws)
    args = [
        "-w",
        str(reach_ws.root),
        "--json",
        "eval",
        "--shots",
        "2",
        "--seeds",
        "0,1",
        "--episodes",
        "2",
        "--set",
        "horizon=15",
        "--device",
        "cpu",
    ]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    payload = json.loads(first.stdout)
    assert set(payload["per_task"]) == {"11", "17", "25", "36", "41"}
    assert (
        len(payload["return_per_seed"]) == 2
        and "success_rate_mean" in payload
        and "normalized_mean" in payload
    )
    run_dir = reach_ws.root / "runs" / "eval" / payload["run_id"]
    results = json.loads((run_dir / "eval" / "results.json").read_text())
    assert results["method"] == "prompt-dt" and results["shots"] == 2
    with open(run_dir / "eval" / "episodes.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 5 * 2 and all(int(r["length"]) == 15 for r in rows)
    second = json.loads(runner.invoke(app, args).stdout)
    assert second["return_per_seed"] == payload["return_per_seed"]  # same seeds, same episodes
    # Simulators in two worker processes: the very same episodes, float for float.
    spread = runner.invoke(app, [*args, "--workers", "2"])
    assert spread.exit_code == 0, spread.output
    spread_dir = reach_ws.root / "runs" / "eval" / json.loads(spread.stdout)["run_id"]
    with open(spread_dir / "eval" / "episodes.csv") as handle:
        assert list(csv.DictReader(handle)) == rows
    noise = runner.invoke(app, [*args, "--prompt", "random"])
    assert noise.exit_code == 0 and json.loads(noise.stdout)["prompt"] == "random"


def test_eval_video_writes_a_gif_per_task(pretrained, renderer):
    import imageio.v3 as iio

    ws, _ = pretrained
    result = runner.invoke(
        app,
        [
            "-w",
            str(ws.root),
            "--json",
            "eval",
            "--video",
            "1",
            "--episodes",
            "2",
            "--shots",
            "2",
            "--seeds",
            "0",
            "--set",
            "horizon=10",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    run = load_run(ws, "eval", json.loads(result.stdout)["run_id"])
    gifs = sorted((run.dir / "eval" / "videos").iterdir())
    assert [g.name for g in gifs] == [
        f"task-{t:02d}-episode-0.gif" for t in (11, 17, 25, 36, 41)
    ]  # 1 per task
    for gif in gifs:
        assert gif.read_bytes()[:6] == b"GIF89a"
        frames = iio.imread(gif, index=None)
        assert frames.ndim == 4 and len(frames) >= 3 and frames.std() > 0  # moving pictures, not blank
    recorded = {o["path"] for o in run.manifest["outputs"] if o["kind"] == "video"}
    assert recorded == {str(g.relative_to(run.dir)) for g in gifs}


def test_eval_rejects_bad_shots(reach_ws):
    _pretrain(reach_ws)
    too_many = runner.invoke(app, ["-w", str(reach_ws.root), "eval", "--shots", "3", "--device", "cpu"])
    assert too_many.exit_code == 2 and "has only 2 expert episodes" in too_many.stderr
    zero = runner.invoke(app, ["-w", str(reach_ws.root), "eval", "--shots", "0"])
    assert zero.exit_code == 2 and "--shots 0" in zero.stderr


def test_pretrain_without_datasets_is_a_clear_error(tmp_path):
    runner.invoke(app, ["init", str(tmp_path / "empty")])
    result = runner.invoke(
        app, ["-w", str(tmp_path / "empty"), "pretrain", "--env", "cheetah-vel", "--preset", "smoke"]
    )
    assert result.exit_code == 2 and "collect --env cheetah-vel" in result.stderr
    assert not (tmp_path / "empty" / "runs" / "pretrain").exists()


def test_demo_runs_the_pipeline_and_reuses_it(reach_ws):
    result = runner.invoke(app, ["-w", str(reach_ws.root), "--json", "demo", "--preset", "smoke"])
    assert result.exit_code == 0, result.output
    steps = {row["step"]: row for row in json.loads(result.stdout)}
    assert steps["collect"]["state"] == "reused"  # the fixture's finished collect run
    for name in ("pretrain", "eval prompt-dt (few-shot prompt)", "diffuse", "tune prompt-diffuser"):
        assert steps[name]["state"] == "ran", name
    assert steps["eval random prompt (control)"]["summary"]["method"] == "random-prompt"
    assert steps["eval prompt-diffuser"]["summary"]["method"] == "prompt-diffuser"
    assert steps["report"]["state"] == "ran"
    assert (reach_ws.root / steps["report"]["summary"]["report"]).is_file()
    again = json.loads(
        runner.invoke(app, ["-w", str(reach_ws.root), "--json", "demo", "--preset", "smoke"]).stdout
    )
    assert {row["state"] for row in again} == {"reused"}
