"""Seeds per cell of the reproduce matrix: ten for Table 1 at the study and paper presets, the first five for
Table 2 and the guidance ablation, Prompt-DTs per group of seeds, and enough collected episodes for every
seed's few-shot draw to be its own."""

from __future__ import annotations

import pytest

from pdiff.data.fewshot import seed_episodes
from pdiff.errors import UsageError
from pdiff.workflows.matrix_seeds import seed_groups
from pdiff.workflows.pipeline import stage_config
from pdiff.workflows.reproduce import ReproduceConfig, plan
from pdiff.workspace.root import Workspace

FAMILY = "metaworld-reach"
PRESETS = ("smoke", "quick", "study", "paper")


@pytest.fixture
def ws(tmp_path) -> Workspace:
    workspace, _ = Workspace.init(tmp_path / "ws")
    return workspace


@pytest.mark.parametrize("preset", ["study", "paper"])
def test_table_1_runs_ten_seeds_and_table_2_and_the_ablation_the_first_five(ws, preset):
    tables = stage_config(ws, "reproduce", preset, {}).model_copy(update={"envs": [FAMILY], "ood": False})
    ten = list(range(10))
    assert stage_config(ws, "tune", preset, {}).seeds == ten == stage_config(ws, "eval", preset, {}).seeds
    steps = plan(tables, preset, ws)
    tunes = {s.key: s for s in steps if s.stage == "tune"}
    for key, step in tunes.items():  # Table 1: expert data, the default rule (keys end in the kind or rule)
        table1 = step.flags["data_kind"] == "expert" and key.split(":")[-1] in ("expert", "project")
        assert step.flags["seeds"] == (None if table1 else ten[:5]), key  # None: the preset's ten
        assert len(step.flags["pretrain_runs"]) == len(step.flags["seeds"] or ten), key
    diffusion = [s for s in steps if s.stage == "diffuse"]
    assert [s.flags["seed"] for s in diffusion if s.flags["guidance"] == "project"] == ten
    assert [s.flags["seed"] for s in diffusion if s.flags["guidance"] == "sum"] == ten[:5]
    full_data = {s.flags["data_kind"]: s.flags["seeds"] for s in steps if s.key.startswith("eval:full-data")}
    assert full_data == {"expert": None, "medium": ten[:5], "random": ten[:5]}


def test_the_study_preset_pretrains_three_prompt_dts_for_its_ten_seeds(ws):
    study = stage_config(ws, "reproduce", "study", {}).model_copy(update={"envs": [FAMILY]})
    steps = {s.key: s for s in plan(study, "study", ws)}
    pretrains = {k: s.flags["seed"] for k, s in steps.items() if s.stage == "pretrain" and "full" not in k}
    groups = {
        f"pretrain:{FAMILY}:seeds-0-3": 0,
        f"pretrain:{FAMILY}:seeds-4-6": 4,
        f"pretrain:{FAMILY}:seeds-7-9": 7,
    }
    assert pretrains == groups
    tune = steps[f"tune:{FAMILY}:prompt-dt:expert"]
    assert tune.flags["pretrain_runs"] == [
        steps[k] for k, n in zip(groups, (4, 3, 3), strict=True) for _ in range(n)
    ]
    assert (
        steps[f"diffuse:{FAMILY}:project:seed-5"].flags["pretrain_run"]
        is steps[f"pretrain:{FAMILY}:seeds-4-6"]
    )
    medium = steps[f"tune:{FAMILY}:prompt-dt:medium"]  # seeds 0-4 read the first two Prompt-DTs
    assert medium.flags["pretrain_runs"] == [steps[f"pretrain:{FAMILY}:seeds-0-3"]] * 4 + [
        steps[f"pretrain:{FAMILY}:seeds-4-6"]
    ]


def test_seed_groups_are_consecutive_and_near_equal():
    assert seed_groups(list(range(10)), 3) == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert seed_groups([4, 7], 2) == [[4], [7]]
    with pytest.raises(UsageError, match="pretrain_groups 3 does not fit 2 seeds"):
        seed_groups([0, 1], 3)
    with pytest.raises(ValueError, match="pretrain_groups needs diffusion_per_seed"):
        ReproduceConfig(envs=[FAMILY], pretrain_groups=2, diffusion_per_seed=False)
    with pytest.raises(ValueError, match="not both"):
        ReproduceConfig(envs=[FAMILY], pretrain_groups=2, pretrain_per_seed=True)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_collects_enough_episodes_for_disjoint_fewshot_draws(ws, preset):
    episodes = stage_config(ws, "collect", preset, {}).episodes
    for stage in ("tune", "eval"):
        config = stage_config(ws, stage, preset, {})
        drawn = [set(seed_episodes(episodes, config.shots, seed).tolist()) for seed in config.seeds]
        assert len(set().union(*drawn)) == config.shots * len(config.seeds), (preset, stage)
