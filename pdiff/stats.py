"""Uncertainty of a few-seed comparison, with rliable's definitions (Agarwal et al. 2021), resampled by scipy.

A result is a (seeds × tasks) matrix of scores: one number per seed and test task (the mean over that seed's
episodes of the task). Its 95% interval is a stratified bootstrap of the mean over tasks: the seeds of each
task are resampled on their own (each task is a stratum), as rliable does. The probability of improvement
P(X > Y) of method X over Y is, per task, the chance that a random seed of X beats a random seed of Y (ties
count one half: the Mann-Whitney U statistic over n·m), averaged over tasks; its interval resamples the
seeds of both methods within every task. `scipy.stats.bootstrap` does the resampling (percentile intervals,
a fixed random generator so a report is reproducible).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 2000
SEED = 0


def sample_std(values: Sequence[float]) -> float:
    """Standard deviation with ddof = 1 (what a reader assumes of "± std over seeds"); 0 for one value."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _strata(scores: np.ndarray) -> list[np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    return [scores[:, task] for task in range(scores.shape[1])]


def mean_interval(scores: np.ndarray) -> tuple[float, float] | None:
    """95% stratified bootstrap interval of the mean over tasks and seeds of a (seeds × tasks) matrix; None
    with fewer than two seeds (nothing to resample)."""
    return average_interval([scores])


def average_interval(results: Sequence[np.ndarray]) -> tuple[float, float] | None:
    """95% stratified bootstrap interval of the mean over results (a method's families, say) of each one's mean
    over its tasks, given each as a (seeds × tasks) matrix: every task of every result is a stratum. None when
    a result has fewer than two seeds."""
    results = [np.asarray(scores, dtype=np.float64) for scores in results]
    if any(scores.ndim != 2 or scores.shape[0] < 2 for scores in results):
        return None
    bounds = list(pairwise(np.cumsum([0] + [scores.shape[1] for scores in results])))  # each result's strata

    def average(*per_task: np.ndarray, axis: int = -1) -> np.ndarray:
        task_means = [np.mean(x, axis=axis) for x in per_task]
        return np.mean([np.mean(task_means[start:end], axis=0) for start, end in bounds], axis=0)

    strata = [stratum for scores in results for stratum in _strata(scores)]
    result = stats.bootstrap(strata, average, n_resamples=RESAMPLES, confidence_level=CONFIDENCE,
                             method="percentile", vectorized=True, rng=np.random.default_rng(SEED))  # fmt: skip
    interval = result.confidence_interval
    return float(interval.low), float(interval.high)


def _improvement(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """P(X > Y) + ½·P(X = Y) over all seed pairs of one task (vectorised over leading axes)."""
    x, y = np.moveaxis(x, axis, -1), np.moveaxis(y, axis, -1)
    diff = x[..., :, None] - y[..., None, :]
    return np.mean((diff > 0) + 0.5 * (diff == 0), axis=(-2, -1))


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> tuple[float, tuple[float, float] | None]:
    """P(X > Y) averaged over tasks for two (seeds × tasks) matrices over the same tasks, and its 95%
    stratified bootstrap interval (None when either has fewer than two seeds)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"the two results cover {x.shape[1]} and {y.shape[1]} tasks")
    tasks = x.shape[1]
    point = float(np.mean([_improvement(x[:, t], y[:, t]) for t in range(tasks)]))
    if x.shape[0] < 2 or y.shape[0] < 2:
        return point, None

    def averaged(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean([_improvement(samples[t], samples[tasks + t], axis) for t in range(tasks)], axis=0)

    result = stats.bootstrap([*_strata(x), *_strata(y)], averaged, n_resamples=RESAMPLES, confidence_level=CONFIDENCE,
                             method="percentile", vectorized=True, rng=np.random.default_rng(SEED))  # fmt: skip
    interval = result.confidence_interval
    return point, (float(interval.low), float(interval.high))
