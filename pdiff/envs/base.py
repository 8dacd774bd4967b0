"""The task-family contract every stage codes against.

A family is a frozen, picklable value (gymnasium's AsyncVectorEnv sends `partial(family.make_env, i)` to
worker processes), so it holds only plain data; simulators are imported lazily inside `make_env`.
Concrete families subclass it without adding fields and override the task-specific methods.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pdiff.errors import UsageError

if TYPE_CHECKING:
    import gymnasium

TaskParams = dict[str, float | list[float]]


def render_kwargs(
    render_mode: str | None, camera_name: str | None, render_size: tuple[int, int] | None
) -> dict[str, Any]:
    """The keyword arguments a MuJoCo env's constructor takes for rendering; unset ones keep its defaults."""
    kwargs: dict[str, Any] = {"render_mode": render_mode}
    if camera_name is not None:
        kwargs["camera_name"] = camera_name
    if render_size is not None:
        kwargs["width"], kwargs["height"] = render_size
    return kwargs


@dataclass(frozen=True)
class OodSplit:
    """How an out-of-distribution family re-splits the tasks of `base`: a task is a test task when its
    `parameter` lies in [low, high), a training task otherwise (pdiff.envs.ood)."""

    base: str  # the in-distribution family with the same tasks (its SAC teacher collects their data)
    parameter: str  # the task_params key the split is on
    low: float
    high: float
    text: str  # the test range as people write it, e.g. "[3π/2, 2π)"

    def is_test(self, value: float) -> bool:
        return self.low <= value < self.high


@dataclass(frozen=True)
class TaskFamily:
    name: str
    simulator: str
    num_tasks: int
    train_tasks: tuple[int, ...]
    test_tasks: tuple[int, ...]
    horizon: int
    obs_dim: int
    act_dim: int
    rtg_scale: float
    eval_target: float
    ood: OodSplit | None = None  # set on the out-of-distribution families only

    def training_tasks(self, include_test: bool = False) -> list[int]:
        """The tasks a Prompt-DT trains on: the training split, plus the test tasks where `include_test`."""
        return sorted(set(self.train_tasks) | (set(self.test_tasks) if include_test else set()))

    # --- task-specific; concrete families override these -----------------------------------------------

    def task_params(self, task_id: int) -> TaskParams:
        """What defines task `task_id`, e.g. {"goal_vel": 0.225} or {"goal": [x, y, z]}."""
        raise NotImplementedError(f"{type(self).__name__} does not define task_params")

    def task_condition(self, task_id: int) -> np.ndarray:
        """A small float32 vector describing the task (the input of a task-conditioned teacher)."""
        raise NotImplementedError(f"{type(self).__name__} does not define task_condition")

    def make_env(
        self,
        task_id: int,
        *,
        horizon: int | None = None,
        render_mode: str | None = None,
        terminate_when_unhealthy: bool = True,
        camera_name: str | None = None,
        render_size: tuple[int, int] | None = None,
    ) -> gymnasium.Env:
        """A gymnasium Env for one task: the family's observation layout (float32) and reward, truncated at
        `horizon` (default `self.horizon`). `terminate_when_unhealthy` only matters for families that can
        fall over (ant-dir); `camera_name` and `render_size` (width, height) only matter when rendering."""
        raise NotImplementedError(f"{type(self).__name__} does not define make_env")

    @property
    def terminates_early(self) -> bool:
        """Whether an episode can end before the horizon (ant-dir: when the robot is unhealthy)."""
        return False

    @property
    def scripted_expert(self) -> bool:
        """Whether a scripted policy makes the expert data (Meta-World); else `collect` uses a SAC teacher."""
        return False

    @property
    def resets_vary(self) -> bool:
        """Whether episodes of one task differ from reset to reset under a fixed policy (MuJoCo's reset
        noise); evaluation repeats an episode only where they do."""
        return True

    @property
    def description(self) -> str:
        """One line for `pdiff envs`."""
        return self.simulator

    @property
    def max_horizon(self) -> int | None:
        """The longest horizon `make_env` accepts (None: no limit)."""
        return None

    def task_distance(self, a: int, b: int) -> float:
        """How far apart two tasks are in task-parameter space (Euclidean over every parameter value); the
        zero-shot prompt comes from the training task nearest the target (pdiff.methods.zero_shot)."""
        return float(np.linalg.norm(_param_vector(self.task_params(a)) - _param_vector(self.task_params(b))))

    @property
    def split_note(self) -> str:
        """The out-of-distribution split in words ("" for the paper's families)."""
        if self.ood is None:
            return ""
        return (
            f"ours: {self.ood.base}'s tasks re-split, test tasks with {self.ood.parameter} in "
            f"{self.ood.text}, training tasks all the others"
        )

    @property
    def in_distribution(self) -> bool:
        """Whether every test task is a training task too (cheetah-dir, as in Prompt-DT and the paper): such a
        family tests no unseen task."""
        return set(self.test_tasks) <= set(self.train_tasks)

    @property
    def test_note(self) -> str:
        """What the test tasks are where they are not simply held out, in words: the training tasks
        themselves, or an out-of-distribution split of ours ("" otherwise)."""
        if self.in_distribution:
            return (
                "in distribution: its test tasks are its training tasks, as in Prompt-DT and the paper, "
                "so it tests no unseen task"
            )
        return self.split_note

    # --- shared ---------------------------------------------------------------------------------------

    def split(self, task_id: int) -> str:
        """The task's split: "train", "test", or "train+test" (a task in both, as in cheetah-dir)."""
        task_id = self.check_task_id(task_id)
        in_train, in_test = task_id in self.train_tasks, task_id in self.test_tasks
        if in_train and in_test:
            return "train+test"
        return "train" if in_train else "test"

    def check_task_id(self, task_id: int) -> int:
        """`task_id` as a plain int, or UsageError naming the id and the valid range."""
        try:
            if isinstance(task_id, bool):
                raise TypeError
            index = operator.index(task_id)
        except TypeError:
            index = None
        if index is None or not 0 <= index < self.num_tasks:
            raise UsageError(
                f"task id {task_id!r} is out of range for {self.name}",
                hint=f"valid ids are 0..{self.num_tasks - 1} (test tasks: {_ids(self.test_tasks)})",
            )
        return index

    def resolve_horizon(self, horizon: int | None, *, max_horizon: int | None = None) -> int:
        """`horizon` or the family default, checked to be a positive int (and at most `max_horizon`)."""
        if horizon is None:
            return self.horizon
        limit = f"1..{max_horizon}" if max_horizon else "a positive integer"
        if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer):
            raise UsageError(f"horizon {horizon!r} for {self.name} is not an integer", hint=f"use {limit}")
        if horizon < 1 or (max_horizon is not None and horizon > max_horizon):
            raise UsageError(f"horizon {horizon} is out of range for {self.name}", hint=f"use {limit}")
        return int(horizon)


def _param_vector(params: TaskParams) -> np.ndarray:
    return np.concatenate(
        [np.ravel(np.asarray(value, dtype=np.float64)) for _, value in sorted(params.items())]
    )


def _ids(ids: tuple[int, ...]) -> str:
    return ", ".join(str(i) for i in ids)


def complement(num_tasks: int, test_tasks: tuple[int, ...]) -> tuple[int, ...]:
    """The train ids: every task that is not a test task."""
    return tuple(i for i in range(num_tasks) if i not in test_tasks)
