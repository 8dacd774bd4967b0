"""A cell's number: mean ± std over seeds, its seed-level interval and the (seeds × tasks) scores."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from pdiff.stats import mean_interval, sample_std


@dataclass(frozen=True)
class Score:
    """Mean ± sample std over seeds, the 95% bootstrap interval over seeds, and the (seeds × tasks) scores
    behind them (eval runs made before intervals existed have neither)."""

    mean: float
    std: float
    low: float | None = None
    high: float | None = None
    by_seed_task: list[list[float]] | None = None

    @classmethod
    def of(cls, by_seed_task: np.ndarray | list[list[float]]) -> Score:
        """The score of a (seeds × tasks) matrix: mean and std of the per-seed means, with its interval."""
        matrix = np.asarray(by_seed_task, dtype=np.float64)
        per_seed = matrix.mean(axis=1)
        return cls(float(per_seed.mean()), sample_std(per_seed), by_seed_task=matrix.tolist()).with_interval()

    def text(self, scale: float = 1.0, digits: int = 1, unit: str = "") -> str:
        text = f"{scale * self.mean:.{digits}f}{unit} ± {scale * self.std:.{digits}f}{unit}"
        if self.low is not None and self.high is not None:
            text += f" [{scale * self.low:.{digits}f}, {scale * self.high:.{digits}f}]"
        return text

    def with_interval(self) -> Score:
        """This score with the interval `pdiff.stats` gives its (seeds × tasks) scores today (unchanged
        without them): a summary of stored reports states every interval by one estimator."""
        interval = mean_interval(np.array(self.by_seed_task)) if self.by_seed_task else None
        return replace(self, low=interval[0], high=interval[1]) if interval else self
