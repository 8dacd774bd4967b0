"""A family's datasets as contiguous numpy arrays for training: read once, cached in-process.

Steps of all episodes lie back to back (the final T+1 observation of each episode is dropped, as training
never conditions on it); episodes of one task are contiguous and tasks come in ascending order.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pdiff.data import minari_format, minari_read
from pdiff.data.minari_format import MAIN_FILE, METADATA_FILE, Episode
from pdiff.errors import ArtifactError, UsageError

STD_EPSILON = 1e-6
_CACHE_SIZE = 4
_cache: OrderedDict[tuple, FamilyData] = OrderedDict()


@dataclass(frozen=True, eq=False)
class FamilyData:
    family: str
    kind: str
    observations: np.ndarray  # (N, d_s) float32
    actions: np.ndarray  # (N, d_a) float32
    rewards: np.ndarray  # (N,) float32
    timesteps: np.ndarray  # (N,) int64, step index within its episode
    returns_to_go: np.ndarray  # (N,) float32, undiscounted suffix sum within the episode (raw)
    episode_starts: np.ndarray  # (E,) int64 offsets into the step arrays
    episode_lengths: np.ndarray  # (E,) int64
    episode_tasks: np.ndarray  # (E,) int64
    episode_returns: np.ndarray  # (E,) float32
    success: np.ndarray | None  # (E,) bool: the episode ever succeeded (Meta-World), else None
    dataset_ids: tuple[str, ...]  # one per task, in the order of tasks()
    content_sha256: tuple[str, ...]

    @property
    def num_steps(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def num_episodes(self) -> int:
        return int(self.episode_lengths.shape[0])

    def tasks(self) -> list[int]:
        return sorted({int(t) for t in self.episode_tasks})

    def task_episodes(self, task_id: int) -> np.ndarray:
        """Indices of the episodes of `task_id` (empty when it is not loaded)."""
        return np.flatnonzero(self.episode_tasks == task_id)

    def _check_tasks(self, task_ids: Iterable[int]) -> list[int]:
        wanted = sorted({int(t) for t in task_ids})
        missing = sorted(set(wanted) - set(self.tasks()))
        if not wanted or missing:
            raise UsageError(
                f"task(s) {missing or '[]'} not loaded for {self.family}/{self.kind} (tasks {self.tasks()})",
                "pass task ids that were given to load_family_data",
            )
        return wanted

    def subset(self, task_ids: Iterable[int]) -> FamilyData:
        """The same data restricted to some tasks (arrays are copies)."""
        wanted = self._check_tasks(task_ids)
        return self.select_episodes(np.flatnonzero(np.isin(self.episode_tasks, wanted)))

    def select_episodes(self, episodes: np.ndarray) -> FamilyData:
        """The same data restricted to these episodes (indices into this data, grouped by task in ascending
        task order, as everywhere in FamilyData)."""
        episodes = np.asarray(episodes, dtype=np.int64)
        wanted = {int(t) for t in self.episode_tasks[episodes]}
        steps = np.concatenate(
            [
                np.arange(s, s + n)
                for s, n in zip(self.episode_starts[episodes], self.episode_lengths[episodes], strict=True)
            ]
        )
        lengths = self.episode_lengths[episodes]
        keep = [i for i, d in enumerate(self.dataset_ids) if minari_format.parse_dataset_id(d)[1] in wanted]
        return _frozen(
            dataclasses.replace(
                self,
                observations=self.observations[steps],
                actions=self.actions[steps],
                rewards=self.rewards[steps],
                timesteps=self.timesteps[steps],
                returns_to_go=self.returns_to_go[steps],
                episode_starts=_starts(lengths),
                episode_lengths=lengths.copy(),
                episode_tasks=self.episode_tasks[episodes],
                episode_returns=self.episode_returns[episodes],
                success=None if self.success is None else self.success[episodes],
                dataset_ids=tuple(self.dataset_ids[i] for i in keep),
                content_sha256=tuple(self.content_sha256[i] for i in keep),
            )
        )

    def state_stats(self, task_ids: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
        """Observation mean and std (+1e-6) over the steps of these tasks only (float32, shape (d_s,))."""
        blocks = [self._task_block(t) for t in self._check_tasks(task_ids)]
        count = sum(len(b) for b in blocks)
        # Two passes in float64 over views: stable and without copying the observations.
        mean = sum(b.sum(axis=0, dtype=np.float64) for b in blocks) / count
        var = sum(np.square(b - mean).sum(axis=0) for b in blocks) / count
        return mean.astype(np.float32), (np.sqrt(var) + STD_EPSILON).astype(np.float32)

    def _task_block(self, task_id: int) -> np.ndarray:
        episodes = self.task_episodes(task_id)
        start = int(self.episode_starts[episodes[0]])
        end = int(self.episode_starts[episodes[-1]] + self.episode_lengths[episodes[-1]])
        return self.observations[start:end]


def _starts(lengths: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)


def _frozen(data: FamilyData) -> FamilyData:
    # Cached objects are shared by every caller in the process: make accidental in-place edits fail.
    for value in vars(data).values():
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
    return data


def _build(
    family: str, kind: str, per_task: Sequence[tuple[int, list[Episode]]], ids: tuple, hashes: tuple
) -> FamilyData:
    episodes = [ep for _, eps in per_task for ep in eps]
    lengths = np.array([ep.length for ep in episodes], dtype=np.int64)
    starts = _starts(lengths)
    total = int(lengths.sum())
    obs_dim, act_dim = episodes[0].observations.shape[1], episodes[0].actions.shape[1]
    observations = np.empty((total, obs_dim), dtype=np.float32)
    actions = np.empty((total, act_dim), dtype=np.float32)
    rewards = np.empty(total, dtype=np.float32)
    timesteps = np.empty(total, dtype=np.int64)
    returns_to_go = np.empty(total, dtype=np.float32)
    for ep, start in zip(episodes, starts, strict=True):
        window = slice(start, start + ep.length)
        observations[window] = ep.observations[:-1]
        actions[window] = ep.actions
        rewards[window] = ep.rewards
        timesteps[window] = np.arange(ep.length)
        returns_to_go[window] = np.cumsum(ep.rewards[::-1], dtype=np.float64)[::-1]
    has_success = all("success" in ep.infos for ep in episodes)
    return _frozen(
        FamilyData(
            family=family,
            kind=kind,
            observations=observations,
            actions=actions,
            rewards=rewards,
            timesteps=timesteps,
            returns_to_go=returns_to_go,
            episode_starts=starts,
            episode_lengths=lengths,
            episode_tasks=np.array([t for t, eps in per_task for _ in eps], dtype=np.int64),
            episode_returns=np.array([ep.total_return for ep in episodes], dtype=np.float32),
            success=np.array([bool(np.any(ep.infos["success"])) for ep in episodes]) if has_success else None,
            dataset_ids=ids,
            content_sha256=hashes,
        )
    )


def _resolve(datasets_root: Path, family: str, kind: str, task_id: int, version: int | str) -> str:
    """The dataset id to read for one task; a clear error when it was never collected."""
    if version == "latest":
        found = minari_format.latest_version(datasets_root, family, task_id, kind)
    elif str(version).isdigit():
        found = int(version)
    else:
        raise UsageError(f"dataset version {version!r} is not a number or 'latest'", "pass e.g. 0 or latest")
    wanted = minari_format.dataset_id(family, task_id, kind, found or 0)
    if found is not None and minari_format.dataset_dir(datasets_root, wanted).is_dir():
        return wanted
    shown = wanted if found is not None else wanted.removesuffix("-v0") + "-v*"
    raise ArtifactError(
        f"dataset {shown} not found under {datasets_root}",
        f"collect it first: pdiff collect --env {family} --kinds {kind}",
    )


def _file_stamp(directory: Path) -> tuple:
    data = directory / "data"
    stats = [(data / name).stat() for name in (MAIN_FILE, METADATA_FILE) if (data / name).exists()]
    return str(directory.resolve()), tuple((s.st_mtime_ns, s.st_size, s.st_ino) for s in stats)


def load_family_data(
    datasets_root: Path,
    family: str,
    kind: str,
    task_ids: Iterable[int],
    *,
    version: int | str = "latest",
    max_episodes_per_task: int | None = None,
) -> FamilyData:
    """Read the (family, kind) datasets of these tasks into one FamilyData; repeated calls hit a cache."""
    tasks = sorted({int(t) for t in task_ids})
    if not tasks:
        raise UsageError(f"no task ids given for {family}/{kind}", "pass at least one task id")
    if max_episodes_per_task is not None and max_episodes_per_task < 1:
        raise UsageError(f"max_episodes_per_task={max_episodes_per_task} must be at least 1", "use 1 or more")
    root = Path(datasets_root)
    ids = tuple(_resolve(root, family, kind, t, version) for t in tasks)
    dirs = [minari_format.dataset_dir(root, i) for i in ids]
    key = (family, kind, max_episodes_per_task, tuple(_file_stamp(d) for d in dirs))
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]

    per_task, hashes = [], []
    for task, dataset, directory in zip(tasks, ids, dirs, strict=True):
        episodes, metadata = minari_read.read_dataset(directory)
        if metadata["dataset_id"] != dataset:
            found = metadata["dataset_id"]
            raise ArtifactError(
                f"{directory / 'data' / METADATA_FILE}: dataset_id {found!r}, expected {dataset!r}",
                "a dataset directory was moved or copied by hand; re-collect it",
            )
        per_task.append((task, episodes[:max_episodes_per_task]))
        hashes.append(metadata["pdiff"]["content_sha256"])
    dims = {(eps[0].observations.shape[1], eps[0].actions.shape[1]) for _, eps in per_task}
    if len(dims) > 1:
        raise ArtifactError(
            f"datasets {', '.join(ids)} disagree on observation/action dims {sorted(dims)}",
            f"re-collect the {family} datasets with one pdiff version",
        )
    data = _build(family, kind, per_task, ids, tuple(hashes))
    _cache[key] = data
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return data


def clear_cache() -> None:
    _cache.clear()
