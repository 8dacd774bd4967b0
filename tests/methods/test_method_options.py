"""Each method's own options: a section of the tune config named as the method, checked like every setting,
listed by `pdiff config show tune --method M` and in docs/tuning-methods.md; configs recorded with the older
flat settings still load and still count as the same run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.cli import runner

from pdiff.cli import app
from pdiff.config import describe, resolve_config
from pdiff.errors import UsageError
from pdiff.methods import lora, ptdt
from pdiff.methods.options import FLAT_OPTIONS, recorded_options
from pdiff.methods.registry import METHODS, option_sections, others_options
from pdiff.methods.shared_config import SharedTuneConfig
from pdiff.stages.tune import TuneConfig
from pdiff.workflows.pipeline import same_config
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import create_run

DOCS = Path(__file__).parents[2] / "docs" / "tuning-methods.md"
# The config of a ptdt tune run as pdiff recorded it before the methods had sections (smoke preset, reach).
FLAT_RECORD = {
    "adapt": "finetune",
    "adapter_width": 16,
    "batch_size": 4,
    "data_kind": "expert",
    "device": "cpu",
    "diffuse_run": None,
    "diffuse_runs": None,
    "env": "metaworld-reach",
    "eval_every": 1,
    "grad_clip": 1.0,
    "guidance": None,
    "lam": None,
    "lora_alpha": 4.0,
    "lora_rank": 4,
    "lora_targets": ["attn.qkv", "attn.proj"],
    "lr": None,
    "method": "ptdt",
    "patience": 3,
    "precision": "fp32",
    "pretrain_run": "20261204-235736-metaworld_reach-4398e0",
    "pretrain_runs": None,
    "ptdt_batches": 2,
    "ptdt_horizon": None,
    "ptdt_lr_decay": 0.95,
    "ptdt_online": False,
    "ptdt_perturb": "all",
    "ptdt_population": 15,
    "ptdt_rollouts": 2,
    "ptdt_sigma": 1.0,
    "seeds": [0],
    "segment_source": None,
    "selection": "holdout",
    "shots": 2,
    "steps": 3,
    "threads": 1,
    "zero_shot_source": "nearest",
}


def _resolve(*overrides: str, method: str = "ptdt") -> TuneConfig:
    return resolve_config(
        TuneConfig, "tune", workspace=None, overrides=list(overrides), flags={"method": method}
    )


def test_a_methods_options_are_set_in_its_section_and_read_typed():
    config = _resolve("ptdt.population=7", "ptdt.online=true", "lora.rank=2")
    options = config.options()
    assert isinstance(options, ptdt.Options) and (options.population, options.online) == (7, True)
    assert config.lora == lora.Options(rank=2)  # recorded, though a ptdt tune does not read it
    assert others_options("ptdt", ["lora.rank", "ptdt.sigma", "steps"]) == ["lora.rank"]
    assert _resolve(method="full-ft").options() == METHODS["full-ft"].Options()  # no options of its own


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("ptdt.population=1", "bad tune setting ptdt.population=1 (from --set)"),
        ("lora.targets=[attn.qkvv]", "choose one of: attn.qkv, attn.proj, mlp.fc, mlp.proj"),
        ("lora.rnk=2", "unknown tune setting 'lora.rnk' (from --set)"),
        ("prompt-diffuser.adapt=conditon-only", "did you mean 'condition-only'?"),
    ],
)
def test_a_bad_option_names_its_key_and_what_is_allowed(override, message):
    with pytest.raises(UsageError) as caught:
        _resolve(override)
    assert message in f"{caught.value} {caught.value.hint}"


def test_a_config_recorded_with_flat_options_loads_into_the_sections_and_matches_its_run(tmp_path):
    loaded = TuneConfig.model_validate(FLAT_RECORD)
    assert loaded.options() == ptdt.Options()
    assert loaded.lora == lora.Options() and loaded.adaptor.width == 16
    assert recorded_options(FLAT_RECORD, "ptdt") == recorded_options(loaded.model_dump(), "ptdt")
    # every flat name is read into an option that exists, so none is dropped on the way
    assert all(option in option_sections()[method].model_fields for method, option in FLAT_OPTIONS.values())
    ws, _ = Workspace.init(tmp_path / "w")
    run = create_run(ws, "tune", config=FLAT_RECORD, argv=["pdiff", "tune"], seed=0, family="metaworld-reach")
    # reproduce's test of a finished run: the new form of the same settings matches, another value does not
    assert same_config("tune", loaded)(run)
    assert not same_config("tune", loaded.model_copy(update={"ptdt": ptdt.Options(population=9)}))(run)


def test_config_show_lists_the_shared_settings_and_one_methods_options():
    shown = runner.invoke(app, ["--json", "config", "show", "tune", "--method", "lora"])
    assert shown.exit_code == 0, shown.output
    keys = [row["key"] for row in json.loads(shown.stdout)]
    assert keys == [*SharedTuneConfig.model_fields, "lora.rank", "lora.alpha", "lora.targets"]
    refused = runner.invoke(app, ["config", "show", "tune", "--method", "loraa"])
    assert refused.exit_code == 2 and "unknown method 'loraa'" in refused.output


def test_the_docs_list_every_option_of_every_method():
    page = DOCS.read_text()
    missing = [key for key, *_ in describe(TuneConfig) if "." in key and f"`{key}" not in page]
    assert not missing, f"docs/tuning-methods.md does not document {missing}"


def test_a_config_recorded_before_the_later_shared_settings_runs_as_it_did():
    """A record lacking every setting added since (selection, early stopping, tasks, compute) gets the values
    that reproduce what pdiff did then: no selection, a fixed budget, the test tasks, torch's threads,
    fp32."""
    later = {
        "selection",
        "eval_every",
        "patience",
        "tasks",
        "threads",
        "precision",
        "diffuse_runs",
        "pretrain_runs",
        "zero_shot_source",
    }
    loaded = TuneConfig.model_validate({k: v for k, v in FLAT_RECORD.items() if k not in later})
    assert (loaded.selection, loaded.eval_every, loaded.tasks) == ("off", FLAT_RECORD["steps"], None)
    assert (loaded.threads, loaded.precision) == (None, "fp32")
