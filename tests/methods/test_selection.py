"""The one selection protocol: it reads only the few-shot data, records what it tried and chose, and the
setting it picks lets PTDT move its prompt and lower the held-out few-shot loss."""

from __future__ import annotations

import numpy as np
import pytest

from pdiff.config import resolve_config
from pdiff.envs.metaworld_family import MetaWorldFamily
from pdiff.errors import UsageError
from pdiff.methods import lora
from pdiff.methods.selection import CANDIDATES_PER_METHOD, LR_GRID, at_edge, candidates, grid_for
from pdiff.rollouts.budget import early_stopping_curve, selection_curve
from pdiff.stages.tune import TuneConfig, run_tune

pytestmark = pytest.mark.metaworld
REACH = "metaworld-reach"


def _tune(trained, method: str, **flags):
    """Tune the fixture's own Prompt-DT (other tests add Prompt-DTs to the shared workspace)."""
    ws, pretrain, _ = trained
    flags = {"env": REACH, "method": method, "pretrain_run": pretrain.run_id, **flags}
    config = resolve_config(TuneConfig, "tune", workspace=ws, preset="smoke", flags=flags)
    return run_tune(ws, config, argv=["pdiff", "tune"])


def test_selection_builds_no_simulator_and_records_its_choice(trained, monkeypatch):
    ws, _, _ = trained
    built: list[int] = []
    make_env = MetaWorldFamily.make_env

    def counting(self, task_id, **kwargs):
        built.append(task_id)
        return make_env(self, task_id, **kwargs)

    monkeypatch.setattr(MetaWorldFamily, "make_env", counting)
    budgets: list[tuple[bool, int]] = []  # (a selection trial?, steps it may run) of every tuning
    tune_task = lora.tune_task
    monkeypatch.setattr(
        lora,
        "tune_task",
        lambda context: (
            budgets.append((context.after_step is not None, context.settings.steps)) or tune_task(context)
        ),
    )
    run, summary = _tune(trained, "lora")
    assert built == []
    selection = summary["selection"]
    assert selection["protocol"] == "holdout-last-episode"
    assert [row["lr"] for row in selection["scores"]] == list(LR_GRID)
    best = min(selection["scores"], key=lambda row: row["heldout_loss"])
    assert selection["chosen"] == {"lr": best["lr"]}
    # the smoke preset scores every step of its 3: the steps are chosen with the learning rate
    assert selection["early_stopping"] == {"every": 1, "patience": 3, "cap": 3}
    assert selection["steps"] == best["steps"] == min(best["curve"], key=lambda point: point[1])[0]
    assert best["heldout_loss"] == min(loss for _, loss in best["curve"])
    edges = at_edge({**selection["chosen"], "steps": selection["steps"]}, {"lr": LR_GRID, "steps": [1, 2, 3]})
    assert selection["at_edge"] == edges
    jobs = len(summary["per_task"])
    assert sorted(budgets) == [(False, selection["steps"])] * jobs + [(True, 3)] * len(LR_GRID) * jobs
    assert np.isfinite(selection["heldout_loss_untuned"])
    assert run.manifest["summary"]["selection"] == selection


def test_ptdt_chosen_setting_moves_the_prompt_and_lowers_the_heldout_loss(trained):
    ws, _, _ = trained
    _, summary = _tune(trained, "ptdt", steps=20)
    selection = summary["selection"]
    assert len(selection["scores"]) == len(candidates(grid_for("ptdt"))) == CANDIDATES_PER_METHOD
    assert set(selection["chosen"]) == {"lr", "ptdt_lr_decay"}
    chosen = min(row["heldout_loss"] for row in selection["scores"])
    assert chosen < selection["heldout_loss_untuned"], selection
    moved = [m["prompt_moved_rms"] for m in summary["per_task"].values()]
    assert min(moved) > 0.01, moved  # the reference driver's eta=1e-4 with decay 0.95 moves about 1e-4
    for metrics in summary["per_task"].values():
        assert metrics["fewshot_loss_after"] <= metrics["fewshot_loss_before"] * 1.05, metrics


def test_a_fixed_learning_rate_needs_selection_off(trained):
    ws, _, _ = trained
    with pytest.raises(UsageError, match="selection=off"):
        resolve_config(
            TuneConfig,
            "tune",
            workspace=ws,
            preset="smoke",
            flags={"env": REACH, "method": "lora", "lr": 1e-3},
        )
    config = resolve_config(
        TuneConfig,
        "tune",
        workspace=ws,
        preset="smoke",
        flags={"env": REACH, "method": "lora", "lr": 1e-3, "selection": "off"},
    )
    assert config.lr == 1e-3


def test_tune_runs_at_several_budgets_make_a_held_out_curve(trained):
    ws, _, _ = trained
    runs = [_tune(trained, "lora", steps=steps)[0] for steps in (1, 3)]
    steps, values = selection_curve(runs)
    assert steps == [0, 1, 3]
    selections = [run.manifest["summary"]["selection"] for run in runs]
    assert values[0] == -selections[0]["heldout_loss_untuned"] == -selections[1]["heldout_loss_untuned"]
    assert values[2] == -min(row["heldout_loss"] for row in selections[1]["scores"])
    with pytest.raises(ValueError, match="two tune runs at steps=1"):
        selection_curve([runs[0], runs[0]])
    with pytest.raises(ValueError, match="without the selection protocol"):
        selection_curve([_tune(trained, "lora", steps=1, selection="off")[0]])


def test_one_tune_run_with_early_stopping_makes_the_curve_from_its_candidates(trained):
    ws, _, _ = trained
    run, summary = _tune(trained, "lora")  # smoke: every step of its 3 scored
    steps, values = early_stopping_curve(run)
    selection = summary["selection"]
    assert steps == [0, 1, 2, 3]
    assert values[0] == -selection["heldout_loss_untuned"]
    curves = [dict(row["curve"]) for row in selection["scores"]]
    assert values[1:] == [-min(curve[step] for curve in curves) for step in (1, 2, 3)]
    assert max(values[1:]) == -min(row["heldout_loss"] for row in selection["scores"])  # the selection's pick
    with pytest.raises(ValueError, match="without the selection protocol"):
        early_stopping_curve(_tune(trained, "lora", steps=1, selection="off")[0])


def test_options_under_which_a_method_trains_nothing_leave_nothing_to_select(trained):
    _, summary = _tune(trained, "prompt-diffuser", **{"prompt-diffuser.adapt": "condition-only"})
    assert summary.get("selection") is None and summary["tunable_parameters"] == 0
    _, tuned = _tune(trained, "prompt-diffuser")
    assert tuned["selection"]["chosen"] and tuned["tunable_parameters"] > 0
