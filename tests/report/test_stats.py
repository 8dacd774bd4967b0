"""The report's uncertainty: intervals and probabilities of improvement as rliable defines them, computed
by scipy; Prompt Diffuser's standing decided on those intervals; settings that change results keep apart."""

from __future__ import annotations

import numpy as np
from scipy import stats

from pdiff.report.collect import ReportData, Result, Score, setting_label
from pdiff.report.tables import losses
from pdiff.stats import average_interval, mean_interval, probability_of_improvement, sample_std
from pdiff.workspace.runs import Run

SCORES = np.array([[1.0, 4.0, 2.5, 7.0], [2.0, 3.0, 3.5, 6.0], [1.5, 5.0, 2.0, 8.0]])  # seeds × tasks


def test_interval_is_scipys_stratified_bootstrap_of_the_mean() -> None:
    def mean_over_tasks(*per_task: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean([np.mean(x, axis=axis) for x in per_task], axis=0)

    library = stats.bootstrap([SCORES[:, t] for t in range(4)], mean_over_tasks, n_resamples=2000,
                              method="percentile", vectorized=True, rng=np.random.default_rng(0))  # fmt: skip
    low, high = mean_interval(SCORES)
    assert (low, high) == (library.confidence_interval.low, library.confidence_interval.high)
    assert low < SCORES.mean() < high
    # stratified: only seeds are resampled, so a task's level never leaks into another's
    assert high - low < np.ptp(SCORES.mean(axis=0))
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
    assert average_interval([SCORES, one_task[:1]]) is None


def test_probability_of_improvement_is_the_mann_whitney_statistic_averaged_over_tasks() -> None:
    other = SCORES + np.array([[0.5], [-1.0], [2.0]])
    p, (low, high) = probability_of_improvement(SCORES, other)
    per_task = [stats.mannwhitneyu(SCORES[:, t], other[:, t]).statistic / 9 for t in range(4)]
    assert np.isclose(p, np.mean(per_task))
    assert 0.0 <= low <= p <= high <= 1.0
    assert probability_of_improvement(SCORES + 100, SCORES)[0] == 1.0


def _result(method: str, matrix: np.ndarray) -> Result:
    means = matrix.mean(axis=1)
    score = Score(float(means.mean()), sample_std(means), by_seed_task=matrix.tolist())
    return Result(run_id=method, created_at="", family="metaworld-reach", method=method, variant=None,
                  data_kind="expert", shots=5, seeds=[0, 1, 2], episodes=1, horizon=None, score=score,
                  normalized=None, success=None, pretrain_run="p", tune_run=None, diffuse_run=None)  # fmt: skip


def test_standing_is_decided_on_the_interval_not_the_mean() -> None:
    ours = _result("prompt-diffuser", SCORES)
    clearly_worse = _result("lora", SCORES - 10)
    clearly_better = _result("ptdt", SCORES + 10)
    close = _result("adaptor", SCORES[::-1] + 0.1)  # higher mean, overlapping seeds
    text = "\n".join(losses(ReportData([ours, clearly_worse, clearly_better, close], [], [], {})))
    assert "**prompt-diffuser loses to ptdt**" in text and "P(improvement) 0.00 [0.00, 0.00]" in text
    assert "ahead of lora (P(improvement) 1.00 [1.00, 1.00])" in text
    assert "not distinguishable from adaptor" in text and "loses to adaptor" not in text


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
