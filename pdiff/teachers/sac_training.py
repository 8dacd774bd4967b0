"""Training loop of the task-conditioned SAC teacher: vector envs, evaluation, snapshots, checkpoints, resume.

Layout of `out_dir`:
    metrics.jsonl                    append-only log (train records every `log_every`, eval records); a
                                     resume first drops the records an interrupted run wrote after its
                                     last checkpoint, so the file reads as one uninterrupted run
    checkpoints/<update:08d>/        actor.safetensors, policy.json, config.json, train_state.pt, replay.npz
    checkpoints/latest.json          {"update": N, "dir": "<update:08d>"}, written last (the commit point)
    snapshots/<update:08d>/          actor.safetensors, policy.json, eval.json (mean return over all tasks)

Resume is exact on CPU: a checkpoint holds the networks, optimisers, replay buffer, RNG states and, for
every env, the seed of its current episode and the actions taken so far; on resume each env is reset with
that seed and the actions are replayed, which puts MuJoCo back in the same state without touching env
internals (checked against the saved observation). Bit-exactness also assumes the same torch thread count.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium
import numpy as np
import torch

from pdiff.envs import TaskFamily
from pdiff.errors import RunFailed, UsageError
from pdiff.teachers.evaluation import TaskEvaluator
from pdiff.teachers.policy import save_policy
from pdiff.teachers.sac import SAC, SACConfig
from pdiff.teachers.slots import RandomTaskEnv
from pdiff.teachers.storage import (
    ReplayBuffer,
    SnapshotInfo,
    latest_checkpoint,
    list_snapshots,
    load_checkpoint,
    prune_checkpoints,
    read_metrics,
    write_checkpoint,
)
from pdiff.tracking import TENSORBOARD_DIR, Tracker
from pdiff.workspace.atomic import atomic_replace_dir, atomic_write_json, atomic_write_text, remove_tree

# Config fields that change the trained weights; the others (cadences, threads, length) may differ on resume.
RESULT_FIELDS = (
    "num_envs",
    "batch_size",
    "hidden_sizes",
    "lr",
    "gamma",
    "tau",
    "autotune_entropy",
    "alpha",
    "target_entropy_scale",
    "buffer_size",
    "learning_starts",
    "updates_per_env_step",
)


@dataclass
class TeacherSummary:
    """What `train_teacher` leaves behind: the final (expert) checkpoint and the evaluated snapshots."""

    out_dir: Path
    checkpoint_dir: Path
    updates: int
    env_steps: int
    expert_return: float
    task_returns: dict[int, float]
    snapshots: list[SnapshotInfo] = field(default_factory=list)
    resumed_from: int | None = None


class _Progress:
    """Running means of losses and finished training-episode returns between two log records."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0
        self.episode_returns: list[float] = []

    def add(self, losses: dict[str, float]) -> None:
        for key, value in losses.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.count += 1

    def record(self) -> dict[str, float | None]:
        record = {key: value / max(self.count, 1) for key, value in self.sums.items()}
        record["train_episode_return"] = (
            float(np.mean(self.episode_returns)) if self.episode_returns else None
        )
        self.clear()
        return record


def train_teacher(
    family: TaskFamily,
    config: SACConfig,
    out_dir: str | Path,
    *,
    seed: int,
    resume: bool = False,
    on_progress: Callable[[dict], None] | None = None,
) -> TeacherSummary:
    """Train (or continue) the family's SAC teacher in `out_dir` until `config.total_updates` updates.

    Every episode of every env draws a random task of the whole family (test tasks included: the teacher
    only produces data). Same family, config and seed give the same weights on CPU, interrupted or not.

    resume: continue from `checkpoints/latest.json` (start afresh if there is none). Only the fields not
    in RESULT_FIELDS may differ from the original run, so `total_updates` can be raised to train longer;
    a finished run just returns its summary. Without resume, a directory holding a run is refused.
    on_progress: called with every metrics record (plus "total_updates"), e.g. for a progress bar.
    """
    out_dir = Path(out_dir)
    checkpoint = latest_checkpoint(out_dir)
    if checkpoint is not None and not resume:
        raise UsageError(f"{out_dir} already holds a teacher run", hint="resume it, or use another directory")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _Trainer(family, config, out_dir, seed, on_progress).run(checkpoint)
    finally:
        torch.set_num_threads(previous_threads)


