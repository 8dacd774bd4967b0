"""Stages composed as library calls: `pdiff demo` (one family, reuse whatever finished) and the shared
helpers `pdiff reproduce` builds its matrix on (resolve a stage config, find a finished run of exactly that
config, resume a stale one, run a stage)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pdiff.config import StageConfig, resolve_config, stage_models
from pdiff.console import log
from pdiff.stages import load_stage_configs
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import Run, RunStatus, list_runs

RESUMABLE = {"collect", "pretrain", "diffuse"}  # stages whose run_<stage> takes resume=RUN


@dataclass(frozen=True)
class StepResult:
    step: str
    state: str  # "ran" | "reused" | "resumed" | "planned" (dry run)
    run_id: str | None = None
    summary: dict[str, Any] | None = None


def stage_config(
    workspace: Workspace,
    stage: str,
    preset: str | None,
    flags: dict[str, Any],
    overrides: list[str] | None = None,
) -> StageConfig:
    """A stage's config from the workspace presets, `--set` overrides and flags (as its CLI command does)."""
    load_stage_configs()
    model = stage_models()[stage]
    return resolve_config(model, stage, workspace=workspace, preset=preset, overrides=overrides, flags=flags)


def run_stage(
    workspace: Workspace, stage: str, config: StageConfig, argv: list[str], resume: str | None = None
) -> Run:
    """Call `pdiff.stages.<stage>.run_<stage>` in this process (single process: rank 0 owns the run)."""
    runner = getattr(importlib.import_module(f"pdiff.stages.{stage}"), f"run_{stage}")
    kwargs = {"resume": resume} if resume else {}
    run = runner(workspace, config, argv=argv, **kwargs)[0]
    assert run is not None  # only a non-zero torchrun rank returns no run
    return run


def same_config(
    stage: str, config: StageConfig, ignore: frozenset[str] = frozenset()
) -> Callable[[Run], bool]:
    """A matcher of runs whose recorded config equals `config` (keys in `ignore` aside)."""
    wanted = {k: v for k, v in config.model_dump(mode="json").items() if k not in ignore}
    return lambda run: (
        run.stage == stage and {k: v for k, v in run.config.items() if k not in ignore} == wanted
    )


def finished_match(
    workspace: Workspace, stage: str, family: str | None, matches: Callable[[Run], bool]
) -> Run | None:
    """The newest FINISHED run of `stage` that `matches`, or None."""
    done = [r for r in list_runs(workspace, stage, family) if r.status is RunStatus.FINISHED and matches(r)]
    return done[-1] if done else None


def interrupted_match(
    workspace: Workspace, stage: str, family: str | None, matches: Callable[[Run], bool]
) -> Run | None:
    """The newest run of `stage` that `matches` and was interrupted (stale RUNNING or KILLED), if resumable."""
    if stage not in RESUMABLE:
        return None
    runs = [
        r
        for r in list_runs(workspace, stage, family)
        if (r.is_stale() or r.status is RunStatus.KILLED) and matches(r)
    ]
    return runs[-1] if runs else None


# -- pdiff demo ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    name: str
    stage: str
    flags: dict[str, Any]
    matches: Callable[[Run], bool] = lambda run: True


STEPS = (
    Step("collect", "collect", {}),
    Step("pretrain", "pretrain", {}),
    Step(
        "eval prompt-dt (few-shot prompt)",
        "eval",
        {"prompt": "fewshot"},
        lambda r: r.config.get("prompt") == "fewshot",
    ),  # fmt: skip
    Step(
        "eval random prompt (control)",
        "eval",
        {"prompt": "random"},
        lambda r: r.config.get("prompt") == "random",
    ),  # fmt: skip
    Step("diffuse", "diffuse", {}),
    Step("tune prompt-diffuser", "tune", {}, lambda r: r.config.get("method") == "prompt-diffuser"),
    Step("eval prompt-diffuser", "eval", {"prompt": "auto"}, lambda r: r.config.get("tune_run") is not None),
)


def run_pipeline(workspace: Workspace, env: str, preset: str, argv: list[str]) -> list[StepResult]:
    """Run each step unless a finished run of it exists for `env`, then a report of the evaluations."""
    results: list[StepResult] = []
    for step in STEPS:
        done = finished_match(workspace, step.stage, env, step.matches)
        if done is not None:
            log.info("demo: %s already finished for %s (%s): reusing it", step.name, env, done.run_id)
            results.append(StepResult(step.name, "reused", done.run_id, done.manifest.get("summary")))
            continue
        log.info("demo: %s for %s (preset %s)", step.name, env, preset)
        config = stage_config(workspace, step.stage, preset, {"env": env, **step.flags})
        run = run_stage(workspace, step.stage, config, argv)
        results.append(StepResult(step.name, "ran", run.run_id, run.manifest.get("summary")))
    evaluated = sorted(r.run_id for r in results if r.step.startswith("eval") and r.run_id)
    config = stage_config(workspace, "report", preset, {"runs": evaluated})
    done = finished_match(workspace, "report", None, same_config("report", config))
    if done is not None:
        results.append(StepResult("report", "reused", done.run_id, done.manifest.get("summary")))
    else:
        run = run_stage(workspace, "report", config, argv)
        results.append(StepResult("report", "ran", run.run_id, run.manifest.get("summary")))
    return results
