"""One Prompt-DT per seed or per group of seeds (`pretrain_runs`): tune adapts seed s through Prompt-DT s and
its diffusion model, eval rolls seed s out with Prompt-DT s, the report says so, and mismatched inputs are
refused."""

from __future__ import annotations

import csv

import pytest
from support.stages import run_smoke, smoke_config

from pdiff.errors import UsageError
from pdiff.methods.registry import METHODS
from pdiff.results.cells import result_of
from pdiff.stages import eval as eval_stage
from pdiff.stages.eval import EvalConfig
from pdiff.stages.tune import TuneConfig, resolve_inputs, run_tune
from pdiff.workspace.runs import RunStatus, list_runs

pytestmark = pytest.mark.metaworld


@pytest.fixture(scope="module")
def second_seed(trained):
    """Seed 1's own Prompt-DT and the diffusion model it guided."""
    ws, _, _ = trained
    pretrain, _ = run_smoke(ws, "pretrain", seed=1)
    diffuse, _ = run_smoke(ws, "diffuse", pretrain_run=pretrain.run_id, seed=1)
    return pretrain, diffuse


def episode_returns(run) -> dict[str, list[str]]:
    with open(run.dir / "eval" / "episodes.csv") as f:
        rows = list(csv.DictReader(f))
    return {seed: [r["return"] for r in rows if r["seed"] == seed] for seed in ("0", "1")}


def test_each_seed_tunes_and_evaluates_through_its_own_prompt_dt(trained, second_seed):
    ws, pretrain, diffuse = trained
    other_pretrain, other_diffuse = second_seed
    prompt_dts = [pretrain.run_id, other_pretrain.run_id]
    tuned, _ = run_smoke(
        ws,
        "tune",
        seeds=[0, 1],
        steps=2,
        pretrain_runs=prompt_dts,
        diffuse_runs=[diffuse.run_id, other_diffuse.run_id],
    )
    assert tuned.config["pretrain_runs"] == prompt_dts
    assert [i["ref"] for i in tuned.manifest["inputs"] if i["kind"] == "pretrain"] == prompt_dts
    evaluated, _ = run_smoke(ws, "eval", tune_run=tuned.run_id)
    assert evaluated.config["pretrain_runs"] == prompt_dts
    result = result_of(ws, evaluated)
    assert result.settings["Prompt-DTs"] == "one per seed" and result.method == "prompt-diffuser"  # its row
    assert result.pretrain_runs == prompt_dts


def test_a_group_of_seeds_shares_a_prompt_dt_and_the_report_counts_them(trained, second_seed):
    ws, pretrain, _ = trained
    other_pretrain, _ = second_seed
    groups = [pretrain.run_id, pretrain.run_id, other_pretrain.run_id]  # seeds 0 and 1, then seed 2
    tuned, _ = run_smoke(ws, "tune", method="prompt-dt", seeds=[0, 1, 2], pretrain_runs=groups)
    evaluated, _ = run_smoke(ws, "eval", tune_run=tuned.run_id)
    assert evaluated.config["pretrain_runs"] == groups
    assert result_of(ws, evaluated).settings["Prompt-DTs"] == "2 for 3 seeds"


def test_eval_rolls_each_seed_out_with_its_own_prompt_dt(trained, second_seed):
    ws, pretrain, _ = trained
    other_pretrain, _ = second_seed
    shared, _ = run_smoke(ws, "eval", prompt="fewshot", seeds=[0, 1], pretrain_run=pretrain.run_id)
    own, _ = run_smoke(
        ws, "eval", prompt="fewshot", seeds=[0, 1], pretrain_runs=[pretrain.run_id, other_pretrain.run_id]
    )
    shared_returns, own_returns = episode_returns(shared), episode_returns(own)
    assert own_returns["0"] == shared_returns["0"]  # same Prompt-DT, same prompts, deterministic simulator
    assert own_returns["1"] != shared_returns["1"]  # seed 1 ran another model


def test_a_diffusion_model_of_another_seeds_prompt_dt_is_refused(trained, second_seed):
    ws, pretrain, diffuse = trained
    other_pretrain, _ = second_seed
    config = smoke_config(
        ws,
        "tune",
        seeds=[0, 1],
        pretrain_runs=[pretrain.run_id, other_pretrain.run_id],
        diffuse_runs=[diffuse.run_id, diffuse.run_id],
    )
    with pytest.raises(UsageError, match="not by that seed's Prompt-DT"):
        resolve_inputs(ws, config)


def test_prompt_dts_that_differ_in_more_than_their_seed_are_refused(trained):
    ws, pretrain, _ = trained
    longer, _ = run_smoke(ws, "pretrain", seed=1, steps=21)
    config = smoke_config(
        ws, "tune", method="prompt-dt", seeds=[0, 1], pretrain_runs=[pretrain.run_id, longer.run_id]
    )
    with pytest.raises(UsageError, match="differ in more than their seed"):
        resolve_inputs(ws, config)


def test_a_tune_on_several_prompt_dts_resumes_after_a_failure(trained, second_seed, monkeypatch):
    """The resumed run records the same set of Prompt-DTs it started on, so the resume is not refused as
    'started on other inputs'."""
    ws, pretrain, _ = trained
    other_pretrain, _ = second_seed
    prompt_dts = [pretrain.run_id, other_pretrain.run_id]
    real = METHODS["prompt-dt"].tune_task
    calls = []

    def failing_on_the_second(context):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("killed mid-way")
        return real(context)

    monkeypatch.setattr(METHODS["prompt-dt"], "tune_task", failing_on_the_second)
    with pytest.raises(RuntimeError, match="killed mid-way"):
        run_smoke(ws, "tune", method="prompt-dt", seeds=[0, 1], pretrain_runs=prompt_dts)
    failed = list_runs(ws, "tune")[-1]
    assert failed.status is RunStatus.FAILED
    monkeypatch.setattr(METHODS["prompt-dt"], "tune_task", real)
    resumed, _ = run_tune(ws, TuneConfig.model_validate(failed.config), argv=["pdiff"], resume=failed.run_id)
    assert resumed.run_id == failed.run_id and resumed.status is RunStatus.FINISHED
    assert [i["ref"] for i in resumed.manifest["inputs"] if i["kind"] == "pretrain"] == prompt_dts


def test_an_eval_on_several_prompt_dts_resumes_after_a_failure(trained, second_seed, monkeypatch):
    ws, pretrain, _ = trained
    other_pretrain, _ = second_seed
    prompt_dts = [pretrain.run_id, other_pretrain.run_id]

    def failing(*args, **kwargs):
        raise RuntimeError("killed mid-way")

    monkeypatch.setattr(eval_stage, "evaluate", failing)
    with pytest.raises(RuntimeError, match="killed mid-way"):
        run_smoke(ws, "eval", prompt="fewshot", seeds=[0, 1], pretrain_runs=prompt_dts)
    failed = list_runs(ws, "eval")[-1]
    assert failed.status is RunStatus.FAILED
    monkeypatch.undo()
    config = EvalConfig.model_validate(failed.config)
    resumed, _ = eval_stage.run_eval(ws, config, argv=["pdiff"], resume=failed.run_id)
    assert resumed.run_id == failed.run_id and resumed.status is RunStatus.FINISHED
    assert [i["ref"] for i in resumed.manifest["inputs"] if i["kind"] == "pretrain"] == prompt_dts
