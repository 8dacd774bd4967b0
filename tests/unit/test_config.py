"""Config layering: defaults < preset < --config < --set < flags; unknown keys and bad types named."""

from __future__ import annotations

import logging

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pdiff.config import StageConfig, parse_set, resolve_config
from pdiff.errors import UsageError
from pdiff.workspace.root import Workspace


class Optim(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    lr: float = Field(1e-4, description="learning rate")
    clip: float = 0.25


class DemoConfig(StageConfig):
    steps: int = 10
    seed: int = 0
    tag: str = "default"
    optim: Optim = Optim()


@pytest.fixture
def ws(tmp_path):
    workspace, _ = Workspace.init(tmp_path / "w")
    presets = {
        "default_preset": "quick",
        "presets": {
            "smoke": {"pretrain": {"steps": 2}},
            "quick": {"pretrain": {"steps": 100, "optim": {"lr": 3e-4}, "tag": "quick"}},
            "paper": {"pretrain": {"steps": 50000}},
        },
    }
    workspace.config_file.write_text(yaml.safe_dump(presets))
    return workspace


def _resolve(ws, **kwargs):
    return resolve_config(DemoConfig, "pretrain", workspace=ws, **kwargs)


def test_each_layer_beats_the_one_below(ws, tmp_path):
    assert _resolve(ws).steps == 100  # the workspace's default preset
    assert _resolve(ws, preset="smoke").steps == 2
    config_file = tmp_path / "mine.yaml"
    config_file.write_text(yaml.safe_dump({"pretrain": {"steps": 7, "seed": 3}}))
    resolved = _resolve(ws, preset="quick", config_file=config_file)
    assert (resolved.steps, resolved.seed, resolved.optim.lr, resolved.tag) == (7, 3, 3e-4, "quick")
    resolved = _resolve(ws, config_file=config_file, overrides=["steps=8", "optim.lr=1e-3"])
    assert (resolved.steps, resolved.seed, resolved.optim.lr, resolved.optim.clip) == (8, 3, 1e-3, 0.25)
    resolved = _resolve(ws, config_file=config_file, overrides=["steps=8"], flags={"steps": 9, "seed": None})
    assert (resolved.steps, resolved.seed) == (9, 3)  # a flag left unset (None) does not override


def test_unknown_keys_are_named_with_their_source(ws, tmp_path):
    with pytest.raises(UsageError, match=r"unknown pretrain setting 'optim\.lrr' \(from --set\)"):
        _resolve(ws, overrides=["optim.lrr=1"])
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"pretrain": {"stepz": 1}}))
    with pytest.raises(UsageError, match="'stepz'.*--config"):
        _resolve(ws, config_file=bad)
    bad.write_text(yaml.safe_dump({"pretrian": {"steps": 1}}))
    with pytest.raises(UsageError, match="unknown section 'pretrian'"):
        _resolve(ws, config_file=bad)


def test_wrong_types_and_bad_syntax(ws, tmp_path):
    with pytest.raises(UsageError, match=r"steps='many'"):
        _resolve(ws, overrides=["steps=many"])
    with pytest.raises(UsageError, match="KEY=VALUE"):
        parse_set("steps")
    with pytest.raises(UsageError, match="unknown preset 'huge'"):
        _resolve(ws, preset="huge")
    broken = tmp_path / "broken.yaml"
    broken.write_text("pretrain: [unclosed")
    with pytest.raises(UsageError, match="not valid YAML"):
        _resolve(ws, config_file=broken)
    with pytest.raises(UsageError, match="does not exist"):
        _resolve(ws, config_file=tmp_path / "missing.yaml")


def test_resolved_config_is_frozen(ws):
    resolved = _resolve(ws)
    with pytest.raises(ValidationError, match="frozen"):
        resolved.steps = 5  # type: ignore[misc]


def test_set_values_are_parsed_as_yaml():
    assert parse_set("a.b=3e-4") == ("a.b", 3e-4)
    assert parse_set("flag=true") == ("flag", True)
    assert parse_set("tasks=[1, 2]") == ("tasks", [1, 2])
    assert parse_set("name=reach") == ("name", "reach")


def test_stage_sections_missing_from_an_older_workspace_come_from_the_template(tmp_path):
    workspace, _ = Workspace.init(tmp_path / "old")
    workspace.config_file.write_text(yaml.safe_dump({"presets": {"smoke": {"collect": {"episodes": 7}}}}))
    from pdiff.stages.collect import CollectConfig
    from pdiff.stages.diffuse import DiffuseConfig

    assert resolve_config(CollectConfig, "collect", workspace=workspace, preset="smoke").episodes == 7
    assert (
        resolve_config(DiffuseConfig, "diffuse", workspace=workspace, preset="smoke").steps == 10
    )  # template


def test_a_workspace_preset_that_is_not_the_packaged_one_is_said_once(tmp_path, caplog):
    from pdiff.stages.collect import CollectConfig

    workspace, _ = Workspace.init(tmp_path / "old")
    with caplog.at_level(logging.WARNING, logger="pdiff"):
        resolve_config(CollectConfig, "collect", workspace=workspace, preset="smoke")
        assert "not this pdiff's" not in caplog.text  # as `pdiff init` copied it
        presets = {"presets": {"smoke": {"collect": {"episodes": 7}}}}
        workspace.config_file.write_text(yaml.safe_dump(presets))
        for _ in range(2):
            resolve_config(CollectConfig, "collect", workspace=workspace, preset="smoke")
    warned = [r.getMessage() for r in caplog.records if "not this pdiff's" in r.getMessage()]
    assert len(warned) == 1 and "preset smoke's collect settings" in warned[0] and "episodes 7" in warned[0]


def test_a_collect_recorded_before_the_medium_calibration_reads_as_today_where_the_noise_means_nothing():
    from pdiff.stages.collect import CollectConfig

    for env, unchanged in (("cheetah-dir", True), ("metaworld-reach", False)):
        today = CollectConfig(env=env)
        older = {k: v for k, v in today.model_dump(mode="json").items() if k != "teacher_source"}
        older["medium_noise"] = 3.0  # the default before the calibration
        assert (CollectConfig.model_validate(older) == today) is unchanged, env  # Meta-World's data differs
    with pytest.raises(ValueError, match="teacher_run"):
        CollectConfig(env="ant-dir", teacher_source="shipped", teacher_run="some-run")


def test_every_packaged_preset_resolves_for_every_stage_and_study_collects_the_papers_data(tmp_path):
    from pdiff.config import PRESETS, stage_models
    from pdiff.workflows import load_configs

    load_configs()
    workspace, _ = Workspace.init(tmp_path / "w")
    older, _ = Workspace.init(tmp_path / "older")  # its config.yaml predates the study preset
    older.config_file.write_text(yaml.safe_dump({"presets": {"quick": {"tune": {"steps": 7}}}}))
    for preset in PRESETS:
        for stage, model in stage_models().items():
            resolve_config(model, stage, workspace=workspace, preset=preset)
    collect = stage_models()["collect"]
    study, paper = (
        resolve_config(collect, "collect", workspace=workspace, preset=p) for p in ("study", "paper")
    )
    assert study == paper
    assert (
        resolve_config(stage_models()["pretrain"], "pretrain", workspace=older, preset="study").steps == 4000
    )
