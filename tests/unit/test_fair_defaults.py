"""Defaults that keep the comparison fair: a full-data Prompt-DT is never an implicit input, and eval's
reset seeds are drawn apart from collect's."""

from __future__ import annotations

import itertools

import pytest

from pdiff.collection.behaviour import KINDS
from pdiff.collection.behaviour import episode_seed as collect_seed
from pdiff.envs import get_family
from pdiff.errors import ArtifactError
from pdiff.rollouts.plan import episode_seed as eval_seed
from pdiff.stages.diffuse import DiffuseConfig
from pdiff.stages.pretrain import PretrainConfig
from pdiff.stages.tune import TuneConfig
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import Run, create_run, latest_finished, running


def finished(ws: Workspace, stage: str, **config: object) -> Run:
    """A FINISHED cheetah-vel run record of `stage` with `config` (nothing trained)."""
    run = create_run(ws, stage, config=config, argv=["pdiff", stage], seed=0, family="cheetah-vel")
    with running(run):
        pass
    return run


def test_latest_pretrain_never_picks_a_full_data_run(tmp_path):
    ws, _ = Workspace.init(tmp_path / "w")
    full = finished(ws, "pretrain", include_test_tasks=True)
    with pytest.raises(ArtifactError, match="1 full-data run"):
        latest_finished(ws, "pretrain", "cheetah-vel")
    plain = finished(ws, "pretrain", include_test_tasks=False)
    finished(ws, "pretrain", include_test_tasks=True)  # newer, but it has seen the test tasks
    assert latest_finished(ws, "pretrain", "cheetah-vel").run_id == plain.run_id != full.run_id


def test_runs_built_on_a_full_data_pretrain_are_not_implicit_inputs_either(tmp_path):
    ws, _ = Workspace.init(tmp_path / "w")
    plain, full = (
        finished(ws, "pretrain", include_test_tasks=False),
        finished(ws, "pretrain", include_test_tasks=True),
    )
    guided = finished(ws, "diffuse", pretrain_run=plain.run_id)
    finished(
        ws, "diffuse", pretrain_run=full.run_id
    )  # newer, trained through a model that saw the test tasks
    assert latest_finished(ws, "diffuse", "cheetah-vel").run_id == guided.run_id


def test_configs_recorded_before_a_setting_existed_keep_their_behaviour():
    recorded = TuneConfig(method="lora", selection="off", lr=1e-3).model_dump()
    for key in ("selection", "diffuse_runs", "zero_shot_source"):
        del recorded[key]  # what an older pdiff wrote
    assert TuneConfig.model_validate(recorded).selection == "off"  # its lr was set by hand
    assert TuneConfig(method="lora").selection == "holdout"  # a new run
    diffuse = DiffuseConfig().model_dump()
    del diffuse["segment_source"], diffuse["ema_decay"]
    assert DiffuseConfig.model_validate(diffuse).segment_source == "anywhere"
    pretrain = PretrainConfig(env="metaworld-reach").model_dump()
    del pretrain["eval_target"]
    assert PretrainConfig.model_validate(pretrain).eval_target == get_family("metaworld-reach").eval_target


def test_eval_and_collect_reset_seeds_never_coincide():
    seeds, tasks, indices = range(3), range(12), range(10)
    collected = {collect_seed(s, t, k, i) for s, t, k, i in itertools.product(seeds, tasks, KINDS, indices)}
    evaluated = {eval_seed(s, t, e) for s, t, e in itertools.product(seeds, tasks, indices)}
    assert not collected & evaluated
    assert len(evaluated) == len(seeds) * len(tasks) * len(indices)
