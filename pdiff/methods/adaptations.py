"""Every (seed, task) adaptation of one tune: the data each seed adapts from (its few-shot episodes, or
zero-shot what the training tasks offer), the selection protocol's choice of settings, then each job, resumed
from the run's progress records (pdiff.methods.progress) and, under torchrun, shared among the ranks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pdiff.compute import Compute
from pdiff.console import StageProgress
from pdiff.data.batches import Segments
from pdiff.data.fewshot import load_fewshot
from pdiff.data.loader import FamilyData
from pdiff.data.prompts_file import write_prompts
from pdiff.distributed import DistInfo, broadcast, gather_to_main, shard_jobs
from pdiff.envs.base import TaskFamily
from pdiff.methods.base import TaskContext, TaskResult
from pdiff.methods.context import choose_settings, method_settings, task_context
from pdiff.methods.finetuning import save_tuned, tuned_path
from pdiff.methods.progress import TuneProgress, inputs_of
from pdiff.methods.registry import METHODS
from pdiff.methods.selection import Selection, with_overrides
from pdiff.methods.shared_config import SharedTuneConfig
from pdiff.methods.zero_shot import ZeroShotPrompts, training_prompts
from pdiff.rollouts.rollout import FrozenPolicy


@dataclass
class TargetData:
    """What each seed adapts from. Zero-shot `nearest` takes the nearest training task's episodes as its
    few-shot data; zero-shot `none` has none, and the training tasks' prompts instead."""

    fewshot: dict[int, FamilyData]
    zero_shot: dict[int, ZeroShotPrompts]  # the seeds tuned under `none`
    sources: dict[int, ZeroShotPrompts]  # zero-shot: each seed's training-task prompts, whatever the setting


def load_target_data(
    datasets_dir: Path,
    family: TaskFamily,
    tasks: list[int],
    config: SharedTuneConfig,
    policies: dict[int, FrozenPolicy],
    prompt_dts: dict[int, str],
) -> TargetData:
    """Each seed's target data; `prompt_dts`: the run id of each seed's Prompt-DT."""
    fewshot = {
        seed: load_fewshot(datasets_dir, family.name, tasks, config.data_kind, config.shots, seed)
        for seed in config.seeds
        if config.shots
    }
    # zero-shot sources: the family's training tasks, also under a full-data Prompt-DT (never other test
    # tasks); one bank per Prompt-DT, as each normalises the prompts its own way
    banks: dict[str, ZeroShotPrompts] = {}
    for seed in config.seeds if not config.shots else []:
        if prompt_dts[seed] not in banks:
            banks[prompt_dts[seed]] = training_prompts(
                datasets_dir, family, family.training_tasks(), policies[seed], config.zero_shot_source
            )
    sources = {seed: banks[prompt_dts[seed]] for seed in config.seeds if not config.shots}
    zero_shot = {seed: s for seed, s in sources.items() if s.setting == "none"}
    fewshot.update({seed: s.nearest_episodes(tasks) for seed, s in sources.items() if s.setting == "nearest"})
    return TargetData(fewshot, zero_shot, sources)


def job_key(seed: int, task: int) -> str:
    """How a tune summary names one (seed, task) adaptation."""
    return f"seed-{seed}/task-{task:02d}"


@dataclass
class Adaptations:
    """Every (seed, task)'s adaptation, in job order."""

    prompts: dict[tuple[int, int], Segments]
    metrics: dict[str, dict[str, Any]]  # by job_key
    tunable_parameters: int
    selection: Selection | None  # None when the selection protocol did not choose


def adapt_all(
    config: SharedTuneConfig,
    family: TaskFamily,
    tasks: list[int],
    policies: dict[int, FrozenPolicy],
    target: TargetData,
    diffusion: dict[int, Path | None],
    compute: Compute,
    run_dir: Path,
    info: DistInfo,
) -> Adaptations | None:
    """Adapt to every (seed, task); `diffusion`: each seed's prompt-diffuser checkpoint; weight-changing
    methods store their tensors under `run_dir`. Under torchrun each rank takes a share of the jobs and rank 0
    gets them all (the other ranks get None)."""
    device = compute.torch_device
    settings = {seed: method_settings(config, family, diffusion[seed], compute) for seed in config.seeds}
    jobs = [(seed, task) for seed in config.seeds for task in tasks]
    # a deterministic family's rollout repeats itself, so its cells vary the prompt instead
    # (pdiff.rollouts.plan)
    per_episode = config.shots > 0 and not family.resets_vary
    # torchrun's ranks keep no progress (they would race for its files)
    progress = (
        TuneProgress(run_dir, inputs_of(device, target.fewshot, target.zero_shot))
        if not info.enabled
        else None
    )
    kept = (progress.trial_curve, progress.add_trial) if progress is not None else (None, None)
    selection = choose_settings(config, jobs, target.fewshot, settings, policies, device, *kept)
    chosen = broadcast(
        {**selection.chosen, "steps": selection.steps} if selection is not None else {}, info
    )  # rank 0's choice, whatever ties
    prompts: dict[tuple[int, int], Segments] = {}
    metrics: dict[str, dict[str, Any]] = {}
    tunable = 0
    with StageProgress(
        f"tune {config.method} {family.name}", total=len(jobs), unit="(seed, task) adaptations"
    ) as bar:
        for seed, task in shard_jobs(jobs, info):  # jobs are independent: each seeds its own generators
            result = progress.result(seed, task) if progress is not None else None
            reused = result is not None
            if result is None:
                context = task_context(
                    policies[seed],
                    target.fewshot.get(seed),
                    seed,
                    task,
                    with_overrides(settings[seed], chosen),
                    device,
                    run_dir / "tuned",
                    zero_shot=target.zero_shot.get(seed),
                    prompt_per_episode=per_episode,
                )
                result = adapt_one(config.method, context, run_dir, progress)
            prompts[(seed, task)] = result.prompt
            tunable = result.tunable_parameters
            metrics[job_key(seed, task)] = result.metrics
            bar.update(1, reused=reused, task=task)
    shares = gather_to_main((prompts, metrics, tunable), info)
    if shares is None:  # a non-zero rank: rank 0 has every rank's adaptations
        return None
    for share_prompts, share_metrics, share_tunable in shares:  # back in job order
        prompts.update(share_prompts)
        metrics.update(share_metrics)
        tunable = max(tunable, share_tunable)
    return Adaptations(
        prompts={job: prompts[job] for job in jobs},
        metrics={job_key(*job): metrics[job_key(*job)] for job in jobs},
        tunable_parameters=tunable,
        selection=selection,
    )


def adapt_one(method: str, context: TaskContext, run_dir: Path, progress: TuneProgress | None) -> TaskResult:
    """Tune one (seed, task) and keep it: its tuned tensors first, then the progress record that names
    them."""
    result: TaskResult = METHODS[method].tune_task(context)
    weights = tuned_path(run_dir, context.seed, context.task) if result.model is not None else None
    if weights is not None:
        save_tuned(weights, result.model, method, result.options)
    if progress is not None:
        progress.add_result(context.seed, context.task, result, weights)
    return result


def write_tuned_prompts(path: Path, adaptations: Adaptations, method: str) -> None:
    """`prompts.h5`: every (seed, task)'s prompts, as the frozen Prompt-DT reads them."""
    attrs = {"method": method, "states": "normalised", "returns_to_go": "divided by rtg_scale"}
    write_prompts(path, adaptations.prompts, attrs)
