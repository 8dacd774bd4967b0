"""One hyper-parameter selection protocol, applied identically to every tuning method.

For each candidate of the method's grid and each (seed, test task): hold out the last of the seed's N
few-shot episodes and tune on the other N − 1 with the candidate, for at most `steps` steps (PTDT: rounds).
Every `eval_every` steps the trial is scored by the Prompt-DT's (frozen, or tuned by the method) action MSE
on every K-step window of the held-out episode, given the prompt the method has produced so far; a trial
stops once `patience` scores in a row have not beaten its best (early stopping). A candidate's curve is the
mean of its trials' scores over (seed, task) at each scored step, a trial that stopped early counting with
its last score from then on. The lowest point of all curves picks the candidate and the number of steps
together; `tune` then adapts every (seed, task) on all N episodes with that candidate for that many steps.
Only the few-shot data is read: no simulator is built and no return of a test task is seen (PTDT's online
ranking is switched off here).

Every method that trains gets the same number of candidates (CANDIDATES_PER_METHOD), spread wide enough that
a good choice lies inside the grid; a choice at a grid's edge (or at the step cap) is flagged in the record.
The grids and why they are where they are: docs/protocol.md.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
import torch

from pdiff.data.batches import gather_segments
from pdiff.data.loader import FamilyData
from pdiff.errors import RunFailed
from pdiff.methods import real_prompt
from pdiff.methods.base import TaskContext, TaskResult, TuneSettings
from pdiff.methods.registry import METHODS, trains
from pdiff.models.prompt_dt import action_loss
from pdiff.rollouts.rollout import FrozenPolicy

CANDIDATES_PER_METHOD = 5
# Adam's step moves each parameter by about the learning rate: a decade apart from 1e-5 (below the 1e-4 that
# the Prompt-DT was pretrained with, for full-ft) to 1e-1 (prompt embeddings of order one, for soft-prompt).
LR_GRID = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
# PTDT's η scales a rank-weighted average of unit-scale perturbations (a fraction of a unit per prompt value):
# from 0.01 (the prompt barely moves in a few dozen rounds) to 1 (it moves by about its own scale in a few).
# The number of rounds, chosen with η, already bounds how far the prompt travels, so η does not decay.
PTDT_ETA_GRID = (0.01, 0.03, 0.1, 0.3, 1.0)
GRIDS: dict[str, dict[str, tuple[float, ...]]] = {
    "ptdt": {"lr": PTDT_ETA_GRID, "ptdt_lr_decay": (1.0,)},
}
# Fixed in every trial: the protocol reads no simulator, so PTDT ranks by the few-shot action loss.
TRIAL_SETTINGS: dict[str, dict[str, Any]] = {"ptdt": {"ptdt_online": False}}
# The protocol's names for a method's own options (what tune summaries and resumable trials record) →
# the option; every other name it sets is a shared TuneSettings field.
OPTION_NAMES = {"ptdt_lr_decay": "lr_decay", "ptdt_online": "online"}
Curve = dict[int, float]  # scored step -> held-out loss


def grid_for(method: str) -> dict[str, tuple[float, ...]]:
    """The settings a method's selection tries (empty: nothing to choose, as for one that trains nothing)."""
    if method in METHODS and not trains(method):
        return {}
    return GRIDS.get(method, {"lr": LR_GRID})


def with_overrides(settings: TuneSettings, overrides: dict[str, Any]) -> TuneSettings:
    """`settings` with the protocol's `overrides` (a candidate, a trial's fixed settings, the choice)."""
    shared = {key: value for key, value in overrides.items() if key not in OPTION_NAMES}
    unknown = set(shared) - {f.name for f in fields(TuneSettings)}
    assert not unknown, f"the selection sets {sorted(unknown)}, which are no tune settings"
    own = {OPTION_NAMES[key]: value for key, value in overrides.items() if key in OPTION_NAMES}
    options = settings.options.model_copy(update=own) if own else settings.options
    return replace(settings, **shared, options=options)


def candidates(grid: dict[str, tuple[float, ...]]) -> list[dict[str, float]]:
    keys = sorted(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]


def at_edge(chosen: dict[str, float], grid: dict[str, Sequence[float]]) -> list[str]:
    """The chosen settings that sit at the lowest or highest value of their grid: the grid, not the method,
    may have decided them. An axis of one value is fixed, not chosen, and never flagged."""
    return [
        key
        for key, value in chosen.items()
        if len(grid[key]) > 1 and value in (min(grid[key]), max(grid[key]))
    ]


