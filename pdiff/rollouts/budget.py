"""Reading a training budget off a learning curve (the `study` preset's budgets come from here).

The budget is the first step at which the curve has come `fraction` (95 %) of the way from where it started
to its plateau. The plateau is the mean of the curve's last `tail` points; the crossing is read on the
curve smoothed by a centred moving average of `window` points (an EMA would lag by a point or two and
overstate the budget), so one lucky point needs its neighbours to set the budget. Returns can be negative
(cheetah-vel), so "95 % of the plateau" is measured as a share of the rise, not of the plateau's value.

A curve still rising at its end has no plateau yet: `still_rising` says so (its last `tail` points gain on the
`tail` before them more than the 1 − `fraction` the budget leaves and more than the spread of those points),
and the budget read off it is a lower bound (train longer and measure again).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pdiff.methods.selection import loss_at
from pdiff.plots import read_metrics, save_png
from pdiff.workspace.runs import Run, RunStatus


@dataclass(frozen=True)
class Budget:
    key: str
    steps: list[int]
    values: list[float]
    smoothed: list[float]
    start: float  # the first point
    plateau: float  # mean of the last `tail` points (with `best`: the best point)
    threshold: float  # start + fraction · (plateau − start)
    reached_at: int  # first step whose smoothed value is at or above the threshold
    fraction: float
    # the last `tail` points gain more than the 1 − fraction the budget leaves and the noise
    still_rising: bool

    def shares(self) -> dict[int, float]:
        """How much of the rise to the plateau each measured point has made (1.0: all of it; NaN for a curve
        that never rose)."""
        rise = self.plateau - self.start
        return {
            s: (v - self.start) / rise if rise > 0 else float("nan")
            for s, v in zip(self.steps, self.values, strict=True)
        }

    def to_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "start": self.start,
            "plateau": self.plateau,
            "threshold": self.threshold,
            "reached_at": self.reached_at,
            "last_step": self.steps[-1],
            "fraction": self.fraction,
            "still_rising": self.still_rising,
            "shares": self.shares(),
        }


def read_curve(
    metrics: Path, key: str = "train_task_return", x: str = "step"
) -> tuple[list[int], list[float]]:
    """The (step, value) points of one logged curve, in step order (a resumed run may log a step twice:
    the last record wins)."""
    points = {int(r[x]): float(r[key]) for r in read_metrics(metrics) if r.get(key) is not None and x in r}
    steps = sorted(points)
    return steps, [points[s] for s in steps]


def recorded_selection(run: Run) -> dict:
    """A finished tune run's selection record (pdiff.methods.selection), or a ValueError saying why none."""
    if run.status is not RunStatus.FINISHED:
        raise ValueError(
            f"tune run {run.run_id} is {run.status.value}: only finished runs have a held-out loss"
        )
    selection = (run.manifest.get("summary") or {}).get("selection")
    if not selection or not selection.get("scores"):
        raise ValueError(f"tune run {run.run_id} ran without the selection protocol: it has no held-out loss")
    return selection


def selection_curve(runs: Sequence[Run]) -> tuple[list[int], list[float]]:
    """Tune's curve: one point per tune run of one method at a different `steps`, the selection protocol's
    best held-out loss (negated: higher is better, as for returns), plus at step 0 the untuned Prompt-DT's
    with its few-shot prompt (the same for every method). Only few-shot data enters it
    (pdiff.methods.selection), never a test task's return. Runs on different data (their untuned losses
    differ) or at the same `steps` do not make one curve and are refused."""
    points: dict[int, float] = {}
    for run in runs:
        selection = recorded_selection(run)
        untuned, steps = -float(selection["heldout_loss_untuned"]), int(run.config["steps"])
        if points.setdefault(0, untuned) != untuned:
            raise ValueError(
                f"tune run {run.run_id} read other few-shot data or another Prompt-DT than the rest"
            )
        if steps in points:
            raise ValueError(f"two tune runs at steps={steps}: one point each")
        points[steps] = -min(float(row["heldout_loss"]) for row in selection["scores"])
    steps = sorted(points)
    return steps, [points[s] for s in steps]


