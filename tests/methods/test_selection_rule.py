"""The selection protocol's rules, on constructed numbers (no model): every method gets as many candidates,
a trial stops by the one early-stopping rule, and a choice at a grid's edge is flagged."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from pdiff.config import resolve_config
from pdiff.errors import RunFailed, UsageError
from pdiff.methods.base import TaskContext, TaskResult
from pdiff.methods.registry import METHODS
from pdiff.methods.selection import (
    CANDIDATES_PER_METHOD,
    LR_GRID,
    PTDT_ETA_GRID,
    EarlyStopping,
    at_edge,
    by_seed,
    candidates,
    grid_for,
    lowest_point,
    mean_curve,
    run_trial,
)
from pdiff.results.recorded import selection_settings
from pdiff.stages.tune import TuneConfig


def test_every_method_that_trains_gets_the_same_number_of_candidates():
    counts = {name: len(candidates(grid_for(name))) for name, module in METHODS.items() if module.DEFAULT_LR}
    assert counts == dict.fromkeys(counts, CANDIDATES_PER_METHOD)
    assert grid_for("prompt-dt") == {}  # nothing trained, nothing chosen
    # the values that the old grids' edges took in most study cells now lie inside the grids
    assert min(LR_GRID) < 1e-4 and max(LR_GRID) > 1e-2
    assert min(PTDT_ETA_GRID) < 0.1 < max(PTDT_ETA_GRID)


def _trial(losses: dict[int, float], rule: EarlyStopping, diverge_at: int | None = None) -> tuple[dict, list]:
    """run_trial on a stand-in method whose held-out loss after each step is `losses[step]`: (the trial's
    curve, the steps the method ran)."""
    ran: list[int] = []

    def tuned_for(step: int) -> Callable[[], TaskResult]:
        return lambda: TaskResult(prompt=None, tunable_parameters=0, metrics={"step": step})

    def tune_task(context: TaskContext) -> TaskResult:
        for step in range(1, rule.cap + 1):
            if step == diverge_at:
                raise RunFailed("tune loss became nan")
            ran.append(step)
            if context.stop_after(step, tuned_for(step)):
                break
        return tuned_for(len(ran))()

    context = TaskContext(
        seed=0,
        task=0,
        policy=None,
        fewshot=None,
        fewshot_prompts=None,
        rng=np.random.default_rng(0),
        device=torch.device("cpu"),
        out_dir=Path("."),
    )
    curve = run_trial(tune_task, context, lambda result: losses[result.metrics["step"]], rule)
    return curve, ran


def test_a_trial_stops_after_patience_scores_without_a_new_best():
    rule = EarlyStopping(every=10, patience=2, cap=100)
    losses = dict.fromkeys(range(1, 101), 9.0) | {10: 5.0, 20: 4.0, 30: 3.0, 40: 3.5, 50: 3.2, 60: 1.0}
    curve, ran = _trial(losses, rule)
    assert ran[-1] == 50  # 40 and 50 did not beat 30: the better 60 is never reached
    assert curve == {10: 5.0, 20: 4.0, 30: 3.0, 40: 3.5, 50: 3.2}
    assert lowest_point(curve) == (30, 3.0)


def test_a_trial_still_improving_runs_to_the_cap_and_is_scored_there():
    rule = EarlyStopping(every=10, patience=2, cap=45)
    assert rule.checkpoints() == [10, 20, 30, 40, 45]
    curve, ran = _trial({step: 100.0 - step for step in range(1, 46)}, rule)
    assert ran[-1] == 45 and lowest_point(curve) == (45, 55.0)
    assert at_edge({"steps": 45}, {"steps": rule.checkpoints()}) == ["steps"]


def test_a_diverged_trial_scores_inf_everywhere():
    rule = EarlyStopping(every=10, patience=2, cap=30)
    curve, _ = _trial(dict.fromkeys(range(1, 31), 1.0), rule, diverge_at=15)
    assert curve == dict.fromkeys([10, 20, 30], math.inf)


def test_the_mean_curve_keeps_a_stopped_trials_last_score_and_picks_the_earliest_lowest_step():
    stopped = {10: 2.0, 20: 1.0, 30: 3.0}
    longer = {10: 4.0, 20: 3.0, 30: 2.0, 40: 1.0, 50: 1.0}
    curve = mean_curve([stopped, longer], [10, 20, 30, 40, 50, 60])
    assert curve == {10: 3.0, 20: 2.0, 30: 2.5, 40: 2.0, 50: 2.0}  # nobody reached 60
    assert lowest_point(curve) == (20, 2.0)


def test_the_per_seed_losses_average_each_seeds_tasks_at_the_chosen_step():
    stopped = {10: 2.0, 20: 1.0, 30: 3.0}
    longer = {10: 4.0, 20: 3.0, 30: 2.0, 40: 1.0, 50: 1.0}
    jobs = [(0, 0), (0, 1), (3, 0), (3, 1)]
    curves = [stopped, longer, longer, longer]
    assert by_seed(curves, jobs, 20) == {"0": 2.0, "3": 3.0}
    # at 50 the stopped trial counts with its last score (3.0), as in the mean curve
    assert by_seed(curves, jobs, 50) == {"0": 2.0, "3": 1.0}
    assert sum(by_seed(curves, jobs, 50).values()) / 2 == mean_curve(curves, [10, 20, 30, 40, 50])[50]


def test_a_choice_at_the_edge_of_its_grid_is_flagged_in_the_record_and_the_report():
    grid = {"lr": PTDT_ETA_GRID, "ptdt_lr_decay": (1.0,), "steps": [10, 20, 30]}
    assert at_edge({"lr": max(PTDT_ETA_GRID), "ptdt_lr_decay": 1.0, "steps": 20}, grid) == ["lr"]
    assert (
        at_edge({"lr": PTDT_ETA_GRID[2], "ptdt_lr_decay": 1.0, "steps": 20}, grid) == []
    )  # one value: fixed
    selection = {"chosen": {"lr": 1e-5}, "steps": 40, "at_edge": ["lr"]}
    assert selection_settings("full-ft", selection) == {
        "full-ft chosen": "lr 1e-05 (at the grid's edge)",
        "full-ft tune steps chosen": "40",
    }


def test_the_report_shows_every_candidate_of_the_grid_beside_the_choice():
    trials = [
        {"lr": lr, "ptdt_lr_decay": 1.0, "steps": steps, "heldout_loss": 0.1, "curve": [[10, 0.1]]}
        for lr, steps in ((0.03, 10), (0.01, 20), (0.1, 10))
    ]
    selection = {"scores": trials, "chosen": {"lr": 0.01, "ptdt_lr_decay": 1.0}, "steps": 20, "at_edge": []}
    assert selection_settings("ptdt", selection) == {
        "ptdt grid": "lr 0.01/0.03/0.1, ptdt_lr_decay 1",  # outcomes and early-stopped steps are not settings
        "ptdt chosen": "lr 0.01, ptdt_lr_decay 1",
        "ptdt tune steps chosen": "20",
    }


def test_the_early_stopping_settings_are_checked_and_older_runs_keep_their_fixed_budget():
    for key in ("eval_every", "patience"):
        with pytest.raises(UsageError, match=key):
            resolve_config(TuneConfig, "tune", workspace=None, overrides=[f"{key}=0"])
    recorded = TuneConfig(method="lora", steps=30).model_dump()
    del recorded["eval_every"], recorded["patience"]  # what a pdiff before early stopping wrote
    assert TuneConfig.model_validate(recorded).eval_every == 30  # scored at its 30 steps alone
