"""`pdiff tune`: adapt to each test task from N few-shot episodes, for every seed (N = 0: zero-shot, from the
training tasks' prompts alone; pdiff.methods.zero_shot).

Every method stores the prompts of each (seed, test task) in `prompts.h5` (states normalised as the frozen
Prompt-DT reads them): one, or where the family's resets do not vary, one per few-shot episode for the methods
whose prompt comes from the few-shot data (prompt-dt, prompt-diffuser, and the weight-tuning methods' tuned
models are rolled out with each few-shot prompt); ptdt keeps the one prompt it learns. Weight-changing methods (soft-prompt, adaptor, lora, full-ft) also store their tuned
tensors per (seed, task) in `tuned/seed-S/task-NN.safetensors`; `pdiff eval` rebuilds each task's model from
the frozen Prompt-DT plus that file (pdiff.methods.finetuning). The frozen Prompt-DT itself never changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, create_model, model_validator

from pdiff.compute import ComputeConfig, setup_compute
from pdiff.config import register_stage_config
from pdiff.console import StageProgress
from pdiff.data.batches import Segments
from pdiff.data.fewshot import fewshot_record, tasks_kind
from pdiff.data.prompts_file import write_prompts
from pdiff.distributed import (
    DistInfo,
    broadcast,
    gather_to_main,
    init_distributed,
    resolve_device,
    shard_jobs,
    shutdown,
)
from pdiff.envs import get_family
from pdiff.envs.base import TaskFamily
from pdiff.errors import UsageError
from pdiff.methods.base import load_fewshot
from pdiff.methods.context import choose_settings, method_settings, task_context
from pdiff.methods.finetuning import save_tuned, tuned_path
from pdiff.methods.options import MethodOptions, nest_flat_options
from pdiff.methods.registry import DEFAULT_METHOD, METHODS, NEEDS_DIFFUSE, option_sections, options_model
from pdiff.methods.selection import grid_for, with_overrides
from pdiff.methods.zero_shot import (
    SETTING_TEXT,
    ZeroShotPrompts,
    ZeroShotSetting,
    check_zero_shot,
    training_prompts,
)
from pdiff.stages.common import checkpoint_of, load_policies, open_run, runs_per_seed, stage_run
from pdiff.stages.tune_progress import TuneProgress, clear_progress, inputs_of
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import Run, find_run, latest_finished, require_finished

MethodName = Literal[tuple(METHODS)]


class SharedTuneConfig(ComputeConfig):
    """The tune settings every method shares; TuneConfig adds each method's own section."""

    OLDER: ClassVar[dict[str, Any]] = {
        "selection": "off",
        "diffuse_runs": None,
        "pretrain_runs": None,
        "zero_shot_source": "nearest",  # older runs were never zero-shot: the value is never read
        "threads": None,
        "precision": "fp32",
        # before early stopping every trial ran `steps`: scored there alone, which is a fixed budget
        "eval_every": lambda data: max(1, int(data.get("steps") or 1)),
        "patience": 3,
        "tasks": None,  # the test tasks, as before the setting existed
    }
    env: str | None = Field(None, description="Task family (default: that of the input run).")
    method: MethodName = Field(DEFAULT_METHOD, description="Tuning method (docs/tuning-methods.md).")
    shots: int = Field(
        5, ge=0, description="Few-shot episodes per test task; 0: zero-shot (prompt-diffuser, prompt-dt)."
    )
    tasks: list[int] | None = Field(
        None,
        description="Tasks to adapt to (default: the family's test tasks). Training tasks only for prompt-diffuser "
        "and prompt-dt, with few-shot data: the generator's fidelity on data it was trained on, not a test.",
    )
    zero_shot_source: ZeroShotSetting = Field(
        "nearest",
        description="shots=0 [ours], the same information for both methods: "
        + "; ".join(f"{name}: {text}" for name, text in SETTING_TEXT.items())
        + ".",
    )
    data_kind: str = Field("expert", description="Quality of the few-shot data: expert | medium | random.")
    seeds: list[int] = Field(
        [0, 1, 2],
        min_length=1,
        description="Seeds (one adaptation per seed and task; each its own episodes).",
    )
    diffuse_run: str | None = Field(
        None, description="Diffusion model (prompt-diffuser; default: latest finished)."
    )
    diffuse_runs: list[str] | None = Field(
        None,
        description="prompt-diffuser: one diffusion model per seed, in the order of `seeds`, so that each seed "
        "adapts its own (all from one Prompt-DT); default: diffuse_run for every seed.",
    )
    pretrain_run: str | None = Field(
        None, description="Frozen Prompt-DT (default: the diffuse run's, or latest)."
    )
    pretrain_runs: list[str] | None = Field(
        None,
        description="One frozen Prompt-DT per seed, in the order of `seeds` (trained alike but for their seed), "
        "so that a spread over seeds includes pretraining; default: pretrain_run for every seed.",
    )
    steps: int = Field(
        200,
        ge=0,
        description="Fine-tuning steps per (seed, task) (ptdt: rounds); with selection=holdout the cap, and the "
        "selection chooses how many by early stopping (docs/protocol.md).",
    )
    batch_size: int = Field(32, ge=1, description="Segments per fine-tuning step.")
    selection: Literal["holdout", "off"] = Field(
        "holdout",
        description="holdout: the learning rate (ptdt: η) and the number of steps are chosen together, by the "
        "held-out few-shot episode's action loss (docs/protocol.md); off: use lr and steps.",
    )
    eval_every: int = Field(
        10,
        ge=1,
        description="selection=holdout: score each trial on the held-out episode every this many steps (and at "
        "the cap); a value of `steps` or more scores at the cap alone, a fixed budget.",
    )
    patience: int = Field(
        3, ge=1, description="selection=holdout: a trial stops after this many scores without a new best."
    )
    lr: float | None = Field(
        None,
        gt=0,
        description="Learning rate (ptdt: η) with selection=off. Default per method: "
        + ", ".join(
            f"{name} {module.DEFAULT_LR:.0e}" for name, module in METHODS.items() if module.DEFAULT_LR
        )
        + ".",
    )
    grad_clip: float | None = Field(1.0, gt=0, description="Gradient-norm clip while tuning.")

    @model_validator(mode="before")
    @classmethod
    def _nested_options(cls, data: Any) -> Any:
        """Configs recorded before each method had its own section held its options as flat settings."""
        return nest_flat_options(data) if isinstance(data, dict) else data

    def options(self) -> MethodOptions:
        """The tuned method's own options (its section; a method without one has none to set)."""
        return getattr(self, self.method, None) or options_model(self.method)()

    @model_validator(mode="after")
    def _method_lr(self) -> SharedTuneConfig:
        for name, runs in (("diffuse_runs", self.diffuse_runs), ("pretrain_runs", self.pretrain_runs)):
            if runs is not None and len(runs) != len(self.seeds):
                raise ValueError(f"{name} names {len(runs)} runs for {len(self.seeds)} seeds")
        if self.selection == "holdout" and self.lr is not None and grid_for(self.method).get("lr"):
            raise ValueError("lr is chosen by the selection protocol; add selection=off to fix it yourself")
        # Resolved here so a recorded config and a re-requested one compare equal (reproduce's skip test).
        if self.lr is None and self.method in METHODS and self.selection == "off":
            object.__setattr__(self, "lr", METHODS[self.method].DEFAULT_LR)
        return self


