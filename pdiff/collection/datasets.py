"""Writing a collect run's datasets: each task's episodes of every kind as one immutable Minari dataset under
the next free version, recorded in the run as it lands, and the worker processes that collect the tasks."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np

from pdiff.collection.behaviour import REFERENCE_RANDOM, TaskJob, collect_task
from pdiff.console import log
from pdiff.data.minari_format import (
    Episode,
    dataset_dir,
    dataset_id,
    latest_version,
    next_version,
    write_dataset,
    write_namespace_metadata,
)
from pdiff.data.minari_read import read_metadata, verify_dataset
from pdiff.envs.base import TaskFamily
from pdiff.errors import ArtifactError
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import Run

Spaces = tuple[gymnasium.spaces.Box, gymnasium.spaces.Box]  # observation, action


def written_pairs(run: Run) -> set[tuple[int, str]]:
    """(task, kind) of every dataset this run has already written (skipped on --resume)."""
    return {(o["task"], o["dataset_kind"]) for o in run.manifest["outputs"] if o["kind"] == "dataset"}


def write_task_datasets(
    workspace: Workspace,
    run: Run,
    family: TaskFamily,
    task: int,
    episodes: dict[str, list[Episode]],
    *,
    kinds: list[str],
    seed: int,
    spaces: Spaces,
    lineage: dict[str, dict[str, Any]],
    horizon: int,
) -> None:
    """Write the requested kinds of one task (skipping those this run already wrote) and record them."""
    ref_min = float(np.mean([e.total_return for e in episodes.get(REFERENCE_RANDOM, episodes["random"])]))
    ref_max = float(np.mean([e.total_return for e in episodes["expert"]]))
    done = written_pairs(run)
    for kind in kinds:
        if (task, kind) in done:
            continue
        eps = episodes[kind]
        returns = np.array([e.total_return for e in eps])
        success = [bool(e.infos["success"].any()) for e in eps if "success" in e.infos]
        stats = {
            "return_mean": float(returns.mean()),
            "success_rate": float(np.mean(success)) if success else None,
        }
        block = {
            "family": family.name,
            "task_id": task,
            "task_params": family.task_params(task),
            "split": family.split(task),
            "kind": kind,
            "collect_run_id": run.run_id,
            "seed": seed,
            "horizon": horizon,
            "policy": lineage[kind],
            **stats,
            "return_std": float(returns.std()),
            "ref_random_return": ref_min,
            "ref_expert_return": ref_max,
        }
        write = partial(
            write_dataset,
            workspace.datasets_dir,
            episodes=eps,
            observation_space=spaces[0],
            action_space=spaces[1],
            pdiff_block=block,
            algorithm_name=f"{lineage[kind]['source']}:{kind}",
            description=f"{family.name} task {task} ({family.split(task)}), {kind} data collected by pdiff",
            code_permalink=(run.manifest.get("git") or {}).get("commit"),
            ref_min_score=ref_min,
            ref_max_score=ref_max,
        )
        ident, path = store_dataset(workspace, run, family, task, kind, write)
        run.record_output(
            path / "data" / "main_data.hdf5",
            "dataset",
            task=task,
            dataset_kind=kind,
            dataset_id=ident,
            **stats,
        )


def store_dataset(
    workspace: Workspace, run: Run, family: TaskFamily, task: int, kind: str, write: Callable[[str], Path]
) -> tuple[str, Path]:
    """`write(dataset_id)` under the next free version, unless this run wrote it before being killed.

    A kill between a dataset's rename into place and its record in run.json leaves a complete dataset of
    this run; --resume keeps it (after verifying it) instead of writing a duplicate next version. Two
    collects of one family can race for a version: the loser takes the next one.
    """
    root = workspace.datasets_dir
    latest = latest_version(root, family.name, task, kind)
    if latest is not None:
        ident = dataset_id(family.name, task, kind, latest)
        if _written_by(dataset_dir(root, ident), run.run_id):
            log.info("keeping %s, written by this run before it was interrupted", ident)
            return ident, dataset_dir(root, ident)
    for _attempt in range(5):
        ident = dataset_id(family.name, task, kind, next_version(root, family.name, task, kind))
        try:
            return ident, write(ident)
        except ArtifactError:
            if not dataset_dir(root, ident).exists():
                raise  # not a lost race: a real failure
    raise ArtifactError(
        f"could not find a free version for {ident}: other processes keep taking them",
        hint="run one `pdiff collect` per family at a time",
    )


def _written_by(directory: Path, run_id: str) -> bool:
    try:
        block = read_metadata(directory)["pdiff"]
    except ArtifactError:
        return False
    return block.get("collect_run_id") == run_id and not verify_dataset(directory)


def task_spaces(
    family: TaskFamily, task: int, horizon: int
) -> tuple[gymnasium.spaces.Box, gymnasium.spaces.Box]:
    """Observation and action spaces (the same for every task of a family), read once per collect."""
    env = family.make_env(task, horizon=horizon)
    try:
        spaces = (env.observation_space, env.action_space)
    finally:
        env.close()
    for space in spaces:
        if not isinstance(space, gymnasium.spaces.Box):
            raise TypeError(f"expected a Box space, got {space}")
    return spaces  # type: ignore[return-value]


def run_jobs(
    jobs: list[TaskJob], workers: int
) -> Iterator[tuple[int, dict[str, list[Episode]]]]:  # yields (task, {kind: episodes})
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield collect_task(job)
        return
    # spawn: workers start clean (no inherited torch/OpenMP/EGL state); results arrive in task order
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=min(workers, len(jobs)), mp_context=context, initializer=_worker_init
    ) as pool:
        yield from pool.map(collect_task, jobs)


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def write_family_metadata(datasets_root: Path, family: TaskFamily) -> None:
    """The family's namespace metadata: its simulator, task split and every task's parameters."""
    metadata = {
        "family": family.name,
        "simulator": family.simulator,
        "num_tasks": family.num_tasks,
        "train_tasks": list(family.train_tasks),
        "test_tasks": list(family.test_tasks),
        "task_params": {str(t): family.task_params(t) for t in range(family.num_tasks)},
    }
    write_namespace_metadata(datasets_root, family.name, metadata)


def collect_summary(run: Run) -> dict[str, Any]:
    """Mean return and success per kind over every dataset this run wrote (as recorded in run.json)."""
    datasets = [o for o in run.manifest["outputs"] if o["kind"] == "dataset"]
    summary: dict[str, Any] = {"datasets": len(datasets)}
    teacher = run.manifest["summary"].get("teacher")
    if teacher:
        for key in ("expert_eval_return", "medium_eval_return", "random_return", "updates"):
            summary[f"teacher/{key}"] = teacher[key]
    for kind in dict.fromkeys(o["dataset_kind"] for o in datasets):
        of_kind = [o for o in datasets if o["dataset_kind"] == kind]
        summary[f"{kind}/return_mean"] = float(np.mean([o["return_mean"] for o in of_kind]))
        success = [o["success_rate"] for o in of_kind if o["success_rate"] is not None]
        if success:
            summary[f"{kind}/success_rate"] = float(np.mean(success))
            summary[f"{kind}/min_task_success_rate"] = float(np.min(success))
    return summary
