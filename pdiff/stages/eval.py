"""`pdiff eval`: roll a frozen Prompt-DT out on every test task of its family.

Without a tuning run this is the `prompt-dt` baseline: each test task's prompt is the tail of one of the
seed's N few-shot episodes (`--shots`, `--data-kind`). `--prompt random` replaces the prompt with noise: the
control that shows the prompt carries the task. A tune run is evaluated with its prompts. On Meta-World, whose
resets do not vary, every (seed, task) runs N prompts once each, whatever the method (pdiff.rollouts.plan).
When its method changed weights, each (seed, task) is rolled out with its own model rebuilt from the frozen
Prompt-DT plus the run's tuned tensors (pdiff.rollouts.seed_rollouts). The prompts:
pdiff.rollouts.prompt_sources; the scores: pdiff.rollouts.scoring. This stage resolves the runs to evaluate,
and records the run.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from pdiff.compute import ComputeConfig
from pdiff.config import register_stage_config
from pdiff.console import log
from pdiff.data.fewshot import tasks_kind
from pdiff.data.prompts_file import read_prompts
from pdiff.envs import get_family
from pdiff.errors import UsageError
from pdiff.methods.finetuning import load_tuned, tuned_path
from pdiff.methods.registry import METHODS, changes_weights
from pdiff.rollouts.episode_files import write_episodes, write_videos
from pdiff.rollouts.prompt_sources import prompts_per_task, seed_prompts
from pdiff.rollouts.rollout import FrozenPolicy
from pdiff.rollouts.scoring import reference_returns, summarise
from pdiff.rollouts.seed_rollouts import TunedModel, roll_out_seeds
from pdiff.stages.common import load_policies, open_run, record_runs, run_compute, runs_per_seed, stage_run
from pdiff.workspace.atomic import atomic_write_json
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import (
    Run,
    RunStatus,
    find_run,
    latest_finished,
    list_runs,
    require_finished,
    uses_full_data,
)
from pdiff.workspace.verification import verified_output


class EvalConfig(ComputeConfig):
    OLDER: ClassVar[dict[str, Any]] = {"threads": None, "precision": "fp32"}
    env: str | None = Field(None, description="Task family (default: that of the evaluated run).")
    pretrain_run: str | None = Field(
        None, description="Pretrain run to evaluate (default: the latest finished)."
    )
    pretrain_runs: list[str] | None = Field(
        None,
        description="One Prompt-DT per seed, in the order of `seeds` (a tune run's own when it has them); "
        "default: pretrain_run for every seed.",
    )
    tune_run: str | None = Field(None, description="Tune run whose prompts to evaluate.")
    prompt: Literal["auto", "fewshot", "random"] = Field(
        "auto",
        description="auto: the prompts of the latest tune run with these `shots` and `data_kind` if one "
        "exists, else few-shot; fewshot: the prompt-dt baseline; random: noise (control).",
    )
    shots: int = Field(
        5,
        ge=0,
        description="Few-shot episodes per test task the prompt is cut from (0: a zero-shot tune run's).",
    )
    data_kind: str = Field("expert", description="Quality of the few-shot data: expert | medium | random.")
    seeds: list[int] = Field(
        [0, 1, 2], min_length=1, description="Seeds (few-shot episodes, prompt choice and episode resets)."
    )
    episodes: int = Field(
        10,
        ge=1,
        description="Episodes per prompt where resets vary (MuJoCo). Meta-World ignores reset seeds, so each "
        "prompt runs once there and every (seed, task) runs `shots` prompts, whatever the method.",
    )
    tasks: list[int] | None = Field(None, description="Tasks to evaluate (default: the family's test tasks).")
    horizon: int | None = Field(None, ge=1, description="Episode length (default: the family's).")
    video: int = Field(0, ge=0, description="Record GIFs of the first N episodes of each task (first seed).")
    workers: int = Field(
        1, ge=1, description="Processes stepping the simulators (1: this one); results do not depend on it."
    )

    @field_validator("tasks")
    @classmethod
    def _each_task_once(cls, tasks: list[int] | None) -> list[int] | None:
        return list(dict.fromkeys(tasks)) if tasks is not None else None

    @model_validator(mode="after")
    def _one_prompt_dt_per_seed(self) -> EvalConfig:
        if self.pretrain_runs is not None and len(self.pretrain_runs) != len(self.seeds):
            raise ValueError(
                f"pretrain_runs names {len(self.pretrain_runs)} runs for {len(self.seeds)} seeds"
            )
        return self


register_stage_config("eval", EvalConfig)


def evaluate(
    workspace: Workspace, run: Run, config: EvalConfig, sources: dict[int, Run], tuned: Run | None
) -> dict[str, Any]:
    family = get_family(config.env or sources[config.seeds[0]].family or "")
    compute = run_compute(config, workspace, run)
    policies = load_policies(sources, compute.torch_device, family.name, compute)
    tasks = config.tasks or list(family.test_tasks)
    horizon = family.resolve_horizon(config.horizon, max_horizon=getattr(family, "max_horizon", None))
    stored = read_prompts(verified_output(tuned, tuned.dir / "prompts.h5"))[0] if tuned is not None else None
    count = prompts_per_task(family, config, max(map(len, stored.values())) if stored else 1)
    prompts = {
        seed: seed_prompts(
            workspace.datasets_dir, family, tasks, config, policies[seed], seed, tuned, stored, count
        )
        for seed in config.seeds
    }
    episodes, seed_of = roll_out_seeds(
        family,
        policies,
        tasks,
        prompts,
        config.episodes,
        horizon,
        tuned_model=tuned_model(tuned, policies),
        video=config.video,
        workers=config.workers,
    )
    references = {t: reference_returns(workspace.datasets_dir, family, t) for t in tasks}
    run.record_output(write_episodes(run.dir / "eval", episodes, seed_of), "eval_episodes")
    for video in write_videos(run.dir / "eval" / "videos", episodes) if config.video else []:
        run.record_output(video, "video")
    return {
        **summarise(config.seeds, tasks, episodes, seed_of, references),
        "prompt": config.prompt,
        "shots": config.shots,
        "data_kind": config.data_kind,
        "seeds": config.seeds,
        "tasks": tasks,
        "episodes_per_task": len(episodes) // (len(config.seeds) * len(tasks)),
    }


def tuned_model(tuned: Run | None, policies: dict[int, FrozenPolicy]) -> TunedModel | None:
    """A weight-changing tune run's (seed, task) → its model; None where the prompts alone differ."""
    if tuned is None or not changes_weights(tuned.config["method"]):
        return None
    method, tuned_dir = tuned.config["method"], tuned.dir
    return lambda seed, task: load_tuned(
        policies[seed].model, tuned_path(tuned_dir, seed, task), method, METHODS[method].attach
    )


