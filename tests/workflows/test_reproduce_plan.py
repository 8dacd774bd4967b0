"""The reproduce matrix gives each seed its own diffusion model (and, on request, its own Prompt-DT); tune
then adapts seed s from model s."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pdiff.stages.tune import TuneConfig
from pdiff.workflows.pipeline import command_line, stage_config
from pdiff.workflows.reproduce import ReproduceConfig, plan
from pdiff.workspace.root import Workspace

FAMILY = "metaworld-reach"


def test_each_seed_gets_its_own_diffusion_model(tmp_path):
    ws, _ = Workspace.init(tmp_path / "ws")
    config = ReproduceConfig(envs=[FAMILY], methods=["prompt-diffuser", "prompt-dt"], seeds=[0, 1])
    steps = {s.key: s for s in plan(config, "smoke", ws)}
    diffuse = [s for s in steps.values() if s.stage == "diffuse"]
    assert [(s.key, s.flags["seed"]) for s in diffuse] == [
        (f"diffuse:{FAMILY}:project:seed-0", 0),
        (f"diffuse:{FAMILY}:project:seed-1", 1),
    ]
    tune = steps[f"tune:{FAMILY}:prompt-diffuser:expert:project"]
    assert tune.flags["diffuse_runs"] == diffuse  # the steps themselves: their runs, once run
    assert "diffuse_runs" not in steps[f"tune:{FAMILY}:prompt-dt:expert"].flags
    resolved = TuneConfig(env=FAMILY, seeds=[0, 1], diffuse_runs=["run-a", "run-b"])
    assert "--set diffuse_runs=[run-a,run-b]" in command_line(tune, resolved, "smoke", [])
    shared = ReproduceConfig(
        envs=[FAMILY], methods=["prompt-diffuser"], seeds=[0, 1], diffusion_per_seed=False
    )
    assert [s.key for s in plan(shared, "smoke", ws) if s.stage == "diffuse"] == [f"diffuse:{FAMILY}:project"]


def test_tune_seeds_set_for_the_matrix_decide_the_diffusion_models(tmp_path):
    ws, _ = Workspace.init(tmp_path / "ws")
    config = ReproduceConfig(envs=[FAMILY], methods=["prompt-diffuser"])
    steps = plan(config, "quick", ws, ["seeds=[4,5]"])  # `reproduce --set tune.seeds=[4,5]`
    assert [s.flags["seed"] for s in steps if s.stage == "diffuse"] == [4, 5]


def test_tune_needs_one_diffusion_model_per_seed():
    with pytest.raises(ValueError, match="names 1 runs for 2 seeds"):
        TuneConfig(env=FAMILY, seeds=[0, 1], diffuse_runs=["run-a"])


def test_each_seed_can_get_its_own_prompt_dt(tmp_path):
    ws, _ = Workspace.init(tmp_path / "ws")
    config = ReproduceConfig(
        envs=[FAMILY],
        methods=["prompt-diffuser", "prompt-dt", "random-prompt"],
        seeds=[0, 1],
        pretrain_per_seed=True,
    )
    steps = {s.key: s for s in plan(config, "smoke", ws)}
    pretrains = [s for s in steps.values() if s.stage == "pretrain"]
    assert [(s.key, s.flags["seed"]) for s in pretrains] == [
        (f"pretrain:{FAMILY}:seed-0", 0),
        (f"pretrain:{FAMILY}:seed-1", 1),
    ]
    for seed in (0, 1):  # each seed's diffusion model is guided by that seed's Prompt-DT
        assert (
            steps[f"diffuse:{FAMILY}:project:seed-{seed}"].flags["pretrain_run"]
            is steps[f"pretrain:{FAMILY}:seed-{seed}"]
        )
    expected = pretrains
    for key in (
        f"tune:{FAMILY}:prompt-diffuser:expert:project",
        f"tune:{FAMILY}:prompt-dt:expert",
        f"eval:random-prompt:{FAMILY}",
    ):
        assert steps[key].flags["pretrain_runs"] == expected
    resolved = TuneConfig(env=FAMILY, seeds=[0, 1], pretrain_runs=["pre-a", "pre-b"])
    assert "--set pretrain_runs=[pre-a,pre-b]" in command_line(
        steps[f"tune:{FAMILY}:prompt-dt:expert"], resolved, "smoke", []
    )
    one = ReproduceConfig(envs=[FAMILY], methods=["prompt-dt"], seeds=[0, 1])
    assert "pretrain_runs" not in {k for s in plan(one, "smoke", ws) for k in s.flags}


def test_a_prompt_dt_per_seed_needs_a_diffusion_model_per_seed():
    with pytest.raises(ValueError, match="pretrain_per_seed needs diffusion_per_seed"):
        ReproduceConfig(envs=[FAMILY], pretrain_per_seed=True, diffusion_per_seed=False)
    with pytest.raises(ValueError, match="pretrain_runs names 1 runs for 2 seeds"):
        TuneConfig(env=FAMILY, seeds=[0, 1], pretrain_runs=["pre-a"])


def test_the_paper_preset_pretrains_a_prompt_dt_per_seed_and_adds_table_3(tmp_path):
    ws, _ = Workspace.init(tmp_path / "ws")
    paper, quick = (stage_config(ws, "reproduce", preset, {}) for preset in ("paper", "quick"))
    assert paper.pretrain_per_seed and paper.ood
    assert not quick.pretrain_per_seed and not quick.ood


def test_ood_adds_the_ood_families_and_zero_shot_cells(tmp_path):
    ws, _ = Workspace.init(tmp_path / "ws")
    config = ReproduceConfig(
        envs=["cheetah-vel", "cheetah-dir"],
        methods=["prompt-diffuser", "prompt-dt", "lora"],
        seeds=[0],
        ood=True,
    )
    steps = {s.key: s for s in plan(config, "smoke", ws)}
    collects = [s.family for s in steps.values() if s.stage == "collect"]
    assert collects == ["cheetah-vel", "cheetah-dir", "cheetah-vel-ood"]  # cheetah-dir has no OOD variant
    zero_shot = sorted(k for k, s in steps.items() if s.stage == "tune" and s.flags.get("shots") == 0)
    assert zero_shot == sorted(
        f"tune:{f}:{m}:zero-shot:{setting}"
        for f in collects
        for m in ("prompt-diffuser", "prompt-dt")
        for setting in ("nearest", "none")
    )
    assert all(steps[k].flags["zero_shot_source"] == k.split(":")[-1] for k in zero_shot)
    none = steps["tune:cheetah-vel-ood:prompt-dt:zero-shot:none"]
    resolved = TuneConfig(env="cheetah-vel-ood", method="prompt-dt", shots=0, zero_shot_source="none")
    assert "--shots 0 --set zero_shot_source=none" in command_line(none, resolved, "smoke", [])
    # a finished zero-shot tune counts only if it gave both methods equal information
    older = SimpleNamespace(manifest={"summary": {"zero_shot": {"source": "nearest"}}})
    equal = SimpleNamespace(manifest={"summary": {"zero_shot": {"setting": "nearest"}}})
    assert none.extra_match is not None
    assert not none.extra_match(ws, resolved, older) and none.extra_match(ws, resolved, equal)
    assert steps["tune:cheetah-vel-ood:prompt-diffuser:zero-shot:nearest"].flags["diffuse_runs"] == [
        steps["diffuse:cheetah-vel-ood:project:seed-0"]
    ]
    assert "tune:cheetah-vel-ood:lora:expert" in steps  # every method few-shot on the OOD family
    assert {steps[f"eval:{key}"] for key in zero_shot} <= set(steps["report"].flags["runs"])
    without = plan(config.model_copy(update={"ood": False}), "smoke", ws)
    assert not any("zero-shot" in s.key or "-ood" in s.key for s in without)


def test_an_ood_family_gets_expert_data_and_the_default_rule_only(tmp_path):
    ws, _ = Workspace.init(tmp_path / "ws")
    config = ReproduceConfig(
        envs=["cheetah-vel"],
        methods=["prompt-diffuser", "prompt-dt"],
        seeds=[0],
        ood=True,
        data_kinds=["expert", "medium"],
        guidance_ablation=True,
    )
    steps = plan(config, "smoke", ws)
    ood = [s for s in steps if s.family == "cheetah-vel-ood"]
    assert {s.flags["data_kind"] for s in ood if s.stage == "tune" and "data_kind" in s.flags} == {"expert"}
    assert {s.flags["guidance"] for s in ood if s.stage == "diffuse"} == {"project"}
    assert next(s for s in ood if s.stage == "collect").flags["kinds"] == ["expert", "prompt-expert"]
    base = [
        s for s in steps if s.family == "cheetah-vel"
    ]  # the in-distribution family keeps the whole matrix
    assert {s.flags["guidance"] for s in base if s.stage == "diffuse"} == {
        "project",
        "sum",
        "none",
        "plm-only",
        "gpm",
    }


def test_the_ablation_sweeps_the_guidance_weight_as_variants_of_the_default_rule(tmp_path):
    ws, _ = Workspace.init(tmp_path / "ws")
    config = ReproduceConfig(
        envs=[FAMILY],
        methods=["prompt-diffuser"],
        seeds=[0],
        guidance_ablation=True,
        ablation_rules=["sum"],
        ablation_lambdas=[0.5, 1.0, 2.0],  # 1 is the default rule's own weight: no variant of its own
    )
    steps = {s.key: s for s in plan(config, "smoke", ws)}
    diffuse = {k: s.flags for k, s in steps.items() if s.stage == "diffuse"}
    assert list(diffuse) == [
        f"diffuse:{FAMILY}:{variant}:seed-0"
        for variant in ("project", "sum", "project@lambda=0.5", "project@lambda=2")
    ]
    half = diffuse[f"diffuse:{FAMILY}:project@lambda=0.5:seed-0"]
    assert (half["guidance"], half["lam"]) == ("project", 0.5) and "lam" not in diffuse[
        f"diffuse:{FAMILY}:sum:seed-0"
    ]
    assert f"tune:{FAMILY}:prompt-diffuser:expert:project@lambda=2" in steps
    step = steps[f"diffuse:{FAMILY}:project@lambda=0.5:seed-0"]
    resolved = stage_config(ws, "diffuse", "smoke", {**half, "pretrain_run": "run-p"})
    assert "--guidance project --lambda 0.5" in command_line(step, resolved, "smoke", [])
    with pytest.raises(ValueError, match="finite and >= 0"):
        ReproduceConfig(envs=[FAMILY], ablation_lambdas=[-1.0])