# One section per method with options of its own, named as the method: `--set ptdt.population=15`. A section
# of another method than the one tuned is recorded but not read.
SECTIONS = {
    name: (model, Field(default_factory=model, description=f"{name}'s own options."))
    for name, model in option_sections().items()
}
TuneConfig = create_model("TuneConfig", __base__=SharedTuneConfig, __module__=__name__, **SECTIONS)
register_stage_config("tune", TuneConfig)


def resolve_inputs(workspace: Workspace, config: TuneConfig) -> tuple[dict[int, Run], dict[int, Run] | None]:
    """(the Prompt-DT of each seed, the diffusion model of each seed or None), all FINISHED."""
    diffuse = None
    if config.method in NEEDS_DIFFUSE:
        if config.diffuse_runs:  # their Prompt-DTs are checked below, against each seed's
            diffuse = runs_per_seed(
                workspace, "diffuse", config.seeds, config.diffuse_runs, frozenset({"pretrain_run"})
            )
        elif config.diffuse_run:
            diffuse = dict.fromkeys(
                config.seeds, require_finished(find_run(workspace, config.diffuse_run, "diffuse"))
            )
        elif config.env:
            latest = require_finished(latest_finished(workspace, "diffuse", get_family(config.env).name))
            diffuse = dict.fromkeys(config.seeds, latest)
        else:
            raise UsageError("no diffusion model to tune", hint="pass --env FAMILY or --diffuse RUN")
    if config.pretrain_runs:
        pretrain = runs_per_seed(workspace, "pretrain", config.seeds, config.pretrain_runs)
    else:
        if diffuse is not None:
            sources = {run.config["pretrain_run"] for run in diffuse.values()}
            if len(sources) > 1:
                raise UsageError(f"the diffusion models were guided by different Prompt-DTs ({', '.join(sorted(sources))})",
                                 hint="give diffuse_runs trained from one pretrain run, or each seed's in pretrain_runs")  # fmt: skip
            shared = find_run(workspace, sources.pop(), "pretrain")
        elif config.pretrain_run:
            shared = find_run(workspace, config.pretrain_run, "pretrain")
        elif config.env:
            shared = latest_finished(workspace, "pretrain", get_family(config.env).name)
        else:
            raise UsageError("no Prompt-DT to tune", hint="pass --env FAMILY or --pretrain RUN")
        pretrain = dict.fromkeys(config.seeds, require_finished(shared))
    for seed, run in (diffuse or {}).items():
        if run.config["pretrain_run"] != pretrain[seed].run_id:
            raise UsageError(f"the diffusion model of seed {seed} ({run.run_id}) was guided by {run.config['pretrain_run']}, "
                             f"not by that seed's Prompt-DT {pretrain[seed].run_id}",
                             hint="give each seed the diffusion model trained from its own Prompt-DT")  # fmt: skip
    return pretrain, diffuse