def resolve_sources(workspace: Workspace, config: EvalConfig) -> tuple[dict[int, Run], Run | None]:
    """(the Prompt-DT of each seed, tune run or None): explicit runs first, else the latest finished for the
    family. A tune run brings its own Prompt-DT(s)."""
    tuned = require_finished(find_run(workspace, config.tune_run, "tune")) if config.tune_run else None
    if tuned is None:
        if config.pretrain_runs:
            return runs_per_seed(workspace, "pretrain", config.seeds, config.pretrain_runs), None
        if config.pretrain_run:
            shared = require_finished(find_run(workspace, config.pretrain_run, "pretrain"))
            return dict.fromkeys(config.seeds, shared), None
        if config.env is None:
            raise UsageError("no run to evaluate", hint="pass --env FAMILY, --pretrain RUN or --tune RUN")
        family = get_family(config.env).name
        tuned_runs = (
            [
                r
                for r in list_runs(workspace, "tune", family)
                if r.status is RunStatus.FINISHED
                and not uses_full_data(workspace, r)
                and (r.config.get("shots"), r.config.get("data_kind")) == (config.shots, config.data_kind)
            ]
            if config.prompt == "auto"
            else []
        )
        if not tuned_runs:
            if config.prompt == "auto":
                log.info(
                    "prompt auto: no finished %s tune run with %d %s shots: the few-shot prompt (prompt-dt)",
                    family,
                    config.shots,
                    config.data_kind,
                )
            return dict.fromkeys(
                config.seeds, require_finished(latest_finished(workspace, "pretrain", family))
            ), None
        tuned = tuned_runs[-1]
        log.info(
            "prompt auto: the latest tune run with these shots, %s (%s)", tuned.run_id, tuned.config["method"]
        )
    seeds = tuned.config["seeds"]
    refs = tuned.config.get("pretrain_runs") or [tuned.config["pretrain_run"]] * len(seeds)
    return {
        seed: require_finished(find_run(workspace, ref, "pretrain"))
        for seed, ref in zip(seeds, refs, strict=True)
    }, tuned


