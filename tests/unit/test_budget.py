"""Budgets read off learning curves (pdiff.rollouts.budget): the step that reaches 95 % of the rise to the
plateau, robust to a lucky early point, correct for negative returns, and honest about a curve that is still
rising."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from pdiff.rollouts.budget import early_stopping_curve, plateau_budget
from pdiff.workspace.runs import RunStatus


def saturating(steps: np.ndarray, start: float, end: float, scale: float) -> np.ndarray:
    return end + (start - end) * np.exp(-steps / scale)


def test_a_saturating_curve_gives_the_step_it_reaches_95_percent_of_its_rise():
    steps = np.arange(0, 6001, 250)
    budget = plateau_budget(steps, saturating(steps, 0.0, 500.0, 600.0))
    exact = -600 * np.log(0.05)  # 1797: where 95 % of the rise is reached without noise or smoothing
    assert budget.plateau == pytest.approx(500.0, abs=1.0) and not budget.still_rising
    assert exact <= budget.reached_at <= exact + 500  # the centred mean of a concave curve lies below it


def test_negative_returns_are_measured_as_a_share_of_the_rise():
    steps = np.arange(0, 6001, 250)
    budget = plateau_budget(steps, saturating(steps, -300.0, -40.0, 600.0))
    assert budget.threshold == pytest.approx(-300 + 0.95 * (budget.plateau + 300))
    assert 1797 <= budget.reached_at <= 2550


def test_one_lucky_early_point_does_not_set_the_budget():
    steps = np.arange(0, 6001, 250)
    values = saturating(steps, 0.0, 500.0, 600.0)
    values[2] = 520.0  # a single point above the plateau at step 500
    assert plateau_budget(steps, values).reached_at > 1000


def test_a_curve_still_rising_at_its_end_is_flagged_and_a_flat_one_costs_nothing():
    steps = np.arange(0, 3001, 250)
    assert plateau_budget(steps, 0.2 * steps).still_rising
    flat = plateau_budget(steps, np.full(len(steps), 100.0) - 0.01 * steps)
    assert flat.reached_at == 0 and not flat.still_rising


def test_too_few_points_are_refused():
    with pytest.raises(ValueError, match="log it more often"):
        plateau_budget([0, 1, 2, 3, 4], [0, 1, 2, 3, 4])


def test_a_flat_noisy_end_is_not_a_rise():
    steps = np.arange(250, 3001, 250)
    # pick-place's diffuse curve (scripts/size_budget.py on the curves workspace): flat from step 500 on
    values = [296.5, 334.3, 331.9, 319.1, 317.1, 322.5, 330.4, 318.0, 319.2, 327.8, 333.5, 322.6]
    budget = plateau_budget(steps, values)
    assert not budget.still_rising and budget.reached_at == 750


def test_a_curve_that_turns_down_reads_its_budget_off_its_best_point():
    # adaptor's held-out few-shot loss on pick-place (negated) at 0, 10, 30 and 90 tune steps: it overfits
    steps, values = [0, 10, 30, 90], [-0.01198, -0.01063, -0.01022, -0.01058]
    budget = plateau_budget(steps, values, tail=1, window=1, best=True)
    assert budget.plateau == -0.01022 and budget.reached_at == 30
    assert plateau_budget(steps, values, tail=1, window=1).reached_at == 10  # the last point would say 10


def test_shares_say_how_far_each_point_got():
    budget = plateau_budget([0, 10, 30, 90], [-4.0, -2.0, 0.0, -1.0], tail=1, window=1, best=True)
    assert budget.shares() == {0: 0.0, 10: 0.5, 30: 1.0, 90: 0.75}


def test_a_curve_past_its_best_is_not_still_rising_but_one_ending_on_its_best_is():
    past = plateau_budget([0, 10, 30, 60, 90], [-4.0, -1.0, 0.0, -2.0, -0.5], tail=1, window=1, best=True)
    ending = plateau_budget([0, 10, 30, 60, 90], [-4.0, -1.0, -0.5, -0.4, 0.0], tail=1, window=1, best=True)
    assert not past.still_rising and ending.still_rising


def test_settings_that_cannot_read_a_curve_are_refused():
    steps, values = list(range(8)), [float(v) for v in range(8)]
    for bad in ({"tail": 0}, {"window": 2}, {"best": True}):  # best needs the raw points (window=1)
        with pytest.raises(ValueError):
            plateau_budget(steps, values, **bad)
    assert np.isnan(plateau_budget(steps, values[::-1]).shares()[3])  # a curve that never rose has no shares


def test_a_tune_curve_from_one_run_takes_the_best_candidate_at_each_scored_step():
    """Candidates stopped early keep their last score; one first scored later counts from there."""
    scores = [
        {"lr": 1e-3, "heldout_loss": 0.8, "curve": [[10, 0.9], [20, 0.8]]},  # stopped at 20
        {"lr": 1e-2, "heldout_loss": 0.7, "curve": [[10, 1.0], [20, 0.95], [30, 0.7], [40, 0.85]]},
        {"lr": 1e-1, "heldout_loss": 0.5, "curve": [[30, 0.5]]},  # scored first at 30
    ]
    selection = {"heldout_loss_untuned": 1.2, "scores": scores}
    run = SimpleNamespace(
        run_id="r", status=RunStatus.FINISHED, manifest={"summary": {"selection": selection}}
    )
    steps, values = early_stopping_curve(run)
    assert steps == [0, 10, 20, 30, 40]
    assert values == [-1.2, -0.9, -0.8, -0.5, -0.5]
    run.status = RunStatus.KILLED
    with pytest.raises(ValueError, match="only finished runs"):
        early_stopping_curve(run)