@dataclass(frozen=True)
class EarlyStopping:
    """When a selection trial is scored on the held-out episode, and when it stops."""

    every: int  # score every this many steps
    patience: int  # stop after this many scores in a row without a new best
    cap: int  # steps at most

    def checkpoints(self) -> list[int]:
        """The steps at which a trial is scored: every `every` steps, and at the cap."""
        return sorted({*range(self.every, self.cap + 1, self.every), self.cap})

    def stops(self, losses: Sequence[float]) -> bool:
        """Whether a trial whose scores so far are `losses` stops now: its best is `patience` scores back."""
        return len(losses) - 1 - int(np.argmin(losses)) >= self.patience


def run_trial(
    tune_task: Callable[[TaskContext], TaskResult],
    context: TaskContext,
    score: Callable[[TaskResult], float],
    rule: EarlyStopping,
) -> Curve:
    """Tune one (seed, task) with one candidate, scoring it at the rule's checkpoints until it stops; a
    tuning that diverges (a non-finite training loss) scores inf everywhere, so its candidate loses."""
    checkpoints = set(rule.checkpoints())
    curve: Curve = {}

    def after_step(step: int, current: Callable[[], TaskResult]) -> bool:
        if step not in checkpoints:
            return False
        loss = score(current())
        curve[step] = loss if math.isfinite(loss) else math.inf
        return rule.stops(list(curve.values()))

    context.after_step = after_step
    try:
        tune_task(context)
    except RunFailed:
        return dict.fromkeys(rule.checkpoints(), math.inf)
    if not curve:
        raise AssertionError(
            f"step {min(checkpoints)} was never reported: the method's loop must call stop_after"
        )
    return curve


def loss_at(curve: Curve, step: int) -> float:
    """A trial's score at `step`: its last one at or before it (a trial that stopped early keeps its last)."""
    return curve[max(s for s in curve if s <= step)] if any(s <= step for s in curve) else math.inf


def by_seed(curves: list[Curve], jobs: list[tuple[int, int]], step: int) -> dict[str, float]:
    """Each seed's mean over its tasks of the trials' scores at `step` (keys: the seed as text, as JSON keeps
    them): the per-seed figure behind a candidate's point, for intervals that resample seeds."""
    seeds = sorted({seed for seed, _ in jobs})
    return {
        str(seed): float(
            np.mean([loss_at(c, step) for c, (s, _) in zip(curves, jobs, strict=True) if s == seed])
        )
        for seed in seeds
    }


def mean_curve(curves: list[Curve], checkpoints: Sequence[int]) -> Curve:
    """The mean over trials of the loss at each checkpoint up to the furthest any trial reached; a trial that
    stopped early counts with its last score from then on (it had stopped improving)."""
    reached = max(max(curve) for curve in curves)
    steps = [step for step in checkpoints if step <= reached]
    rows = [[loss_at(curve, step) for step in steps] for curve in curves]
    return dict(zip(steps, (float(v) for v in np.mean(rows, axis=0)), strict=True))


def lowest_point(curve: Curve) -> tuple[int, float]:
    """(step, loss) of the curve's lowest point; the earliest of equal ones."""
    return min(curve.items(), key=lambda point: (point[1], point[0]))


def split_heldout(data: FamilyData) -> tuple[FamilyData, FamilyData]:
    """(every episode but the last of each task, the last episode of each task)."""
    tasks = data.tasks()
    last = [int(data.task_episodes(t)[-1]) for t in tasks]
    rest = np.concatenate([data.task_episodes(t)[:-1] for t in tasks])
    return data.select_episodes(rest), data.select_episodes(np.array(last))


@torch.no_grad()
def heldout_loss(
    policy: FrozenPolicy, result: TaskResult, heldout: FamilyData, task: int, device: torch.device
) -> float:
    """Masked action MSE, in eval mode, of the K-step windows starting at every step of the task's held-out
    episodes, with the method's prompt (and tuned model, if it changed weights). The model is left in the
    mode it was in (a trial goes on training it)."""
    model = result.model if result.model is not None else policy.model
    training = model.training
    model.eval()
    episodes = heldout.task_episodes(task)
    starts = np.concatenate([np.arange(int(heldout.episode_lengths[e])) for e in episodes])
    rows = np.repeat(episodes, heldout.episode_lengths[episodes])
    windows = gather_segments(heldout, rows, starts, policy.context_len, **policy.normalisation()).to_torch(
        device
    )
    prompt = result.prompt.to_prompt(device)
    try:
        pred = model(
            windows["states"],
            windows["actions"],
            windows["returns_to_go"],
            windows["timesteps"],
            windows["mask"],
            prompt,
        )
        return float(action_loss(pred, windows["actions"], windows["mask"]))
    finally:
        model.train(training)


