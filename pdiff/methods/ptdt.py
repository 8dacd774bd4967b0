"""`ptdt`: Prompt-Tuning DT (Hu, Shen, Zhang, Tao 2023, arXiv 2305.09648): black-box tuning of the prompt.

The Prompt-DT stays frozen and only the values of the task's K*-step prompt change (the Prompt-Tuning DT
reference).
Each round (one tune "step"):
  1. draw m Gaussian perturbations x_j = x + μ·ξ_j of the flattened prompt x;
  2. score them, all on the same data (common random numbers):
     offline (default): the frozen model's masked action MSE on `batches` batches of the task's
     few-shot segments, lower is better; online (`online`): the mean return of `rollouts` simulator
     episodes per candidate (pdiff.rollouts.rollout), higher is better;
  3. rank them (rank 0 = best) and estimate an ascent direction with ZO-RankSGD's all-pairs estimator
     d = Σ_j (m − 1 − 2·rank_j)·(x_j − x) / (m(m−1)/2) — every pair (better, worse) contributes
     (x_better − x_worse); the reference implementation writes the weight as m − 2·rank, which only adds a
     zero-mean term;
  4. momentum step v ← 0.5·v + d, x ← x + η·v, then η ← decay·η.
What is perturbed: every prompt tensor the model reads, i.e. states (normalised), actions, returns-to-go
(scaled) and timesteps (rounded and clipped to the embedding table when fed to the model): 5 × (39 + 4 + 1 +
1) = 225 values on Meta-World reach. The reference also perturbs rewards, dones and the mask, which our
Prompt-DT does not read (the reference counts 240 with them). `perturb: states-actions-rtg` leaves the
timesteps alone (an open choice of the paper; docs/method.md).
m = 15, μ = 1.0 and 2 batches (or rollouts) per score follow the surviving reference driver; no line search.
Its η = 1e-4 with a 0.95 decay per round cannot move the prompt (about 1e-4 per value in total), so η and
the decay come from the selection protocol (pdiff.methods.selection; `selection=off` uses `lr`, default
the driver's 1e-4). Batch size and the number of rounds are the tune stage's `batch_size` and `steps` (with
selection on, the rounds are chosen by early stopping, and η does not decay).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field

from pdiff.data.batches import Segments
from pdiff.methods.base import TaskContext, TaskResult
from pdiff.methods.options import MethodOptions
from pdiff.models.prompt_dt import action_loss
from pdiff.rollouts.rollout import rollout
from pdiff.rollouts.simulators import EnvPool

DEFAULT_LR = 1e-4
FIELDS = {
    "all": ("states", "actions", "returns_to_go", "timesteps"),
    "states-actions-rtg": ("states", "actions", "returns_to_go"),
}


class Options(MethodOptions):
    population: int = Field(15, ge=2, description="Perturbed prompts scored per round (m).")
    sigma: float = Field(1.0, gt=0, description="Perturbation scale (μ).")
    lr_decay: float = Field(0.95, gt=0, le=1, description="η is multiplied by this every round.")
    perturb: Literal["all", "states-actions-rtg"] = Field(
        "all", description="Prompt tensors perturbed (all = states, actions, RTG and timesteps)."
    )
    online: bool = Field(False, description="Rank by simulator return instead of action MSE.")
    batches: int = Field(2, ge=1, description="Offline: few-shot batches per score.")
    rollouts: int = Field(2, ge=1, description="Online: episodes per candidate per score.")
    horizon: int | None = Field(None, ge=1, description="Online: episode length (default: the family's).")


def flatten(prompt: Segments, fields: tuple[str, ...]) -> np.ndarray:
    """The perturbed values of a one-row prompt as one float64 vector."""
    return np.concatenate([getattr(prompt, f)[0].astype(np.float64).ravel() for f in fields])


def candidates_from(x: np.ndarray, base: Segments, fields: tuple[str, ...], max_ep_len: int) -> Segments:
    """Rows of flattened prompts `x` (m, n) back into prompts, the other tensors taken from `base`."""
    arrays = {f: np.repeat(getattr(base, f), len(x), axis=0) for f in Segments.__dataclass_fields__}
    offset = 0
    for name in fields:
        shape = getattr(base, name).shape[1:]
        size = int(np.prod(shape))
        values = x[:, offset : offset + size].reshape(len(x), *shape)
        if name == "timesteps":
            values = np.clip(np.rint(values), 0, max_ep_len - 1)
        arrays[name] = values.astype(getattr(base, name).dtype)
        offset += size
    return Segments(**arrays)


@torch.no_grad()
def offline_scores(context: TaskContext, candidates: Segments, batches: int) -> np.ndarray:
    """Minus the frozen model's action MSE of each candidate prompt, on the same few-shot batches: every
    (candidate, batch) pair in one forward pass (rows candidate-major), each batch's MSE averaged."""
    model, device, m = context.policy.model, context.device, len(candidates)
    model.eval()
    batch_size = context.settings.batch_size
    drawn = [
        context.fewshot.sample(context.rng, [context.task] * batch_size, 1).to_torch(device)
        for _ in range(batches)
    ]
    shared = {k: torch.cat([batch[k] for batch in drawn]) for k in drawn[0]}
    rows = {k: v.repeat(m, *([1] * (v.dim() - 1))) for k, v in shared.items()}  # candidate-major copies
    prompt = candidates.to_prompt(device)
    prompt.rows = torch.arange(m, device=device).repeat_interleave(batches * batch_size)
    pred = model(
        rows["states"], rows["actions"], rows["returns_to_go"], rows["timesteps"], rows["mask"], prompt
    )
    mse = np.zeros(m)
    for part in range(m * batches):
        rows_of = slice(part * batch_size, (part + 1) * batch_size)
        loss = action_loss(pred[rows_of], rows["actions"][rows_of], rows["mask"][rows_of])
        mse[part // batches] += float(loss) / batches
    return -mse


def online_scores(context: TaskContext, candidates: Segments, episodes: int, pool: EnvPool) -> np.ndarray:
    """Mean return of each candidate prompt over the same `episodes` simulator resets (simulators from
    `pool`)."""
    m, family = len(candidates), context.settings.family
    assert family is not None, "online PTDT rolls its candidates out in the family"
    horizon = family.resolve_horizon(context.options(Options).horizon)
    resets = [int(s) for s in context.rng.integers(0, 2**31 - 1, size=episodes)]
    results = rollout(
        family,
        context.policy,
        candidates.to_prompt(),
        [context.task] * m,
        [resets] * m,
        horizon=horizon,
        pool=pool,
    )
    returns = np.zeros(m)
    for index, result in enumerate(results):
        returns[index // episodes] += result.episode_return / episodes
    return returns


def tune_task(context: TaskContext) -> TaskResult:
    options = context.options(Options)
    fields = FIELDS[options.perturb]
    m, mu, lr = options.population, options.sigma, context.settings.lr
    max_ep_len = context.policy.max_ep_len
    prompt = context.fewshot_prompts.for_task(context.task, context.rng)

    pool = EnvPool()  # online: simulators made once and reused every round

    def score(x: np.ndarray) -> np.ndarray:  # higher is better
        candidates = candidates_from(x, prompt, fields, max_ep_len)
        if options.online:
            return online_scores(context, candidates, options.rollouts, pool)
        return offline_scores(context, candidates, options.batches)

    def current() -> TaskResult:  # the prompt as it stands, for a selection trial's early stopping
        return TaskResult(
            prompt=candidates_from(x[None], prompt, fields, max_ep_len), tunable_parameters=len(x)
        )

    start = x = flatten(prompt, fields)
    velocity = np.zeros_like(x)
    try:
        for done in range(1, context.settings.steps + 1):
            trials = x + mu * context.rng.standard_normal((m, len(x)))
            rank = np.argsort(np.argsort(-score(trials), kind="stable"), kind="stable")  # 0 = best
            direction = ((m - 1 - 2 * rank)[:, None] * (trials - x)).sum(0) / (m * (m - 1) / 2)
            velocity = 0.5 * velocity + direction
            x = x + lr * velocity
            lr *= options.lr_decay
            if context.stop_after(done, current):
                break
        first, last = score(np.stack([start, x]))  # on the same data, so the two are comparable
    finally:
        pool.close()
    # How far the prompt moved (RMS over its values, in the units the model reads: normalised states, actions,
    # scaled RTG, timesteps) and the few-shot score before and after, on the same data.
    before, after = (float(first), float(last)) if options.online else (-float(first), -float(last))
    name = "fewshot_return" if options.online else "fewshot_loss"
    metrics = {
        "prompt_moved_rms": float(np.sqrt(np.mean((x - start) ** 2))),
        f"{name}_before": before,
        f"{name}_after": after,
    }
    return TaskResult(
        prompt=candidates_from(x[None], prompt, fields, max_ep_len),
        tunable_parameters=len(x),
        metrics=metrics,
    )