# The methods whose prompts are compared on training tasks (the generator's fidelity, docs/study.md).
FIDELITY_METHODS = ("prompt-diffuser", "prompt-dt")


def tune_tasks(config: TuneConfig, family: TaskFamily) -> list[int]:
    """The tasks to adapt to: `tasks`, checked, or the family's test tasks."""
    if config.tasks is None:
        return list(family.test_tasks)
    tasks = list(dict.fromkeys(family.check_task_id(t) for t in config.tasks))
    trained_on = [t for t in tasks if t not in family.test_tasks]
    if trained_on and config.method not in FIDELITY_METHODS:
        raise UsageError(f"tasks: {trained_on[0]} is a training task of {family.name}, and {config.method} "
                         f"tunes on test tasks only", hint=f"methods that may: {', '.join(FIDELITY_METHODS)}; "
                         f"test tasks: {', '.join(map(str, family.test_tasks))}")  # fmt: skip
    if trained_on and not config.shots:
        raise UsageError(f"tasks: {trained_on[0]} is a training task of {family.name}, and shots=0 has no "
                         "few-shot data to tune on", hint="use --shots N with N ≥ 1")  # fmt: skip
    return tasks


def tune(
    run: Run | None,
    workspace: Workspace,
    config: TuneConfig,
    pretrain: dict[int, Run],
    diffuse: dict[int, Run] | None,
    info: DistInfo = DistInfo(),
    run_dir: Path | None = None,
) -> dict[str, Any]:
    """Every (seed, task) adaptation; under torchrun each rank takes a share of them and rank 0 writes all."""
    run_dir = run.dir if run is not None else run_dir
    family = get_family(config.env or "")
    compute = setup_compute(config, workspace.root, run.manifest.get("compute") if run else None, info)
    if run is not None:
        run.manifest["compute"] = compute.record()
    device = compute.torch_device
    policies = load_policies(pretrain, device, family.name, compute)
    tasks = tune_tasks(config, family)
    fewshot = {seed: load_fewshot(workspace.datasets_dir, family.name, tasks, config.data_kind, config.shots, seed)
               for seed in config.seeds if config.shots}  # fmt: skip
    # zero-shot sources: the family's training tasks, also under a full-data Prompt-DT (never other test tasks);
    # one bank per Prompt-DT, as each normalises the prompts its own way
    banks: dict[str, ZeroShotPrompts] = {}
    for seed in config.seeds if not config.shots else []:
        if pretrain[seed].run_id not in banks:
            banks[pretrain[seed].run_id] = training_prompts(workspace.datasets_dir, family, family.training_tasks(),
                                                            policies[seed], config.zero_shot_source)  # fmt: skip
    sources = {seed: banks[pretrain[seed].run_id] for seed in config.seeds if not config.shots}
    # `nearest`: both methods take the nearest training task's episodes as few-shot data; `none`: the prompts
    zero_shot = {seed: s for seed, s in sources.items() if s.setting == "none"}
    fewshot.update({seed: s.nearest_episodes(tasks) for seed, s in sources.items() if s.setting == "nearest"})
    settings = {seed: method_settings(config, family, checkpoint_of(diffuse[seed]) if diffuse else None, compute)
                for seed in config.seeds}  # fmt: skip
    method = METHODS[config.method]
    prompts: dict[tuple[int, int], Segments] = {}
    per_task: dict[str, Any] = {}
    tunable = 0
    jobs = [(seed, task) for seed in config.seeds for task in tasks]
    # a deterministic family's rollout repeats itself, so its cells vary the prompt instead (pdiff.eval.plan)
    per_episode = config.shots > 0 and not family.resets_vary
    # torchrun's ranks keep no progress (they would race for its files)
    progress = TuneProgress(run_dir, inputs_of(device, fewshot, zero_shot)) if not info.enabled else None
    kept = (progress.trial_curve, progress.add_trial) if progress is not None else (None, None)
    selection = choose_settings(config, jobs, fewshot, settings, policies, device, *kept)
    chosen = broadcast(
        {**selection.chosen, "steps": selection.steps} if selection is not None else {}, info
    )  # rank 0's choice, whatever ties
    with StageProgress(
        f"tune {config.method} {family.name}", total=len(jobs), unit="(seed, task) adaptations"
    ) as bar:
        for seed, task in shard_jobs(jobs, info):  # jobs are independent: each seeds its own generators
            result = progress.result(seed, task) if progress is not None else None
            reused = result is not None
            if not reused:
                context = task_context(policies[seed], fewshot.get(seed), seed, task, with_overrides(settings[seed], chosen),
                                       device, run_dir / "tuned", zero_shot=zero_shot.get(seed),
                                       prompt_per_episode=per_episode)  # fmt: skip
                result = method.tune_task(context)
                weights = tuned_path(run_dir, seed, task) if result.model is not None else None
                if weights is not None:  # before the record, which names it
                    save_tuned(weights, result.model, config.method, result.options)
                if progress is not None:
                    progress.add_result(seed, task, result, weights)
            prompts[(seed, task)] = result.prompt
            tunable = result.tunable_parameters
            per_task[f"seed-{seed}/task-{task:02d}"] = result.metrics
            bar.update(1, reused=reused, task=task)
    shares = gather_to_main((prompts, per_task, tunable), info)
    recorded = {"selection": selection.to_dict()} if selection is not None else {}
    if run is None or shares is None:  # a non-zero rank: rank 0 writes every rank's prompts
        return {}
    for share_prompts, share_metrics, share_tunable in shares:  # back in job order
        prompts.update(share_prompts)
        per_task.update(share_metrics)
        tunable = max(tunable, share_tunable)
    prompts = {job: prompts[job] for job in jobs}
    per_task = {key: per_task[key] for key in (f"seed-{s}/task-{t:02d}" for s, t in jobs)}
    write_prompts(run.dir / "prompts.h5", prompts, {"method": config.method, "states": "normalised",
                                                    "returns_to_go": "divided by rtg_scale"})  # fmt: skip
    run.record_output(run.dir / "prompts.h5", "prompts")
    if (run.dir / "tuned").is_dir():
        run.record_output(run.dir / "tuned", "tuned_weights")
    plm_parameters = sum(p.numel() for p in policies[config.seeds[0]].model.parameters())
    distances = [m["prompt_state_rms"] for m in per_task.values() if "prompt_state_rms" in m]
    extra = {"prompt_state_rms": float(np.mean(distances))} if distances else {}
    return {**extra, **recorded, "method": config.method, "tunable_parameters": tunable, "plm_parameters": plm_parameters,
            "tunable_share_percent": 100.0 * tunable / plm_parameters, "shots": config.shots,
            "data_kind": config.data_kind, "seeds": config.seeds, "per_task": per_task, "tasks": tasks,
            "tasks_kind": tasks_kind(family, tasks),
            **inputs_record(run, workspace, family, tasks, config, sources)}  # fmt: skip


