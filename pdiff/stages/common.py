"""What every stage does around its own work: open or resume its run, log to it, end it properly."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import yaml

from pdiff.config import StageConfig
from pdiff.console import attach_run_log, detach_run_log, err, log, pasteable
from pdiff.errors import ArtifactError
from pdiff.plots import plot_curves
from pdiff.workspace.atomic import atomic_write_text
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import Run, create_run, reopen_for_resume, running
from pdiff.workspace.verification import verified_output

C = TypeVar("C", bound=StageConfig)
# Stages that keep no partial results: a resumed run starts its work again, in the same run directory.
REDONE_ON_RESUME = {
    "tune": "tuning starts again from the first (seed, task): partial adaptations are not kept",
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
        run = reopen_for_resume(workspace, stage, resume)
        if stage in REDONE_ON_RESUME:  # the others log the checkpoint or the tasks they continue from
            log.info("resuming %s run %s: %s", stage, run.run_id, REDONE_ON_RESUME[stage])
        recorded = type(config).model_validate(run.manifest["config"])
        if recorded != config:
            log.info("resuming %s with its recorded config (new settings are ignored)", run.run_id)
        return run, recorded
    dumped = config.model_dump(mode="json")
    run = create_run(workspace, stage, config=dumped, argv=argv, seed=seed, family=family, slug=slug)
    atomic_write_text(run.dir / "config.yaml", yaml.safe_dump({stage: dumped}, sort_keys=True))
    return run, config


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
        err.print(f"interrupted: {run.stage} run {run.run_id} stopped (KILLED); continue it with\n  {command}",
                  soft_wrap=True, highlight=False, markup=False)  # fmt: skip
        raise
    finally:
        detach_run_log(handler)


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