class _Trainer:
    def __init__(
        self,
        family: TaskFamily,
        config: SACConfig,
        out_dir: Path,
        seed: int,
        on_progress: Callable[[dict], None] | None,
    ) -> None:
        self.family, self.config, self.out_dir, self.seed = family, config, out_dir, seed
        self.on_progress = on_progress
        self.input_dim = family.obs_dim + family.task_condition(0).shape[0]
        torch.manual_seed(seed)
        self.agent = SAC(self.input_dim, family.act_dim, config)
        self.rng = np.random.default_rng(seed)
        self.buffer = ReplayBuffer(config.buffer_size, self.input_dim, family.act_dim)
        self.updates = self.env_steps = 0
        self.progress = _Progress()
        n = config.num_envs
        self.episode_seeds = np.zeros(n, dtype=np.int64)
        self.episode_actions: list[list[np.ndarray]] = [[] for _ in range(n)]
        self.episode_returns = np.zeros(n, dtype=np.float64)
        self.envs = gymnasium.vector.SyncVectorEnv(
            [lambda slot=slot: RandomTaskEnv(family, slot) for slot in range(n)],
            autoreset_mode=gymnasium.vector.AutoresetMode.DISABLED,
        )
        self.evaluator = TaskEvaluator(family, episodes=config.eval_episodes, seed=seed)
        self.last_eval: dict | None = None
        self.started = time.perf_counter()
        self.tracker: Tracker | None = None  # TensorBoard, opened by the first metrics record

    # --- the loop -------------------------------------------------------------------------------------

    def run(self, checkpoint: Path | None) -> TeacherSummary:
        resumed_from = self._restore(checkpoint) if checkpoint is not None else self._start()
        try:
            total = self.config.total_updates
            # Updates owed by the data collected so far come first, so a checkpoint taken between two of
            # them resumes at exactly the same point of this loop.
            while self.updates < total:
                while self.updates < min(self._updates_owed(), total):
                    self._update()
                    self._after_update()
                if self.updates < total:
                    self._step_envs()
        finally:
            self.envs.close()
            self.evaluator.close()
            if self.tracker is not None:
                self.tracker.close()
        return self._summary(resumed_from)

    def _start(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        remove_tree(self.out_dir / "snapshots")
        (self.out_dir / "metrics.jsonl").unlink(missing_ok=True)
        self.episode_seeds[:] = self.rng.integers(2**31, size=self.config.num_envs)
        self.obs, _ = self.envs.reset(seed=[int(s) for s in self.episode_seeds])
        return None

    def _updates_owed(self) -> int:
        if self.env_steps < self.config.learning_starts or self.buffer.size < self.config.batch_size:
            return 0
        return math.floor((self.env_steps - self.config.learning_starts) * self.config.updates_per_env_step)

    def _update(self) -> None:
        losses = self.agent.update(*self.buffer.sample(self.rng, self.config.batch_size))
        if not math.isfinite(losses["critic_loss"]) or not math.isfinite(losses["actor_loss"]):
            raise RunFailed(
                f"SAC loss became {losses['critic_loss']} at update {self.updates + 1}",
                hint="lower --set teacher.lr or try another seed",
            )
        self.updates += 1
        self.progress.add({**losses, "alpha": self.agent.alpha})

    def _step_envs(self) -> None:
        obs = self.obs
        if self.env_steps < self.config.learning_starts:
            actions = self.rng.uniform(-1.0, 1.0, size=(self.config.num_envs, self.family.act_dim))
            actions = actions.astype(np.float32)
        else:
            with torch.no_grad():
                actions = self.agent.actor.sample(torch.from_numpy(obs))[0].numpy()
        next_obs, rewards, terminated, truncated, _ = self.envs.step(actions)
        # Autoreset is off, so next_obs is each episode's true last observation; truncation still bootstraps.
        self.buffer.add(obs, actions, rewards, next_obs, terminated)
        self.env_steps += self.config.num_envs
        self.episode_returns += rewards
        for slot in range(self.config.num_envs):
            self.episode_actions[slot].append(actions[slot])
        done = terminated | truncated
        self.obs = next_obs
        if not done.any():
            return
        self.progress.episode_returns.extend(self.episode_returns[done].tolist())
        self.episode_returns[done] = 0.0
        seeds = self.rng.integers(2**31, size=self.config.num_envs)
        self.episode_seeds[done] = seeds[done]
        for slot in np.flatnonzero(done):
            self.episode_actions[slot] = []
        reset_obs, _ = self.envs.reset(seed=[int(s) for s in seeds], options={"reset_mask": done})
        self.obs[done] = reset_obs[done]

    def _after_update(self) -> None:
        u, config = self.updates, self.config
        final = u == config.total_updates
        if u % config.log_every == 0 or final:
            self._log({"kind": "train", **self.progress.record()})
        if u % config.eval_every == 0 or u % config.snapshot_every == 0 or final:
            self._evaluate()
        if u % config.snapshot_every == 0 or final:
            self._snapshot()
        if u % config.checkpoint_every == 0 or final:
            self._checkpoint()

    # --- outputs --------------------------------------------------------------------------------------

    def _log(self, record: dict) -> None:
        record = {"update": self.updates, "env_steps": self.env_steps, **record}
        record["wall_s"] = round(time.perf_counter() - self.started, 3)
        with open(self.out_dir / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.tracker is None:
            settings = {"seed": self.seed, **self.config.model_dump(mode="json")}
            self.tracker = Tracker(self.out_dir / TENSORBOARD_DIR, settings)
        self.tracker.log(record, step_key="update")
        if self.on_progress is not None:
            self.on_progress({**record, "total_updates": self.config.total_updates})

    def _evaluate(self) -> None:
        returns = self.evaluator.evaluate(self._act_deterministic)
        self.last_eval = {
            "update": self.updates,
            "mean_return": float(np.mean(list(returns.values()))),
            "task_returns": {str(task): value for task, value in returns.items()},
        }
        self._log({"kind": "eval", **self.last_eval})

    def _act_deterministic(self, obs: np.ndarray, condition: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.agent.actor.deterministic(
                torch.from_numpy(np.concatenate((obs, condition), 1))
            ).numpy()

    def _policy_meta(self) -> dict:
        return {"family": self.family.name, "seed": self.seed, "update": self.updates}

    def _snapshot(self) -> None:
        final = self.out_dir / "snapshots" / f"{self.updates:08d}"
        remove_tree(final)  # left by an interrupted run past the checkpoint we resumed from
        tmp = final.with_name(f".tmp-{final.name}")
        remove_tree(tmp)
        save_policy(tmp, self.agent.actor, self.family, self.config, self._policy_meta())
        atomic_write_json(tmp / "eval.json", self.last_eval)
        atomic_replace_dir(tmp, final)

    def _checkpoint(self) -> None:
        slots = {
            "obs": self.obs,
            "episode_seeds": self.episode_seeds,
            "episode_returns": self.episode_returns,
            "episode_lengths": np.array([len(a) for a in self.episode_actions], dtype=np.int64),
            "episode_actions": _pad_actions(self.episode_actions, self.family.act_dim),
        }
        counters = {"updates": self.updates, "env_steps": self.env_steps, "seed": self.seed}
        progress = {
            "sums": self.progress.sums,
            "count": self.progress.count,
            "episode_returns": self.progress.episode_returns,
        }
        write_checkpoint(
            self.out_dir,
            self.updates,
            agent=self.agent,
            family=self.family,
            config=self.config,
            policy_meta=self._policy_meta(),
            buffer=self.buffer,
            rng=self.rng,
            slots=slots,
            counters=counters,
            progress=progress,
            last_eval=self.last_eval,
        )
        prune_checkpoints(self.out_dir, keep=self.config.keep_checkpoints)

    # --- resume ---------------------------------------------------------------------------------------

    def _restore(self, checkpoint: Path) -> int:
        state = load_checkpoint(checkpoint, agent=self.agent, buffer=self.buffer, rng=self.rng)
        saved = SACConfig.model_validate(state["config"])
        changed = [name for name in RESULT_FIELDS if getattr(saved, name) != getattr(self.config, name)]
        if changed or state["counters"]["seed"] != self.seed or state["family"] != self.family.name:
            raise UsageError(
                f"cannot resume {checkpoint}: family, seed or {', '.join(changed) or 'settings'} differ",
                hint="resume with the settings the run started with, or start a new run",
            )
        self.updates, self.env_steps = state["counters"]["updates"], state["counters"]["env_steps"]
        self.progress.sums, self.progress.count = state["progress"]["sums"], state["progress"]["count"]
        self.progress.episode_returns = list(state["progress"]["episode_returns"])
        self.last_eval = state["last_eval"]
        slots = state["slots"]
        self.episode_seeds[:] = slots["episode_seeds"]
        self.episode_returns[:] = slots["episode_returns"]
        lengths, padded = slots["episode_lengths"], slots["episode_actions"]
        self.episode_actions = [list(padded[slot, : lengths[slot]]) for slot in range(self.config.num_envs)]
        replay = {slot: self.episode_actions[slot] for slot in range(self.config.num_envs)}
        self.obs, _ = self.envs.reset(
            seed=[int(s) for s in self.episode_seeds], options={"replay_actions": replay}
        )
        if not np.array_equal(self.obs, slots["obs"]):
            raise RunFailed(
                f"replaying the episodes of {checkpoint} did not reproduce the saved environment state",
                hint="the simulator build differs from the one that wrote the checkpoint; start a new run",
            )
        _truncate_after(self.out_dir, self.updates)
        return self.updates

    def _summary(self, resumed_from: int | None) -> TeacherSummary:
        returns = (self.last_eval or {}).get("task_returns", {})
        return TeacherSummary(
            out_dir=self.out_dir,
            checkpoint_dir=latest_checkpoint(self.out_dir),
            updates=self.updates,
            env_steps=self.env_steps,
            expert_return=float((self.last_eval or {}).get("mean_return", float("nan"))),
            task_returns={int(task): value for task, value in returns.items()},
            snapshots=list_snapshots(self.out_dir),
            resumed_from=resumed_from,
        )


def _pad_actions(episode_actions: list[list[np.ndarray]], act_dim: int) -> np.ndarray:
    longest = max((len(actions) for actions in episode_actions), default=0)
    padded = np.zeros((len(episode_actions), longest, act_dim), dtype=np.float32)
    for slot, actions in enumerate(episode_actions):
        if actions:
            padded[slot, : len(actions)] = np.stack(actions)
    return padded


def _truncate_after(out_dir: Path, update: int) -> None:
    """Drop what an interrupted run wrote after the checkpoint we resume from (metrics lines, snapshots)."""
    kept = [record for record in read_metrics(out_dir) if record["update"] <= update]
    atomic_write_text(out_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in kept))
    for path in Path(out_dir, "snapshots").glob("*"):
        if not path.name[:1].isdigit() or int(path.name) > update:
            remove_tree(path)
