"""What every stage does around its own work: open or resume its run, log to it, end it properly."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import yaml
from pydantic import ValidationError

from pdiff.compute import Compute, ComputeConfig, setup_compute, use_precision
from pdiff.config import StageConfig
from pdiff.console import attach_run_log, detach_run_log, err, log, pasteable
from pdiff.distributed import DistInfo, broadcast, init_distributed, resolve_device, shutdown
from pdiff.errors import ArtifactError, UsageError
from pdiff.plots import plot_curves
from pdiff.workspace.atomic import atomic_write_text
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import Run, create_run, find_run, reopen_for_resume, require_finished, running
from pdiff.workspace.verification import verified_output

if TYPE_CHECKING:
    from pdiff.data.loader import FamilyData
    from pdiff.rollouts.rollout import FrozenPolicy

C = TypeVar("C", bound=StageConfig)
CC = TypeVar("CC", bound=ComputeConfig)
# Stages that keep no partial results: a resumed run starts its work again, in the same run directory.
REDONE_ON_RESUME = {
    "eval": "evaluation starts again from the first episode: episodes are not checkpointed",
}


def open_run(
    workspace: Workspace,
    stage: str,
    config: C,
    *,
    argv: list[str],
    family: str | None,
    seed: int | None,
    resume: str | None = None,
    slug: str | None = None,
) -> tuple[Run, C]:
    """A new locked run, or the unfinished run `resume` locked again with its own recorded config."""
    if resume:
        # its recorded config is read before the run is locked again: one that no longer validates is an
        # error that leaves the run as it was
        try:
            recorded = type(config).model_validate(find_run(workspace, resume, stage).manifest["config"])
        except ValidationError as exc:
            raise UsageError(
                f"{stage} run {resume}'s recorded config is not valid for this pdiff: "
                f"{exc.errors()[0]['msg']} ({'.'.join(map(str, exc.errors()[0]['loc']))})",
                hint=f"start a new `pdiff {stage}` run instead of resuming this one",
            ) from None
        run = reopen_for_resume(workspace, stage, resume)
        if stage in REDONE_ON_RESUME:  # the others log the checkpoint or the tasks they continue from
            log.info("resuming %s run %s: %s", stage, run.run_id, REDONE_ON_RESUME[stage])
        if recorded != config:
            log.info("resuming %s with its recorded config (new settings are ignored)", run.run_id)
        return run, recorded
    dumped = config.model_dump(mode="json")
    run = create_run(workspace, stage, config=dumped, argv=argv, seed=seed, family=family, slug=slug)
    atomic_write_text(run.dir / "config.yaml", yaml.safe_dump({stage: dumped}, sort_keys=True))
    return run, config


def run_compute(
    config: ComputeConfig, workspace: Workspace, run: Run | None, info: DistInfo | None = None
) -> Compute:
    """This process's device, threads and precision for `run` (a resumed run keeps those it recorded; under
    torchrun every rank takes rank 0's), recorded in its manifest (rank 0, the one with the run)."""
    compute = setup_compute(config, workspace.root, run.manifest.get("compute") if run else None, info)
    if run is not None:
        run.manifest["compute"] = compute.record()
    return compute


@dataclass(frozen=True)
class RankRun(Generic[CC]):
    """This process's share of a stage run. Rank 0 owns `run`; under torchrun the other ranks get None and
    work in rank 0's run directory with rank 0's config."""

    run: Run | None
    dir: Path
    config: CC
    info: DistInfo


@contextmanager
def distributed_run(config: CC, open_main: Callable[[CC], tuple[Run, CC]]) -> Iterator[RankRun[CC]]:
    """Join torchrun's process group (nothing to join without torchrun); rank 0 opens the run with
    `open_main` (its checks that fail before a run exists included) and sends the run's directory and config
    to the other ranks. The group is left at the end, whatever happened."""
    info = init_distributed(resolve_device(config.device))
    try:
        if info.is_main:
            run, config = open_main(config)
            broadcast((str(run.dir), config.model_dump(mode="json")), info)
            yield RankRun(run, run.dir, config, info)
        else:
            run_dir, payload = broadcast(None, info)
            yield RankRun(None, Path(run_dir), type(config).model_validate(payload), info)
    finally:
        shutdown(info)


