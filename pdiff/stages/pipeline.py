"""The whole pipeline in order, for `pdiff demo` (and later `pdiff reproduce`): skip what finished."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pdiff.config import resolve_config
from pdiff.console import log
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import Run, RunStatus, list_runs


@dataclass(frozen=True)
class StepResult:
    step: str
    state: str  # "ran" | "reused" | "missing"
    run_id: str | None = None
    summary: dict[str, Any] | None = None


@dataclass(frozen=True)
class Step:
    name: str
    stage: str
    run: Callable[[Workspace, str, str, list[str]], Run] | None
    matches: Callable[[Run], bool] = lambda run: True


def _collect(workspace: Workspace, env: str, preset: str, argv: list[str]) -> Run:
    from pdiff.stages.collect import CollectConfig, run_collect

    config = resolve_config(CollectConfig, "collect", workspace=workspace, preset=preset, flags={"env": env})
    return run_collect(workspace, config, argv=argv)[0]


def _pretrain(workspace: Workspace, env: str, preset: str, argv: list[str]) -> Run:
    from pdiff.stages.pretrain import PretrainConfig, run_pretrain

    config = resolve_config(
        PretrainConfig, "pretrain", workspace=workspace, preset=preset, flags={"env": env}
    )
    run = run_pretrain(workspace, config, argv=argv)[0]
    assert run is not None  # the demo is a single process
    return run


def _diffuse(workspace: Workspace, env: str, preset: str, argv: list[str]) -> Run:
    from pdiff.stages.diffuse import DiffuseConfig, run_diffuse

    config = resolve_config(DiffuseConfig, "diffuse", workspace=workspace, preset=preset, flags={"env": env})
    return run_diffuse(workspace, config, argv=argv)[0]


def _tune(workspace: Workspace, env: str, preset: str, argv: list[str]) -> Run:
    from pdiff.stages.tune import TuneConfig, run_tune

    config = resolve_config(TuneConfig, "tune", workspace=workspace, preset=preset, flags={"env": env})
    return run_tune(workspace, config, argv=argv)[0]


def _eval(prompt: str) -> Callable[[Workspace, str, str, list[str]], Run]:
    def run_step(workspace: Workspace, env: str, preset: str, argv: list[str]) -> Run:
        from pdiff.stages.eval import EvalConfig, run_eval

        flags = {"env": env, "prompt": prompt}
        config = resolve_config(EvalConfig, "eval", workspace=workspace, preset=preset, flags=flags)
        return run_eval(workspace, config, argv=argv)[0]

    return run_step


STEPS = (
    Step("collect", "collect", _collect),
    Step("pretrain", "pretrain", _pretrain),
    Step(
        "eval prompt-dt (few-shot prompt)",
        "eval",
        _eval("fewshot"),
        lambda r: r.config.get("prompt") == "fewshot",
    ),
    Step(
        "eval random prompt (control)", "eval", _eval("random"), lambda r: r.config.get("prompt") == "random"
    ),
    Step("diffuse", "diffuse", _diffuse),
    Step("tune prompt-diffuser", "tune", _tune, lambda r: r.config.get("method") == "prompt-diffuser"),
    Step("eval prompt-diffuser", "eval", _eval("auto"), lambda r: r.config.get("tune_run") is not None),
    Step("report", "report", None),
)


def run_pipeline(workspace: Workspace, env: str, preset: str, argv: list[str]) -> list[StepResult]:
    """Run each implemented step unless a finished run of it exists for `env`; list the missing ones."""
    results: list[StepResult] = []
    for step in STEPS:
        if step.run is None:
            results.append(StepResult(step.name, "missing"))
            continue
        done = [
            r
            for r in list_runs(workspace, step.stage, env)
            if r.status is RunStatus.FINISHED and step.matches(r)
        ]
        if done:
            log.info("demo: %s already finished for %s (%s): reusing it", step.name, env, done[-1].run_id)
            results.append(StepResult(step.name, "reused", done[-1].run_id, done[-1].manifest.get("summary")))
            continue
        log.info("demo: %s for %s (preset %s)", step.name, env, preset)
        run = step.run(workspace, env, preset, argv)
        results.append(StepResult(step.name, "ran", run.run_id, run.manifest.get("summary")))
    return results