def method_name(config: EvalConfig, tuned: Run | None, source: Run | None = None) -> str:
    if tuned is not None:
        return str(tuned.config["method"])
    if config.prompt == "random":
        return "random-prompt"
    full_data = source is not None and source.config.get("include_test_tasks")
    return "full-data" if full_data else "prompt-dt"


def run_eval(
    workspace: Workspace, config: EvalConfig, *, argv: list[str], resume: str | None = None
) -> tuple[Run, dict[str, Any]]:
    if resume is not None:  # evaluation is redone from the start, with the run's recorded config and inputs
        config = EvalConfig.model_validate(find_run(workspace, resume, "eval").config)
    sources, tuned = resolve_sources(workspace, config)
    source = next(iter(sources.values()))
    family = get_family(config.env or source.family or "")
    per_seed = bool(config.pretrain_runs or (tuned is not None and tuned.config.get("pretrain_runs")))
    update: dict[str, Any] = {
        "env": family.name,
        "pretrain_run": source.run_id,
        "pretrain_runs": [r.run_id for r in sources.values()] if per_seed else None,
    }
    tasks = [family.check_task_id(t) for t in config.tasks] if config.tasks else None
    if tuned is not None:
        # a tune run's tasks (training tasks for a fidelity measurement) are the ones it has prompts for
        tuned_tasks = tuned.config.get("tasks") or list(family.test_tasks)
        if missing := [t for t in tasks or [] if t not in tuned_tasks]:
            raise UsageError(
                f"--tasks: tune run {tuned.run_id} has no prompt for task {missing[0]}",
                hint=f"its tasks: {', '.join(map(str, tuned_tasks))}",
            )
        update.update(
            tune_run=tuned.run_id,
            prompt="auto",
            seeds=tuned.config["seeds"],
            tasks=tasks or tuned.config.get("tasks"),
            shots=tuned.config["shots"],
            data_kind=tuned.config["data_kind"],
        )
    elif config.shots == 0:
        raise UsageError(
            "eval --shots 0 needs a zero-shot tune run to evaluate",
            hint="pdiff tune --shots 0 --method prompt-diffuser|prompt-dt, then pdiff eval --tune RUN",
        )
    else:
        update["tasks"] = tasks
        if config.prompt == "auto":
            update["prompt"] = "fewshot"
    config = config.model_copy(update=update)
    method = method_name(config, tuned, source)
    run, config = open_run(
        workspace,
        "eval",
        config,
        argv=argv,
        family=family.name,
        seed=config.seeds[0],
        slug=f"{family.name}-{method}",
        resume=resume,
    )
    with stage_run(run):
        record_runs(run, "pretrain", sources.values())
        if tuned is not None:
            run.record_input("tune", tuned.run_id, None)
        summary = evaluate(workspace, run, config, sources, tuned)
        summary["method"] = method
        summary["tasks_kind"] = tasks_kind(family, summary["tasks"])
        atomic_write_json(
            run.dir / "eval" / "results.json",
            {
                "family": family.name,
                "pretrain_run": source.run_id,
                "tune_run": tuned.run_id if tuned else None,
                **summary,
            },
        )
        run.record_output(run.dir / "eval" / "results.json", "eval_results")
        run.manifest["summary"].update({k: v for k, v in summary.items() if k != "per_task"})
        run.save()
    return run, summary
