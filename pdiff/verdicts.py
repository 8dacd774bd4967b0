"""The written verdict rule (docs/protocol.md), applied by code: is a method ahead of, level with or behind
another?

A verdict needs both a reliable direction and a difference that matters: the 95% interval of P(improvement)
must lie wholly on one side of 0.5 (seed-level resampling, `pdiff.stats`) and the mean normalised scores
must differ by more than PRACTICAL_THRESHOLD points in the same direction. Everything else is level. The
same rule is applied to each test task on its own; where one task is ahead and another behind, the average
hides a split, so the comparison names the tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from pdiff.stats import Improvement, Interval, paired_by_seed, probability_of_improvement

Verdict = Literal["ahead", "level", "behind"]

# Normalised points (100 = expert, 0 = random): smaller gaps are within what a change of seeds or of
# evaluation episodes moves at our budgets, so they are not called a win or a loss whatever the interval.
PRACTICAL_THRESHOLD = 5.0

RULE = (
    "ahead when the 95% interval of P(improvement) lies above 0.5 and the mean normalised score is more than "
    f"{PRACTICAL_THRESHOLD:g} points higher; behind when the interval lies below 0.5 and the score is more "
    f"than {PRACTICAL_THRESHOLD:g} points lower; level otherwise. The same rule per test task: where one "
    "task is ahead and another behind, the split is shown"
)


def verdict(interval: Interval | None, difference: float | None) -> Verdict:
    """The rule on one comparison: `interval` of P(X > Y), `difference` of mean normalised scores (X − Y)."""
    if interval is None or difference is None:
        return "level"  # no interval (one seed) or no normalised score: the rule cannot be met
    low, high = interval
    if low > 0.5 and difference > PRACTICAL_THRESHOLD:
        return "ahead"
    if high < 0.5 and difference < -PRACTICAL_THRESHOLD:
        return "behind"
    return "level"


@dataclass(frozen=True)
class TaskVerdict:
    task: int  # the column of the (seeds × tasks) scores: the position among the family's test tasks
    probability: float
    interval: Interval | None
    difference: float | None
    verdict: Verdict


@dataclass(frozen=True)
class Comparison:
    """X against Y: P(improvement) with its intervals, the normalised difference, and the rule's verdicts."""

    improvement: Improvement
    difference: float | None  # mean normalised score of X − Y (None: no normalised scores)
    verdict: Verdict
    tasks: list[TaskVerdict]
    shared_seeds: int | None = None  # set where the two ran different seeds and only the shared ones count

    @property
    def split(self) -> bool:
        found = {task.verdict for task in self.tasks}
        return "ahead" in found and "behind" in found

    def evidence(self) -> str:
        """The numbers behind the verdict, e.g. "P(improvement) 0.50 [0.50, 0.50], normalised +0.4;
        split: task 0 ahead (1.00), task 1 behind (0.00)"."""
        p = self.improvement
        text = f"P(improvement) {p.probability:.2f}"
        text += f" [{p.interval[0]:.2f}, {p.interval[1]:.2f}]" if p.interval else "; one seed: no interval"
        if p.interval and not p.paired:
            text += " (other seeds: unpaired)"
        if self.shared_seeds is not None:
            text += f" (on the {self.shared_seeds} seeds both ran)"
        text += (
            f", normalised {self.difference:+.1f}"
            if self.difference is not None
            else ("; no normalised score: the threshold cannot be checked")
        )
        if self.split:
            decided = [
                f"task {t.task} {t.verdict} ({t.probability:.2f})" for t in self.tasks if t.verdict != "level"
            ]
            level = sum(t.verdict == "level" for t in self.tasks)
            text += "; split: " + ", ".join(decided) + (f", {level} level" if level else "")
        return text


def _mean_difference(x: np.ndarray | None, y: np.ndarray | None, axis: int | None) -> np.ndarray | None:
    if x is None or y is None:
        return None
    return np.asarray(x).mean(axis=axis) - np.asarray(y).mean(axis=axis)


def _rows(scores: np.ndarray, seeds: Sequence[int], kept: list[int]) -> np.ndarray:
    """The rows of `scores` (one per seed of `seeds`) for the seeds `kept`, in that order."""
    return np.asarray(scores)[[list(seeds).index(seed) for seed in kept]]


def compare(
    x: np.ndarray,
    x_seeds: Sequence[int],
    y: np.ndarray,
    y_seeds: Sequence[int],
    x_normalised: np.ndarray | None = None,
    y_normalised: np.ndarray | None = None,
) -> Comparison:
    """X against Y from their (seeds × tasks) scores over the same tasks, paired by seed id where both ran the
    same seeds; the normalised scores (same shapes) give the differences the threshold is checked on."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    shared = [seed for seed in x_seeds if seed in set(y_seeds)]
    subset = None
    if sorted(x_seeds) != sorted(y_seeds) and len(shared) >= 2 and len(set(shared)) == len(shared):
        # a cell run on more seeds (Table 1's default rule against an ablation's five): its extra seeds
        # saw few-shot draws the other never did, so only the shared seeds are compared, paired
        x, y = _rows(x, x_seeds, shared), _rows(y, y_seeds, shared)
        if x_normalised is not None and y_normalised is not None:
            x_normalised, y_normalised = (
                _rows(x_normalised, x_seeds, shared),
                _rows(y_normalised, y_seeds, shared),
            )
        x_seeds = y_seeds = shared
        subset = len(shared)
    aligned = paired_by_seed(x, x_seeds, y, y_seeds)
    improvement = probability_of_improvement(x, y if aligned is None else aligned, paired=aligned is not None)
    overall = _mean_difference(x_normalised, y_normalised, None)
    by_task = _mean_difference(x_normalised, y_normalised, 0)
    tasks = []
    for task, (probability, interval) in enumerate(
        zip(improvement.by_task, improvement.task_intervals, strict=True)
    ):
        difference = None if by_task is None else float(by_task[task])
        tasks.append(TaskVerdict(task, probability, interval, difference, verdict(interval, difference)))
    difference = None if overall is None else float(overall)
    return Comparison(improvement, difference, verdict(improvement.interval, difference), tasks, subset)
