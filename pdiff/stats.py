"""Uncertainty of a few-seed comparison: intervals that resample whole seeds, computed by scipy.

A result is a (seeds × tasks) matrix of scores: one number per seed and test task (the mean over that seed's
episodes of the task). A seed's tasks share one few-shot draw, one diffusion model and one tuning, so they
move together; the seed, not the (seed, task) pair, is the unit of resampling. A cell's 95% interval is the
bootstrap of the mean over seeds of each seed's mean over tasks. The probability of improvement P(X > Y) of
method X over Y keeps rliable's definition (Agarwal et al. 2021): per task, the chance that a random seed of
X beats a random seed of Y (ties count one half: the Mann-Whitney U statistic over n·m), averaged over tasks.
Its interval resamples whole seeds too, the same seed indices for both methods when they share their seeds
(a seed's few-shot draw is the same for both, so the comparison is paired). `scipy.stats.bootstrap` does
the resampling (percentile intervals, a fixed random generator so a report is reproducible).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 2000
SEED = 0

Interval = tuple[float, float]


def sample_std(values: Sequence[float]) -> float:
    """Standard deviation with ddof = 1 (what a reader assumes of "± std over seeds"); 0 for one value."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _bootstrap(
    samples: tuple[np.ndarray, ...], statistic: Callable[..., np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap of a vectorised statistic (scipy's; same settings for every interval of a
    report)."""
    result = stats.bootstrap(
        samples,
        statistic,
        n_resamples=RESAMPLES,
        confidence_level=CONFIDENCE,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(SEED),
    )
    return np.asarray(result.confidence_interval.low), np.asarray(result.confidence_interval.high)


def seed_interval(per_seed: Sequence[float]) -> Interval | None:
    """95% bootstrap interval of the mean of one number per seed; None with fewer than two seeds."""
    values = np.asarray(per_seed, dtype=np.float64)
    if values.ndim != 1 or len(values) < 2:
        return None
    low, high = _bootstrap((values,), np.mean)
    return float(low), float(high)


def mean_interval(scores: np.ndarray) -> Interval | None:
    """95% interval of the mean over seeds and tasks of a (seeds × tasks) matrix, resampling whole seeds (a
    seed's tasks stay together); None with fewer than two seeds."""
    scores = np.asarray(scores, dtype=np.float64)
    return seed_interval(scores.mean(axis=1)) if scores.ndim == 2 else None


def average_interval(results: Sequence[np.ndarray]) -> Interval | None:
    """95% interval of the mean over results (a method's families, say) of each one's mean over its tasks,
    given each as a (seeds × tasks) matrix over the same seeds in the same order: seed s's average over the
    results is resampled as one, and every result weighs the same whatever its number of tasks. None when a
    result has fewer than two seeds or the results differ in their number of seeds."""
    matrices = [np.asarray(scores, dtype=np.float64) for scores in results]
    if any(m.ndim != 2 for m in matrices) or len({m.shape[0] for m in matrices}) != 1:
        return None
    return seed_interval(np.mean([m.mean(axis=1) for m in matrices], axis=0))


def paired_by_seed(
    x: np.ndarray, x_seeds: Sequence[int], y: np.ndarray, y_seeds: Sequence[int]
) -> np.ndarray | None:
    """`y`'s rows reordered to `x_seeds` when both cover the same seed ids (so row i of each is one seed's
    few-shot draw), else None: runs over other seeds share no draw and are resampled apart."""
    if len(x_seeds) != len(x) or len(y_seeds) != len(y) or sorted(x_seeds) != sorted(y_seeds):
        return None
    if len(set(x_seeds)) != len(x_seeds):
        return None
    row_of = {seed: row for row, seed in enumerate(y_seeds)}
    return np.asarray(y)[[row_of[seed] for seed in x_seeds]]


def _improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) + ½·P(X = Y) over all seed pairs, per task: (..., n, tasks) and (..., m, tasks)
    → (..., tasks)."""
    diff = x[..., :, None, :] - y[..., None, :, :]
    return np.mean((diff > 0) + 0.5 * (diff == 0), axis=(-3, -2))


@dataclass(frozen=True)
class Improvement:
    """P(X > Y) averaged over tasks and per task, each with its 95% interval (None: fewer than two seeds)."""

    probability: float
    interval: Interval | None
    by_task: list[float]
    task_intervals: list[Interval | None]
    paired: bool


def probability_of_improvement(x: np.ndarray, y: np.ndarray, *, paired: bool = False) -> Improvement:
    """P(X > Y) for two (seeds × tasks) matrices over the same tasks, with intervals that resample whole
    seeds: with `paired`, row i of both is one seed (see `paired_by_seed`) and both take the same resampled
    seed indices; without, each method's seeds are resampled on their own. The overall and per-task
    intervals come from the same resamples."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"the two results cover {x.shape[1]} and {y.shape[1]} tasks")
    if paired and x.shape[0] != y.shape[0]:
        raise ValueError(f"a paired comparison needs the same seeds, not {x.shape[0]} and {y.shape[0]}")
    by_task = _improvement(x, y)
    point = float(by_task.mean())
    tasks = x.shape[1]
    if x.shape[0] < 2 or y.shape[0] < 2:
        return Improvement(point, None, by_task.tolist(), [None] * tasks, paired)

    def overall_and_by_task(x_rows: np.ndarray, y_rows: np.ndarray) -> np.ndarray:
        per_task = _improvement(x[x_rows], y[y_rows])  # (..., tasks)
        return np.concatenate([per_task.mean(axis=-1)[None], np.moveaxis(per_task, -1, 0)])

    # scipy resamples seed indices (a seed's whole row stays together) and hands them over as (..., seeds)
    if paired:
        low, high = _bootstrap(
            (np.arange(x.shape[0]),), lambda rows, axis=-1: overall_and_by_task(rows, rows)
        )
    else:
        low, high = _bootstrap(
            (np.arange(x.shape[0]), np.arange(y.shape[0])),
            lambda x_rows, y_rows, axis=-1: overall_and_by_task(x_rows, y_rows),
        )
    intervals: list[Interval | None] = [(float(lo), float(hi)) for lo, hi in zip(low, high, strict=True)]
    return Improvement(point, intervals[0], by_task.tolist(), intervals[1:], paired)