@dataclass
class Selection:
    """What the protocol tried and chose; recorded in the tune run's summary."""

    chosen: dict[str, float]
    steps: int  # tune steps (ptdt: rounds) chosen with it
    at_edge: list[str]  # chosen settings ("steps" included) at an edge of their grid
    scores: list[dict[str, Any]]  # per candidate: its settings, best step, held-out loss there, mean curve
    untuned_loss: float  # the same held-out loss with the untuned Prompt-DT and its few-shot prompt
    untuned_by_seed: dict[str, float]  # that loss per seed (mean over the seed's tasks)
    rule: EarlyStopping
    protocol: str = "holdout-last-episode"

    def to_dict(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "chosen": self.chosen,
            "steps": self.steps,
            "at_edge": self.at_edge,
            "early_stopping": asdict(self.rule),
            "scores": self.scores,
            "heldout_loss_untuned": self.untuned_loss,
            "heldout_loss_untuned_by_seed": self.untuned_by_seed,
        }


def select(
    method: Any,
    method_name: str,
    jobs: list[tuple[int, int]],
    data_of: Callable[[int], FamilyData],
    context_for: Callable[[int, int, FamilyData, dict[str, Any]], TaskContext],
    policy_of: Callable[[int], FrozenPolicy],
    device: torch.device,
    rule: EarlyStopping,
    on_trial: Callable[[bool], None] = lambda reused: None,
    known: Callable[[dict[str, float], int, int], Curve | None] = lambda candidate, seed, task: None,
    record: Callable[[dict[str, float], int, int, Curve], None] = lambda candidate, seed, task, curve: None,
) -> Selection:
    """Run the protocol for `method` over every (seed, task) job; `data_of(seed)` is the seed's few-shot
    data, `policy_of(seed)` its frozen Prompt-DT, `context_for(seed, task, data, overrides)` builds a
    TaskContext for tuning on `data` with the seed's settings and these overrides (a candidate).
    `known(candidate, seed, task)` gives a trial's curve finished before (a resumed run), `record` keeps each
    new one; `on_trial(reused)` follows every trial."""
    grid = grid_for(method_name)
    splits = {seed: split_heldout(data_of(seed)) for seed in {s for s, _ in jobs}}
    untuned = [
        heldout_loss(
            policy_of(seed),
            real_prompt.tune_task(context_for(seed, task, splits[seed][0], {})),
            splits[seed][1],
            task,
            device,
        )
        for seed, task in jobs
    ]
    checkpoints = rule.checkpoints()
    scores = []
    for candidate in candidates(grid):
        trial = {**candidate, **TRIAL_SETTINGS.get(method_name, {}), "steps": rule.cap}
        curves = []
        for seed, task in jobs:
            curve = known(candidate, seed, task)
            reused = curve is not None
            if curve is None:
                train, heldout = splits[seed]
                curve = run_trial(
                    method.tune_task,
                    context_for(seed, task, train, trial),
                    lambda result, s=seed, t=task, h=heldout: heldout_loss(
                        policy_of(s), result, h, t, device
                    ),
                    rule,
                )
                record(candidate, seed, task, curve)
            curves.append(curve)
            on_trial(reused)
        average = mean_curve(curves, checkpoints)
        steps, loss = lowest_point(average)
        scores.append(
            {
                **candidate,
                "steps": steps,
                "heldout_loss": loss,
                "heldout_loss_by_seed": by_seed(curves, jobs, steps),
                "curve": [[step, value] for step, value in average.items()],
            }
        )
    best = min(scores, key=lambda row: row["heldout_loss"])
    chosen = {key: best[key] for key in grid}
    edges = at_edge({**chosen, "steps": best["steps"]}, {**grid, "steps": checkpoints})
    return Selection(
        chosen=chosen,
        steps=best["steps"],
        at_edge=edges,
        scores=scores,
        untuned_loss=float(np.mean(untuned)),
        untuned_by_seed=by_seed([{0: loss} for loss in untuned], jobs, 0),
        rule=rule,
    )
