"""Stages composed as library calls: `pdiff demo` (one family, a small plan of `pdiff reproduce` steps) and
the shared helpers `pdiff reproduce` builds its matrix on (resolve a stage config, find a finished run of
exactly that config, resume a stale one, run a stage)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from pdiff.config import StageConfig, resolve_config, stage_models
from pdiff.stages import load_stage_configs
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import Run, RunStatus, list_runs

if TYPE_CHECKING:
    from pdiff.stages.reproduce import Step

RESUMABLE = {"collect", "pretrain", "diffuse", "tune"}  # stages that keep work done before a kill


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
    """A matcher of runs whose recorded config equals `config` (keys in `ignore` aside). A config recorded
    before some setting existed is read as the run ran, so upgrading pdiff does not redo finished work."""
    wanted = {k: v for k, v in config.model_dump(mode="json").items() if k not in ignore}

    def matches(run: Run) -> bool:
        if run.stage != stage:
            return False
        recorded = run.config
        if set(recorded) != set(type(config).model_fields):
            try:  # recorded by an older pdiff: read as it ran (settings added since take OLDER or defaults)
                recorded = type(config).model_validate(recorded).model_dump(mode="json")
            except ValidationError:
                return False
        return {k: v for k, v in recorded.items() if k not in ignore} == wanted

    return matches


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

PD_TUNE = "tune prompt-diffuser"


def demo_steps(family: str) -> list[Step]:
    """`pdiff demo` as a small `reproduce` plan: each step names its upstream runs, so a finished run is
    reused only when its stage, family and resolved config (inputs included) are the ones the demo asks for."""
    from pdiff.stages.reproduce import Step, pretrain_datasets_match  # noqa: F811 - reproduce imports this module

    env = {"env": family}
    fewshot, control, diffuser = (
        "eval prompt-dt (few-shot prompt)",
        "eval random prompt (control)",
        "eval prompt-diffuser",
    )
    tune = {**env, "method": "prompt-diffuser", "pretrain_run": "@pretrain", "diffuse_run": "@diffuse"}
    return [
        # The kinds the demo reads (reproduce's rule for expert few-shot data): a collect holding them counts.
        Step(
            "collect",
            "collect",
            family,
            {**env, "kinds": ["expert", "prompt-expert"]},
            ignore=frozenset({"kinds"}),
        ),
        Step("pretrain", "pretrain", family, env, extra_match=pretrain_datasets_match),
        Step(fewshot, "eval", family, {**env, "pretrain_run": "@pretrain", "prompt": "fewshot"}),
        Step(control, "eval", family, {**env, "pretrain_run": "@pretrain", "prompt": "random"}),
        Step("diffuse", "diffuse", family, {**env, "pretrain_run": "@pretrain"}),
        Step(PD_TUNE, "tune", family, tune),
        Step(diffuser, "eval", family, {**env, "tune_run": f"@{PD_TUNE}"}),
        Step("report", "report", None, {"runs": [f"@{name}" for name in (fewshot, control, diffuser)]}),
    ]


def run_pipeline(workspace: Workspace, env: str, preset: str, argv: list[str]) -> list[StepResult]:
    """Run each step unless a finished run of exactly its settings exists, then a report of the evaluations."""
    from pdiff.envs import get_family
    from pdiff.stages.reproduce import run_steps

    return run_steps(workspace, demo_steps(get_family(env).name), preset=preset, argv=argv)[0]
