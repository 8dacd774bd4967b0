"""The report's uncertainty: seed-level intervals and probabilities of improvement (rliable's definitions,
resampled by scipy); settings that change results keep apart."""

from __future__ import annotations

import numpy as np
from scipy import stats

from pdiff.results.cells import setting_label
from pdiff.stats import (
    average_interval,
    mean_interval,
    paired_by_seed,
    probability_of_improvement,
    sample_std,
)
from pdiff.workspace.runs import Run

SCORES = np.array([[1.0, 4.0, 2.5, 7.0], [2.0, 3.0, 3.5, 6.0], [1.5, 5.0, 2.0, 8.0]])  # seeds × tasks
# Seeds that move every task together (one few-shot draw, one model, one tuning per seed), as in a study.
SEED_LEVEL = np.array([0.0, 10.0, 20.0])
CORRELATED = SEED_LEVEL[:, None] + np.array([[1.0, 4.0, 2.5, 7.0]])


def test_a_cells_interval_resamples_whole_seeds() -> None:
    per_seed = CORRELATED.mean(axis=1)
    library = stats.bootstrap(
        (per_seed,),
        np.mean,
        n_resamples=2000,
        confidence_level=0.95,
        method="percentile",
        rng=np.random.default_rng(0),
    )
    low, high = mean_interval(CORRELATED)
    assert (low, high) == (library.confidence_interval.low, library.confidence_interval.high)
    # by hand: a resample repeats one seed three times with chance 1/27 > 2.5%, so with three seeds the
    # percentile interval runs from the lowest seed's mean to the highest's
    assert (low, high) == (per_seed.min(), per_seed.max())
    # more tasks that move with their seed add no information: the interval stays (resampling each task's
    # seeds on their own would narrow it with every task added)
    assert mean_interval(np.hstack([CORRELATED] * 5)) == (low, high)
    # the interval and the std over seeds describe the same seeds: no spread, no width
    flat = np.array([[0.25, 0.75], [0.75, 0.25], [0.5, 0.5]])  # each seed's mean is 0.5
    assert sample_std(flat.mean(axis=1)) == 0.0 and mean_interval(flat) == (0.5, 0.5)
    assert mean_interval(SCORES[:1]) is None
    assert sample_std([1.0, 2.0, 3.0]) == 1.0 and sample_std([5.0]) == 0.0


def test_the_average_over_families_weighs_each_family_once_whatever_its_task_count() -> None:
    one_task = np.array([[100.0], [101.0], [99.5]])  # a family of one test task, far above the other
    low, high = average_interval([SCORES, one_task])
    assert low < (SCORES.mean() + one_task.mean()) / 2 < high
    pooled = np.hstack([SCORES, one_task]).mean()  # what treating the five tasks alike would give
    assert not low < pooled < high
    # the same resamples with one family raised by 10: the average moves by 10 / 2, whatever its task count
    shifted_low, shifted_high = average_interval([SCORES, one_task + 10.0])
    assert np.isclose(shifted_low, low + 5.0) and np.isclose(shifted_high, high + 5.0)
    # seed s of every family is resampled as one: the interval of the per-seed averages
    per_seed = (SCORES.mean(axis=1) + one_task.mean(axis=1)) / 2
    assert (low, high) == mean_interval(per_seed[:, None])
    assert average_interval([SCORES, one_task[:1]]) is None


def test_probability_of_improvement_is_the_mann_whitney_statistic_averaged_over_tasks() -> None:
    other = SCORES + np.array([[0.5], [-1.0], [2.0]])
    improvement = probability_of_improvement(SCORES, other, paired=True)
    per_task = [stats.mannwhitneyu(SCORES[:, t], other[:, t]).statistic / 9 for t in range(4)]
    assert np.isclose(improvement.probability, np.mean(per_task))
    assert np.allclose(improvement.by_task, per_task)
    low, high = improvement.interval
    assert 0.0 <= low <= improvement.probability <= high <= 1.0
    assert probability_of_improvement(SCORES + 100, SCORES).probability == 1.0


def test_a_comparison_over_shared_seeds_resamples_them_together() -> None:
    ours, other = CORRELATED + 1.0, CORRELATED  # each seed's draw lifts both; ours is 1 higher on every one
    paired = probability_of_improvement(ours, other, paired=True)
    # all seed pairs (rliable): seed i of ours beats seed j of the other when i >= j, 6 pairs of 9
    assert paired.probability == 6 / 9
    # by hand: a resample of seeds (the same for both) with k distinct seeds scores (9 - (k choose 2)) / 9 of
    # its pairs, 6/9 at least (all three distinct, chance 6/27) and 1 at most (one seed repeated, 3/27)
    assert paired.interval == (6 / 9, 1.0)
    # resampled apart, the other method's best seed meets our worst: the interval reaches below 0.5
    unpaired = probability_of_improvement(ours, other, paired=False)
    assert unpaired.probability == paired.probability and unpaired.interval[0] < 0.5 < paired.interval[0]


def test_pairs_are_matched_by_seed_id_not_by_position() -> None:
    shuffled = CORRELATED[[2, 0, 1]]  # the same runs, listed as seeds 2, 0, 1
    assert np.array_equal(paired_by_seed(CORRELATED + 1.0, [0, 1, 2], shuffled, [2, 0, 1]), CORRELATED)
    assert paired_by_seed(CORRELATED, [0, 1, 2], CORRELATED, [3, 4, 5]) is None  # no shared draw


def _run(stage: str, config: dict) -> Run:
    return Run(workspace=None, stage=stage, run_id=stage, manifest={"config": config})  # type: ignore[arg-type]


def test_runs_that_differ_in_a_result_changing_setting_get_different_labels() -> None:
    tune = _run("tune", {"method": "prompt-diffuser", "selection": "holdout"})
    x0 = _run("diffuse", {"diffusion": {"prediction": "x0"}, "segment_source": "tail"})
    eps = _run("diffuse", {"diffusion": {"prediction": "epsilon"}, "segment_source": "tail"})
    assert setting_label(tune, x0) == ""
    assert setting_label(tune, eps) == "ε-prediction"
    old = _run("diffuse", {"diffusion": {}})  # made before prediction and segment_source existed
    old_tune = _run("tune", {"method": "prompt-diffuser", "lr": 1e-4})
    assert setting_label(old_tune, old) == "ε-prediction, segments anywhere, lr 0.0001 by hand"
