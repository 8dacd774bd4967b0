"""One hyper-parameter selection protocol, applied identically to every tuning method.

For each candidate of the method's grid and each (seed, test task): hold out the last of the seed's N
few-shot episodes, tune on the other N − 1 with the candidate, and score the result by the Prompt-DT's
(frozen, or tuned by the method) action MSE on every K-step window of the held-out episode, given the
prompt the method produced. The candidate with the lowest mean held-out loss over all (seed, task) pairs
wins; `tune` then adapts every (seed, task) on all N episodes with it. Only the few-shot data is read:
no simulator is built and no return of a test task is seen (PTDT's online ranking is switched off here).

The grids are small and documented (docs/protocol.md): every Adam-tuned method, Prompt Diffuser included,
draws its learning rate from the same three values; PTDT's η is a step in prompt space, not an Adam rate,
so it has its own range, crossed with its decay schedule.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pdiff.data.batches import gather_segments
from pdiff.data.loader import FamilyData
from pdiff.errors import RunFailed
from pdiff.eval.rollout import FrozenPolicy
from pdiff.methods import prompt_dt
from pdiff.methods.base import TaskContext, TaskResult
from pdiff.models.prompt_dt import action_loss

LR_GRID = (1e-4, 1e-3, 1e-2)
GRIDS: dict[str, dict[str, tuple[float, ...]]] = {
    "prompt-dt": {},
    "ptdt": {"lr": (1e-3, 1e-2, 1e-1), "ptdt_lr_decay": (0.95, 1.0)},
}


def grid_for(method: str) -> dict[str, tuple[float, ...]]:
    """The settings a method's selection tries (empty: nothing to choose)."""
    return GRIDS.get(method, {"lr": LR_GRID})


def candidates(grid: dict[str, tuple[float, ...]]) -> list[dict[str, float]]:
    keys = sorted(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]


def split_heldout(data: FamilyData) -> tuple[FamilyData, FamilyData]:
    """(every episode but the last of each task, the last episode of each task)."""
    tasks = data.tasks()
    last = [int(data.task_episodes(t)[-1]) for t in tasks]
    rest = np.concatenate([data.task_episodes(t)[:-1] for t in tasks])
    return data.select_episodes(rest), data.select_episodes(np.array(last))


@torch.no_grad()
def heldout_loss(policy: FrozenPolicy, result: TaskResult, heldout: FamilyData, task: int,
                 device: torch.device) -> float:  # fmt: skip
    """Masked action MSE, in eval mode, of the K-step windows starting at every step of the task's held-out
    episodes, with the method's prompt (and tuned model, if it changed weights)."""
    model = result.model if result.model is not None else policy.model
    model.eval()
    episodes = heldout.task_episodes(task)
    starts = np.concatenate([np.arange(int(heldout.episode_lengths[e])) for e in episodes])
    rows = np.repeat(episodes, heldout.episode_lengths[episodes])
    windows = gather_segments(heldout, rows, starts, policy.context_len, **policy.normalisation()).to_torch(
        device
    )
    prompt = result.prompt.to_prompt(device)
    pred = model(windows["states"], windows["actions"], windows["returns_to_go"], windows["timesteps"],
                 windows["mask"], prompt)  # fmt: skip
    return float(action_loss(pred, windows["actions"], windows["mask"]))


@dataclass
class Selection:
    """What the protocol tried and chose; recorded in the tune run's summary."""

    chosen: dict[str, float]
    scores: list[dict[str, Any]]  # one per candidate: its settings and mean held-out loss
    untuned_loss: float  # the same held-out loss with the untuned Prompt-DT and its few-shot prompt
    protocol: str = "holdout-last-episode"

    def to_dict(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "chosen": self.chosen, "scores": self.scores,
                "heldout_loss_untuned": self.untuned_loss}  # fmt: skip


def select(
    method: Any,
    method_name: str,
    jobs: list[tuple[int, int]],
    data_of: Callable[[int], FamilyData],
    context_for: Callable[[int, int, FamilyData, dict[str, Any]], TaskContext],
    policy_of: Callable[[int], FrozenPolicy],
    device: torch.device,
    on_trial: Callable[[bool], None] = lambda reused: None,
    known: Callable[[dict[str, float], int, int], float | None] = lambda candidate, seed, task: None,
    record: Callable[[dict[str, float], int, int, float], None] = lambda candidate, seed, task, loss: None,
) -> Selection:
    """Run the protocol for `method` over every (seed, task) job; `data_of(seed)` is the seed's few-shot
    data, `policy_of(seed)` its frozen Prompt-DT, `context_for(seed, task, data, overrides)` builds a
    TaskContext for tuning on `data` with the seed's settings and these overrides (a candidate).
    `known(candidate, seed, task)` gives a trial's held-out loss finished before (a resumed run), `record`
    keeps each new one; `on_trial(reused)` follows every trial."""
    grid = grid_for(method_name)
    splits = {seed: split_heldout(data_of(seed)) for seed in {s for s, _ in jobs}}
    untuned = [heldout_loss(policy_of(seed), prompt_dt.tune_task(context_for(seed, task, splits[seed][0], {})),
                            splits[seed][1], task, device) for seed, task in jobs]  # fmt: skip
    scores = []
    for candidate in candidates(grid):
        trial = {**candidate, "ptdt_online": False}
        losses = []
        for seed, task in jobs:
            loss = known(candidate, seed, task)
            reused = loss is not None
            if not reused:
                train, heldout = splits[seed]
                try:
                    result = method.tune_task(context_for(seed, task, train, trial))
                    loss = heldout_loss(policy_of(seed), result, heldout, task, device)
                except RunFailed:  # diverged (a non-finite loss): the candidate loses
                    loss = math.inf
                loss = loss if math.isfinite(loss) else math.inf
                record(candidate, seed, task, loss)
            losses.append(loss)
            on_trial(reused)
        scores.append({**candidate, "heldout_loss": float(np.mean(losses))})
    best = min(scores, key=lambda row: row["heldout_loss"]) if scores else {}
    return Selection(chosen={k: best[k] for k in grid}, scores=scores, untuned_loss=float(np.mean(untuned)))