@contextmanager
def stage_run(run: Run) -> Iterator[Run]:
    """Status bookkeeping (FINISHED/FAILED/KILLED) plus a log.txt copy of everything logged meanwhile."""
    handler = attach_run_log(run.dir)
    try:
        with running(run):
            yield run
    except KeyboardInterrupt:  # kept in log.txt, and said on the console on lines of their own (to copy)
        command = pasteable(f"pdiff {run.stage} --resume {run.run_id}")
        message = f"interrupted: {run.stage} run {run.run_id} stopped (KILLED); continue it with `{command}`"
        handler.emit(log.makeRecord(log.name, logging.WARNING, __file__, 0, message, None, None))
        err.print(
            f"interrupted: {run.stage} run {run.run_id} stopped (KILLED); continue it with\n  {command}",
            soft_wrap=True,
            highlight=False,
            markup=False,
        )
        raise
    finally:
        detach_run_log(handler)


def record_runs(run: Run, kind: str, sources: Iterable[Run]) -> None:
    """Record the runs `run` reads, each once, all in one write: a resumed run compares the whole set with
    the one it started on, so recording them one at a time would refuse its own inputs."""
    run_ids = dict.fromkeys(source.run_id for source in sources)
    run.record_inputs(kind, [(run_id, None) for run_id in run_ids])


def record_datasets(run: Run | None, *read: FamilyData) -> None:
    """Record the datasets a run trains on, with their content hashes (all in one write, as `record_runs`);
    nothing on the ranks without the run."""
    if run is not None:
        pairs = [(i, h) for d in read for i, h in zip(d.dataset_ids, d.content_sha256, strict=True)]
        run.record_inputs("dataset", pairs)


def checkpoint_of(run: Run) -> Path:
    """The final checkpoint of a finished run, its files checked against the hashes run.json recorded."""
    relative = run.manifest.get("summary", {}).get("checkpoint")
    if not relative:
        raise ArtifactError(f"{run.stage} run {run.run_id} records no checkpoint", hint="re-run that stage")
    directory = run.dir / relative
    for output in run.manifest.get("outputs", []):
        if (run.dir / output["path"]).parent == directory:
            verified_output(run, run.dir / output["path"])
    return directory


def record_trained(run: Run, checkpoint: Path, curves: list[str], title: str) -> None:
    """Record a training stage's final inference files and its learning-curve PNG as run outputs."""
    run.record_output(checkpoint / "model.safetensors", "checkpoint")
    run.record_output(checkpoint / "model_config.json", "model_config")
    png = plot_curves(run.dir / "metrics.jsonl", curves, run.dir / "learning_curve.png", title=title)
    if png is not None:
        run.record_output(png, "plot")


# How often a training stage logs and checkpoints: never what it trains (a resume restores every random
# state, pdiff.training.state.CheckpointStore). The learning-curve settings are not among them: a reused run
# would lack the curve its settings ask for.
CADENCE_SETTINGS = frozenset({"log_every", "checkpoint_every", "keep_checkpoints"})
# Settings in which the runs behind one seed each (`pretrain_runs`, `diffuse_runs`) may differ.
PER_SEED_SETTINGS = frozenset({"seed", "device", "threads"}) | CADENCE_SETTINGS


def runs_per_seed(
    workspace: Workspace,
    stage: str,
    seeds: list[int],
    refs: list[str],
    also_differ: frozenset[str] = frozenset(),
) -> dict[int, Run]:
    """Seed → the FINISHED `stage` run named for it. The runs must differ only in their seed (and in
    `also_differ`), so that a spread over seeds measures seeds, not settings."""
    runs = {
        seed: require_finished(find_run(workspace, ref, stage)) for seed, ref in zip(seeds, refs, strict=True)
    }
    ignored = PER_SEED_SETTINGS | also_differ
    settings = {
        json.dumps({k: v for k, v in r.config.items() if k not in ignored}, sort_keys=True)
        for r in runs.values()
    }
    if len(settings) > 1:
        raise UsageError(
            f"the {stage} runs of {stage}_runs differ in more than their seed",
            hint=f"train them with the same settings: pdiff {stage} --seed S (nothing else changed)",
        )
    return runs


def load_policies(
    runs: dict[int, Run], device: Any, family: str, compute: Compute | None = None
) -> dict[int, FrozenPolicy]:
    """Seed → the frozen Prompt-DT of its pretrain run, each checkpoint loaded once and checked to be
    `family`'s, running in `compute`'s precision."""
    from pdiff.rollouts.rollout import load_policy

    loaded: dict[str, FrozenPolicy] = {}
    for run in runs.values():
        if run.run_id in loaded:
            continue
        policy, model_config = load_policy(checkpoint_of(run), device)
        if model_config["family"] != family:
            raise UsageError(
                f"checkpoint of {run.run_id} is for {model_config['family']}, not {family}",
                hint=f"evaluate it with --env {model_config['family']}",
            )
        loaded[run.run_id] = policy
        if compute is not None:
            use_precision(policy.model, compute)
    return {seed: loaded[run.run_id] for seed, run in runs.items()}
