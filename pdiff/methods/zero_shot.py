"""Zero-shot adaptation (`tune --shots 0`, the paper's Table 3): no trajectory of the target task at all.

What stands in for the target data is our reading (the paper does not say): the *training* tasks'
prompt-expert episodes, whose tails the Prompt-DT was pretrained to read. Both zero-shot methods get the same
information in each setting (`zero_shot_source`, ours):
- `nearest`: the prompt-expert episodes of the training task nearest the target in task-parameter space
  (every family of pdiff knows its tasks' parameters) are the target's few-shot data, for both methods alike:
  prompt-diffuser tunes on them exactly as on a test task's few-shot episodes and generates conditioned on
  one's tail; prompt-dt is prompted with one's real tail.
- `none`: nothing is chosen for the target. prompt-dt takes a random training task's prompt; prompt-diffuser,
  not tuned, is conditioned on the mean returns-to-go and timesteps of every training task's tails.
The other methods tune on the target's trajectories, so they have no zero-shot form.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

from pdiff.data.batches import PromptBank, Segments
from pdiff.data.loader import FamilyData, load_family_data
from pdiff.data.minari_format import parse_dataset_id
from pdiff.envs.base import TaskFamily
from pdiff.errors import UsageError

if TYPE_CHECKING:
    from pdiff.rollouts.rollout import FrozenPolicy

ZERO_SHOT_METHODS = ("prompt-diffuser", "prompt-dt")
ZeroShotSetting = Literal["nearest", "none"]
ZERO_SHOT_SETTINGS: tuple[str, ...] = get_args(ZeroShotSetting)
# Each setting in words, for the config's help and the report's notes.
SETTING_TEXT: dict[str, str] = {
    "nearest": "both methods read the prompt-expert episodes of the training task nearest the target's task "
    "parameters (prompt-diffuser tunes on them as on few-shot episodes; "
    "prompt-dt is prompted with one's tail)",
    "none": "nothing is chosen for the target (prompt-dt takes a random training task's prompt; "
    "prompt-diffuser, untuned, is conditioned on the mean returns-to-go and timesteps of every training "
    "task's prompts)",
}
SOURCE_KIND = "prompt-expert"  # the training tasks' data zero-shot prompts come from
# What tune runs made before both methods got equal information did under `nearest` (their summary's
# zero_shot record names a `source`, not a `setting`): prompt-dt read the nearest training task's real prompt,
# prompt-diffuser, untuned, only that prompt's returns-to-go and timesteps.
BEFORE_EQUAL_INFORMATION = (
    "nearest, before equal information: prompt-diffuser read only the returns-to-go and timesteps"
)


def check_zero_shot(method: str, shots: int) -> None:
    """UsageError (exit 2) when `--shots 0` is asked of a method that needs target trajectories to tune."""
    if shots == 0 and method not in ZERO_SHOT_METHODS:
        raise UsageError(
            f"--shots 0: {method} tunes on the target task's trajectories; zero-shot methods: "
            f"{', '.join(ZERO_SHOT_METHODS)}",
            hint=f"use --method {'|'.join(ZERO_SHOT_METHODS)} with --shots 0, or --shots N ≥ 1 with {method}",
        )


def recorded_setting(record: dict[str, Any] | None) -> str:
    """The zero-shot setting a tune run's summary["zero_shot"] record says it ran (None: no record, as in
    report.json files written before the setting was kept, whose zero-shot cells all predate it)."""
    if record and "setting" in record:
        return str(record["setting"])
    if record and record.get("source") == "pooled":  # the older name of `none`, which gives the same prompts
        return "none"
    return BEFORE_EQUAL_INFORMATION


@dataclass
class ZeroShotPrompts:
    """The training tasks' prompt-expert episodes (`data`, raw) and their tail prompts (`bank`, normalised as
    the frozen Prompt-DT reads them), and what each target task may read of them under `setting`."""

    data: FamilyData
    bank: PromptBank
    family: TaskFamily
    setting: ZeroShotSetting

    @property
    def datasets(self) -> tuple[tuple[str, str], ...]:
        """(dataset id, content sha256) of every training task's prompt-expert data."""
        return tuple(zip(self.data.dataset_ids, self.data.content_sha256, strict=True))

    def dataset_of(self, task: int) -> tuple[str, str]:
        """(dataset id, content sha256) of one training task's prompt-expert data."""
        return next(d for d in self.datasets if parse_dataset_id(d[0])[1] == task)

    def sources(self, task: int) -> list[int]:
        """The training tasks a prompt for `task` may come from: never `task` itself (cheetah-dir trains on
        its test tasks; a zero-shot prompt must not be cut from the target's own trajectories)."""
        sources = [t for t in self.bank.tasks() if t != task]
        if not sources:
            raise UsageError(
                f"no training task other than task {task} to prompt it zero-shot",
                hint="zero-shot needs a family with training tasks besides the test task",
            )
        return sources

    def nearest_task(self, task: int) -> int:
        """The training task nearest `task` in task-parameter space (the lower id on a tie)."""
        return min(self.sources(task), key=lambda other: (self.family.task_distance(task, other), other))

    def nearest_episodes(self, tasks: list[int]) -> FamilyData:
        """`nearest`'s few-shot data: for each target task, every episode of its nearest training task,
        labelled as the target's own so that a method reads them as it reads a target's few-shot episodes
        (`dataset_ids` names, per target, the dataset they come from)."""
        targets = sorted(tasks)
        nearest = [self.nearest_task(t) for t in targets]
        picked = self.data.select_episodes(np.concatenate([self.data.task_episodes(s) for s in nearest]))
        counts = [len(self.data.task_episodes(s)) for s in nearest]
        return replace(
            picked,
            episode_tasks=np.repeat(np.array(targets, dtype=np.int64), counts),
            dataset_ids=tuple(self.dataset_of(s)[0] for s in nearest),
            content_sha256=tuple(self.dataset_of(s)[1] for s in nearest),
        )

    def prompt(self, task: int, rng: np.random.Generator) -> Segments:
        """prompt-dt's `none` prompt for `task`: one real tail prompt of a random training task."""
        source = int(rng.choice(self.sources(task)))
        return _for_target(self.bank.for_task(source, rng), task)

    def condition(self, task: int, rng: np.random.Generator) -> Segments:
        """prompt-diffuser's `none` conditioning segment for `task`: the mean returns-to-go and timesteps of
        every training task's tails (only those are read; `rng` is unused, as nothing is drawn)."""
        tails = self.bank.prompts.take(np.flatnonzero(np.isin(self.bank.prompts.tasks, self.sources(task))))
        first = tails.take(np.array([0]))
        mean = replace(
            first,
            states=np.zeros_like(first.states),
            actions=np.zeros_like(first.actions),
            rewards=np.zeros_like(first.rewards),
            returns_to_go=tails.returns_to_go.mean(axis=0, keepdims=True).astype(np.float32),
            timesteps=np.rint(tails.timesteps.mean(axis=0, keepdims=True)).astype(np.int64),
        )
        return _for_target(mean, task)

    def read(self, tasks: list[int]) -> tuple[tuple[str, str], ...]:
        """(dataset id, sha256) of the datasets the targets' prompts may come from under `setting`."""
        if self.setting == "nearest":
            used = self.nearest_episodes(tasks)
            return tuple(dict.fromkeys(zip(used.dataset_ids, used.content_sha256, strict=True)))
        return self.datasets

    def record(self, tasks: list[int]) -> dict[str, object]:
        """What a tune run's summary says about its zero-shot prompts; the same for both zero-shot methods.
        `nearest`: per target task, the training task, dataset and episode indices (within that dataset)
        both may read."""
        record: dict[str, object] = {
            "setting": self.setting,
            "kind": SOURCE_KIND,
            "training_tasks": self.bank.tasks(),
            "reading": "ours",
        }
        if self.setting == "nearest":
            nearest = {t: self.nearest_task(t) for t in sorted(tasks)}
            record["sources"] = {
                str(t): {
                    "task": s,
                    "dataset": self.dataset_of(s)[0],
                    "episodes": list(range(len(self.data.task_episodes(s)))),
                }
                for t, s in nearest.items()
            }
        return record


def training_prompts(
    datasets_root: Path,
    family: TaskFamily,
    train_tasks: list[int],
    policy: FrozenPolicy,
    setting: ZeroShotSetting,
) -> ZeroShotPrompts:
    """The training tasks' prompt-expert episodes and tail prompts, normalised as `policy` reads them."""
    data = load_family_data(datasets_root, family.name, SOURCE_KIND, train_tasks)
    return ZeroShotPrompts(data, policy.prompt_bank(data), family, setting)


def _for_target(segment: Segments, task: int) -> Segments:
    return replace(segment, tasks=np.full(len(segment), task, dtype=np.int64))
