"""`pdiff reproduce --jobs N`: up to N steps of the plan at once, each stage in a process of its own.

A step starts once the steps whose runs it names are done and every collect before it has finished
(the others read the datasets; collects run one at a time, since a family and its OOD variant share a SAC
teacher). Steps start in plan order. A finished run is reused and a stale one resumed exactly as in the
sequential loop (pdiff.workflows.pipeline.resolve_step), so `--jobs` changes when steps run, never what they
compute: a finished matrix reads as finished to a later `reproduce` with any `--jobs`. Each step sets the
torch threads its config records (`threads`, default 1: pdiff.compute), so its numbers do not depend on
`--jobs` either. Its progress lines go to stderr as plain lines (two live bars cannot share a terminal) and to
its run's log.txt. When a step fails, no new step starts; the running ones finish, and the first failure is
raised.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from pdiff.config import StageConfig
from pdiff.console import err, log, plain_progress, setup_logging
from pdiff.errors import ArtifactError, PdiffError, RunFailed, UsageError
from pdiff.interrupts import notice_dropped_ctrl_c
from pdiff.workflows.pipeline import ResolvedStep, resolve_step, reused, run_stage, split_overrides
from pdiff.workflows.steps import Step, StepResult
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import Run, load_run

ERRORS: dict[str, type[PdiffError]] = {
    e.__name__: e for e in (UsageError, ArtifactError, RunFailed, PdiffError)
}


def dependencies(steps: list[Step]) -> dict[Step, set[Step]]:
    """Each step → the steps that must be done before it starts."""
    needs: dict[Step, set[Step]] = {}
    collects: set[Step] = set()
    for step in steps:
        needs[step] = set(step.upstream()) | collects
        if step.stage == "collect":
            collects = collects | {step}
    return needs


def child(
    workspace: Workspace,
    stage: str,
    config: StageConfig,
    argv: list[str],
    resume: str | None,
    conn: Connection,
) -> None:
    """One stage in a spawned process; sends ("ok", run_id) or ("error", class name, message, hint)."""
    notice_dropped_ctrl_c()
    plain_progress()
    setup_logging()
    try:
        conn.send(("ok", run_stage(workspace, stage, config, argv, resume=resume).run_id))
    except PdiffError as exc:
        conn.send(("error", type(exc).__name__, exc.message, exc.hint))
    except KeyboardInterrupt:
        conn.send(("error", "RunFailed", f"{stage} interrupted", "run `pdiff reproduce` again to resume it"))
    except BaseException:  # a bug: the end of its traceback (a pipe holds ~64 KiB unread)
        conn.send(("error", "RunFailed", f"{stage} crashed:\n{traceback.format_exc()[-4000:]}", None))
    finally:
        conn.close()


@dataclass
class Running:
    step: Step
    process: Any  # a spawn-context Process
    conn: Connection
    resumed: bool
    started: float


def run_parallel(
    workspace: Workspace,
    steps: list[Step],
    *,
    preset: str | None,
    argv: list[str],
    overrides: list[str] | None,
    jobs: int,
) -> tuple[list[StepResult], Run | None]:
    grouped = split_overrides(overrides or [])
    needs = dependencies(steps)
    numbers = {step: number for number, step in enumerate(steps, 1)}
    context = mp.get_context("spawn")  # a fresh interpreter: no forked torch or simulator state
    ids: dict[Step, str] = {}
    configs: dict[Step, StageConfig] = {}
    results: dict[Step, StepResult] = {}
    pending = list(steps)
    running: list[Running] = []
    failure: PdiffError | None = None

    def prefix(step: Step) -> str:
        return f"[{numbers[step]}/{len(steps)}]"

    def start(step: Step, ready: ResolvedStep) -> None:
        receive, send = context.Pipe(duplex=False)
        resume = ready.stale.run_id if ready.stale else None
        process = context.Process(
            target=child,
            name=step.key,
            daemon=False,
            args=(workspace, step.stage, ready.config, argv, resume, send),
        )
        process.start()
        send.close()
        running.append(Running(step, process, receive, resume is not None, time.monotonic()))

    def finish(job: Running) -> None:
        nonlocal failure
        job.process.join()
        try:
            message = job.conn.recv()
        # killed before it could say (the OOM killer, a SIGKILL): its run is stale, resumable
        except EOFError:
            message = (
                "error",
                "RunFailed",
                f"its process ended without a result (exit code {job.process.exitcode})",
                "run `pdiff reproduce` again to resume it",
            )
        job.conn.close()
        running.remove(job)
        if message[0] == "ok":
            run = load_run(workspace, job.step.stage, message[1])
            ids[job.step] = run.run_id
            state = "resumed" if job.resumed else "ran"
            results[job.step] = StepResult(job.step.key, state, run.run_id, run.manifest.get("summary"))
            err.print(
                f"{prefix(job.step)} done in {time.monotonic() - job.started:.0f} s: {job.step.key} "
                f"({run.run_id})",
                highlight=False,
                soft_wrap=True,
            )
            return
        _, name, text, hint = message
        err.print(f"{prefix(job.step)} failed: {job.step.key}", highlight=False, soft_wrap=True)
        if failure is None:
            failure = ERRORS.get(name, RunFailed)(f"{job.step.key}: {text}", hint=hint)

    try:
        while pending or running:
            for step in list(pending):
                if failure is not None or len(running) >= jobs:
                    break
                if not needs[step] <= ids.keys():
                    continue
                pending.remove(step)
                ready = resolve_step(workspace, step, preset, grouped, ids, configs)
                ready.announce(prefix(step))
                if ready.done is not None:
                    ids[step] = ready.done.run_id
                    results[step] = reused(step, ready.done)
                else:
                    start(step, ready)
            if not running:
                if failure is None and pending:  # cannot happen for a plan in input order
                    waiting = sorted(s.key for s in needs[pending[0]] - ids.keys())
                    raise RunFailed(f"no step can start: {pending[0].key} waits for {waiting}")
                break
            ready_conns = wait([job.process.sentinel for job in running])
            for job in [j for j in running if j.process.sentinel in ready_conns]:
                finish(job)
    except BaseException:  # Ctrl-C (the children got it too, unless only this process was signalled) or a bug
        log.warning("stopping: waiting for %d running step(s) to mark their runs", len(running))
        for job in running:
            job.process.join(timeout=10)
            if job.process.is_alive():
                # as Ctrl-C would: the child marks its run KILLED, resumable
                os.kill(job.process.pid, signal.SIGINT)
                job.process.join()
        raise
    if failure is not None:
        raise failure
    reports = [results[s].run_id or "" for s in steps if s.stage == "report"]
    report = load_run(workspace, "report", reports[0]) if reports else None
    return [results[s] for s in steps], report
