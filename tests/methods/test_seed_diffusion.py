"""Prompt Diffuser with one diffusion model per seed: tune adapts seed s from model s, records them all, and
refuses models guided by different Prompt-DTs."""

from __future__ import annotations

import pytest

from pdiff.config import resolve_config
from pdiff.errors import UsageError
from pdiff.stages.diffuse import DiffuseConfig, run_diffuse
from pdiff.stages.pretrain import PretrainConfig, run_pretrain
from pdiff.stages.tune import TuneConfig, resolve_inputs, run_tune

pytestmark = pytest.mark.metaworld
REACH = "metaworld-reach"


def test_each_seed_tunes_its_own_diffusion_model(trained):
    ws, pretrain, first = trained
    config = resolve_config(
        DiffuseConfig,
        "diffuse",
        workspace=ws,
        preset="smoke",
        flags={"env": REACH, "pretrain_run": pretrain.run_id, "seed": 1},
    )
    second, _ = run_diffuse(ws, config, argv=["pdiff", "diffuse"])
    config = resolve_config(
        TuneConfig,
        "tune",
        workspace=ws,
        preset="smoke",
        flags={"env": REACH, "seeds": [0, 1], "diffuse_runs": [first.run_id, second.run_id], "steps": 2},
    )
    assert {s: r.run_id for s, r in resolve_inputs(ws, config)[1].items()} == {
        0: first.run_id,
        1: second.run_id,
    }
    run, summary = run_tune(ws, config, argv=["pdiff", "tune"])
    assert run.config["diffuse_runs"] == [first.run_id, second.run_id]
    assert [i["ref"] for i in run.manifest["inputs"] if i["kind"] == "diffuse"] == [
        first.run_id,
        second.run_id,
    ]
    assert {key.split("/")[0] for key in summary["per_task"]} == {"seed-0", "seed-1"}


def test_models_of_different_prompt_dts_are_refused(trained):
    ws, _, first = trained
    config = resolve_config(PretrainConfig, "pretrain", workspace=ws, preset="smoke", flags={"env": REACH})
    other_pretrain, _ = run_pretrain(ws, config, argv=["pdiff", "pretrain"])
    config = resolve_config(
        DiffuseConfig,
        "diffuse",
        workspace=ws,
        preset="smoke",
        flags={"env": REACH, "pretrain_run": other_pretrain.run_id},
    )
    other, _ = run_diffuse(ws, config, argv=["pdiff", "diffuse"])
    config = TuneConfig(env=REACH, seeds=[0, 1], diffuse_runs=[first.run_id, other.run_id])
    with pytest.raises(UsageError, match="different Prompt-DTs"):
        resolve_inputs(ws, config)
