"""pdiff.compute: `auto` chooses by native support and a cached measurement, a resumed run keeps its
precision, bad values are usage errors, and every stage records the threads and precision it ran with."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from pdiff import compute
from pdiff.compute import ComputeConfig, setup_compute


def test_auto_takes_bf16_only_where_native_and_measured_faster(tmp_path, monkeypatch):
    cache = tmp_path / "precision.json"
    measured = []

    def measure(device, repeats=6):
        measured.append(device)
        return speedup

    monkeypatch.setattr(compute, "measure_bf16_speedup", measure)
    monkeypatch.setattr(compute, "cpu_bf16_features", lambda: [])
    assert compute.resolve_auto(torch.device("cpu"), 1, cache)[0] == "fp32" and not measured
    monkeypatch.setattr(compute, "cpu_bf16_features", lambda: ["avx512_bf16"])
    speedup = 1.6
    assert compute.resolve_auto(torch.device("cpu"), 1, cache)[0] == "bf16"
    speedup = 0.9  # the cached answer stands: every step of a workspace chooses alike
    assert compute.resolve_auto(torch.device("cpu"), 1, cache)[0] == "bf16" and len(measured) == 1
    cache.unlink()
    assert compute.resolve_auto(torch.device("cpu"), 1, cache)[0] == "fp32"
    assert len(json.loads(cache.read_text())) == 1


def test_a_resumed_run_keeps_the_precision_it_started_with():
    config = ComputeConfig(device="cpu", precision="fp32")
    assert setup_compute(config, recorded={"precision": "bf16", "reason": "set"}).precision == "bf16"
    assert setup_compute(config, recorded=None).precision == "fp32"


def test_bf16_without_native_support_runs_and_warns_once(monkeypatch, caplog):
    monkeypatch.setattr(compute, "cpu_bf16_features", lambda: [])
    monkeypatch.setattr(compute, "_warned", set())
    config = ComputeConfig(device="cpu", precision="bf16")
    with caplog.at_level(logging.WARNING, logger="pdiff"):
        first = setup_compute(config)
        setup_compute(config)
    assert first.precision == "bf16" and "emulated" in first.reason
    assert sum("emulated" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("stage", ["pretrain", "diffuse", "tune", "eval"])
def test_an_unknown_precision_is_a_usage_error_naming_the_allowed_values(stage, tmp_path):
    from support.cli import runner

    from pdiff.cli import app
    from pdiff.workspace.root import Workspace

    Workspace.init(tmp_path / "w")
    argv = ["-w", str(tmp_path / "w"), stage, "--env", "metaworld-reach", "--preset", "smoke"]
    result = runner.invoke(app, [*argv, "--set", "precision=fp16"])
    assert result.exit_code == 2, result.output
    assert "precision" in result.output and all(v in result.output for v in ("auto", "fp32", "bf16"))


@pytest.mark.metaworld
def test_stages_record_their_threads_and_precision_and_run_in_bf16(reach_ws, monkeypatch):
    from support.stages import run_smoke

    from pdiff.models.checkpoint import weights_sha256
    from pdiff.rollouts.rollout import load_policy
    from pdiff.stages import common

    def trained_weights(run) -> str:
        return weights_sha256(load_policy(common.checkpoint_of(run), "cpu")[0].model)

    pretrain, _ = run_smoke(reach_ws, "pretrain", precision="bf16")
    assert pretrain.manifest["compute"]["precision"] == "bf16"
    assert pretrain.manifest["compute"]["threads"] == 1
    # the same seed and data in fp32 trains other weights: the bf16 run computed in bf16
    assert trained_weights(pretrain) != trained_weights(run_smoke(reach_ws, "pretrain", precision="fp32")[0])
    precisions = []

    def recorded(module: torch.nn.Module, chosen: compute.Compute) -> torch.nn.Module:
        precisions.append(chosen.precision)
        return compute.use_precision(module, chosen)

    monkeypatch.setattr(common, "use_precision", recorded)
    evaluated, summary = run_smoke(reach_ws, "eval", precision="bf16", pretrain_run=pretrain.run_id)
    assert precisions and set(precisions) == {"bf16"}  # the policy eval rolled out
    assert evaluated.manifest["compute"]["precision"] == "bf16" and summary["return_mean"] > 0
    assert json.loads((evaluated.dir / "run.json").read_text())["compute"]["device"] == "cpu"