def early_stopping_curve(run: Run) -> tuple[list[int], list[float]]:
    """Tune's curve from one run with early stopping: at each scored step the best candidate's held-out loss
    there (negated; each candidate's curve is its mean over the run's (seed, task) pairs, as the selection
    recorded it, a candidate stopped early keeping its last score), and the untuned loss at step 0. The same
    points `selection_curve` gets from one run per budget, read off the curves the selection already drew."""
    selection = recorded_selection(run)
    curves = [{int(s): float(v) for s, v in row["curve"]} for row in selection["scores"] if row.get("curve")]
    if not curves:
        raise ValueError(
            f"tune run {run.run_id} recorded no held-out curve (no early stopping): tune at several "
            "`--set steps=N --set eval_every=N` instead"
        )
    steps = sorted(set().union(*curves))
    best = [-min(loss_at(curve, step) for curve in curves) for step in steps]
    return [0, *steps], [-float(selection["heldout_loss_untuned"]), *best]


def centred_average(values: Sequence[float], window: int) -> list[float]:
    """Mean of each point and its (window − 1) / 2 neighbours on each side (fewer at the ends)."""
    half = window // 2
    return [float(np.mean(values[max(0, i - half) : i + half + 1])) for i in range(len(values))]


def plateau_budget(
    steps: Sequence[int],
    values: Sequence[float],
    *,
    key: str = "",
    fraction: float = 0.95,
    tail: int = 3,
    window: int = 3,
    best: bool = False,
) -> Budget:
    """The budget a curve justifies (see the module docstring); needs at least 2 · `tail` points. With
    `best`, the plateau is the curve's best point instead: tune's curve turns down where tuning overfits the
    few shots. Tune's few points (one run each) read with `tail=1`, `window=1` (no smoothing) and `best`."""
    if tail < 1 or window < 1 or window % 2 == 0:
        raise ValueError("tail must be 1 or more and window an odd number")
    if best and window != 1:  # a smoothed curve peaks below its best point and might never reach it
        raise ValueError("best reads the raw points: use window=1")
    if len(values) < 2 * tail:
        raise ValueError(
            f"a curve of {len(values)} points cannot show a plateau of {tail}: log it more often"
        )
    if not 0 < fraction <= 1:
        raise ValueError("fraction must lie in (0, 1]")
    start = float(values[0])
    plateau = float(np.max(values)) if best else float(np.mean(values[-tail:]))
    rise = plateau - start
    threshold = start + fraction * rise
    smooth = centred_average(values, window)
    if rise <= 0:  # it never improved on its first point: nothing to wait for
        reached = int(steps[0])
    else:
        reached = next(int(s) for s, v in zip(steps, smooth, strict=True) if v >= threshold or s == steps[-1])
    end = float(np.mean(values[-tail:]))  # with `best`, still rising only if the end is the best so far
    before = float(np.mean(values[-2 * tail : -tail]))
    noise = float(np.std(values[-2 * tail :], ddof=1)) if tail > 1 else 0.0  # a flat but noisy end is no rise
    still_rising = rise > 0 and end >= plateau and end - before > max((1 - fraction) * rise, noise)
    return Budget(
        key,
        [int(s) for s in steps],
        [float(v) for v in values],
        smooth,
        start,
        plateau,
        threshold,
        reached,
        fraction,
        still_rising,
    )


def plot_budgets(budgets: Sequence[tuple[str, Budget]], out: Path, title: str = "") -> Path:
    """One panel per (title, budget): the logged and smoothed curve, the plateau, the threshold and the step
    it is reached at."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(3, len(budgets))
    rows = -(-len(budgets) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.8 * columns, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(budgets) :]:
        ax.set_visible(False)
    for ax, (name, b) in zip(axes.flat, budgets, strict=False):
        ax.plot(b.steps, b.values, lw=0.8, alpha=0.4, color="C0", marker="o", ms=2.5, label="measured")
        ax.plot(b.steps, b.smoothed, lw=1.6, color="C0", label="smoothed (centred mean)")
        ax.axhline(b.plateau, color="C2", lw=1, ls="--", label=f"plateau {b.plateau:.4g}")
        ax.axhline(
            b.threshold, color="C1", lw=1, ls=":", label=f"{b.fraction:.0%} of the rise {b.threshold:.4g}"
        )
        ax.axvline(b.reached_at, color="C3", lw=1, label=f"budget: step {b.reached_at}")
        ax.set_xlabel("training step")
        ax.set_ylabel(b.key)
        ax.set_title(name + (" (still rising)" if b.still_rising else ""), fontsize=10)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return save_png(fig, out)