def inputs_record(run: Run, workspace: Workspace, family: TaskFamily, tasks: list[int], config: TuneConfig,
                  zero_shot: dict[int, ZeroShotPrompts]) -> dict[str, Any]:  # fmt: skip
    """The summary's account of the target data: the few-shot episodes each seed used, or, zero-shot, what its
    setting lets both methods read of the training tasks (whose datasets become the run's inputs)."""
    if config.shots:
        return {"fewshot_episodes": fewshot_record(workspace.datasets_dir, family.name, tasks, config.data_kind,
                                                   config.shots, config.seeds)}  # fmt: skip
    read = dict.fromkeys(d for prompts in zero_shot.values() for d in prompts.read(tasks))
    run.record_inputs("dataset", read)
    return {"zero_shot": zero_shot[config.seeds[0]].record(tasks)}


def run_tune(
    workspace: Workspace, config: TuneConfig, *, argv: list[str], resume: str | None = None
) -> tuple[Run | None, dict[str, Any]]:
    """The stage. Under torchrun, rank 0 owns the run and every rank adapts its share of (seed, task) jobs."""
    info = init_distributed(resolve_device(config.device))
    try:
        if not info.is_main:
            run_dir, payload = broadcast(None, info)
            config = TuneConfig.model_validate(payload)
            pretrain, diffuse = resolve_inputs(workspace, config)
            return None, tune(None, workspace, config, pretrain, diffuse, info, Path(run_dir))
        if resume is not None:  # its recorded config and inputs (finished trials and adaptations are kept)
            config = TuneConfig.model_validate(find_run(workspace, resume, "tune").config)
        check_zero_shot(config.method, config.shots)
        pretrain, diffuse = resolve_inputs(workspace, config)
        first = pretrain[config.seeds[0]]
        family = get_family(config.env or first.family or "")
        tasks = tune_tasks(config, family)
        if config.shots:  # fail before a run
            load_fewshot(workspace.datasets_dir, family.name, tasks, config.data_kind, config.shots)
        update = {
            "env": family.name,
            "pretrain_run": first.run_id,
            "pretrain_runs": [pretrain[s].run_id for s in config.seeds] if config.pretrain_runs else None,
            "diffuse_run": diffuse[config.seeds[0]].run_id if diffuse else None,
            "diffuse_runs": [diffuse[s].run_id for s in config.seeds] if config.diffuse_runs else None,
        }
        config = config.model_copy(update=update)
        run, config = open_run(workspace, "tune", config, argv=argv, family=family.name, seed=config.seeds[0],
                               slug=f"{family.name}-{config.method}", resume=resume)  # fmt: skip
        broadcast((str(run.dir), config.model_dump(mode="json")), info)
        with stage_run(run):
            for source in dict.fromkeys(r.run_id for r in pretrain.values()):
                run.record_input("pretrain", source, None)
            for source in dict.fromkeys(r.run_id for r in diffuse.values()) if diffuse else []:
                run.record_input("diffuse", source, None)
            summary = tune(run, workspace, config, pretrain, diffuse, info)
            run.manifest["summary"].update({k: v for k, v in summary.items() if k != "per_task"})
            run.save()
            clear_progress(run.dir)
        return run, summary
    finally:
        shutdown(info)
