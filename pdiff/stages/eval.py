"""`pdiff eval`: roll a frozen Prompt-DT out on every test task of its family.

Without a tuning run this is the `prompt-dt` baseline: each test task's prompt is the tail of one of the
seed's N few-shot episodes (`--shots`, `--data-kind`). `--prompt random` replaces the prompt with noise: the
control that shows the prompt carries the task. A tune run is evaluated with its prompts. On Meta-World, whose
resets do not vary, every (seed, task) runs N prompts once each, whatever the method (pdiff.eval.plan). When its
method changed weights, each (seed, task) is rolled out with its own model rebuilt from the frozen Prompt-DT
plus the run's tuned tensors (prompt-only methods keep one batched model call per step for all tasks). Scores: raw return, normalised score
100·(R − R_random)/(R_expert − R_random) with the references stored in the datasets, success rate on
Meta-World; each averaged over the test tasks per seed, then mean ± sample std over seeds, with the
(seeds × tasks) scores and the number of distinct rollouts for the report's intervals.
"""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from pdiff.compute import ComputeConfig, setup_compute
from pdiff.config import register_stage_config
from pdiff.console import StageProgress
from pdiff.data.batches import PromptBank, Segments
from pdiff.data.fewshot import tasks_kind
from pdiff.data.minari_format import dataset_dir, dataset_id, latest_version
from pdiff.data.minari_read import read_metadata
from pdiff.data.prompts_file import read_prompts
from pdiff.envs import get_family
from pdiff.envs.base import TaskFamily
from pdiff.errors import UsageError
from pdiff.eval.plan import in_turn, plan_episodes, random_prompts
from pdiff.eval.rollout import EpisodeResult, FrozenPolicy, rollout
from pdiff.eval.simulators import EnvPool
from pdiff.methods.base import load_fewshot
from pdiff.methods.finetuning import load_tuned, tuned_path
from pdiff.methods.registry import METHODS, changes_weights
from pdiff.stages.common import load_policies, open_run, runs_per_seed, stage_run
from pdiff.stats import sample_std
from pdiff.workspace.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
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
        description="auto: the latest tune run's prompts if one exists, else few-shot; fewshot: the prompt-dt "
        "baseline; random: noise (control).",
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

    @model_validator(mode="after")
    def _one_prompt_dt_per_seed(self) -> EvalConfig:
        if self.pretrain_runs is not None and len(self.pretrain_runs) != len(self.seeds):
            raise ValueError(
                f"pretrain_runs names {len(self.pretrain_runs)} runs for {len(self.seeds)} seeds"
            )
        return self


register_stage_config("eval", EvalConfig)


def reference_returns(
    workspace: Workspace, family: TaskFamily, task: int
) -> tuple[float | None, float | None]:
    """Random and expert returns stored with the task's expert dataset (None when not collected)."""
    version = latest_version(workspace.datasets_dir, family.name, task, "expert")
    if version is None:
        return None, None
    block = read_metadata(
        dataset_dir(workspace.datasets_dir, dataset_id(family.name, task, "expert", version))
    )["pdiff"]
    return block.get("ref_random_return"), block.get("ref_expert_return")


EVAL_STREAM = (
    0x5EED_E7A1  # a spawn key of its own: eval's resets never coincide with collect's by construction
)


def episode_seed(seed: int, task: int, episode: int) -> int:
    """The reset seed of one evaluation episode (drawn apart from collect's, pdiff.data.collectors)."""
    sequence = np.random.SeedSequence(seed, spawn_key=(EVAL_STREAM, task, episode))
    return int(sequence.generate_state(1)[0] & 0x7FFFFFFF)


def fewshot_prompts(
    workspace: Workspace,
    family: TaskFamily,
    tasks: list[int],
    config: EvalConfig,
    policy: FrozenPolicy,
    seed: int,
) -> PromptBank:
    """The tail prompts of seed `seed`'s few-shot episodes of every task."""
    data = load_fewshot(workspace.datasets_dir, family.name, tasks, config.data_kind, config.shots, seed)
    return policy.prompt_bank(data)


def prompts_per_task(family: TaskFamily, config: EvalConfig, stored: int = 1) -> int:
    """How many prompts each (seed, task) is evaluated with (pdiff.eval.plan): one where resets vary (it runs
    `episodes` times); else one per few-shot episode for every method alike, so that every cell of a family
    stands on as many rollouts; a zero-shot tune run's own count (`stored`, its most per (seed, task))."""
    if family.resets_vary:
        return 1
    return config.shots or stored


def fewshot_baseline(config: EvalConfig, tuned: Run | None) -> bool:
    """Whether the prompts are the seed's real few-shot prompts (`eval --prompt fewshot`, `tune -m prompt-dt`
    with shots; zero-shot, its prompts come from training tasks and are read from the tune run)."""
    if tuned is not None:
        return tuned.config["method"] == "prompt-dt" and tuned.config["shots"] > 0
    return config.prompt == "fewshot"


def seed_prompts(workspace: Workspace, family: TaskFamily, tasks: list[int], config: EvalConfig, policy: FrozenPolicy,
                 seed: int, tuned: Run | None, stored: dict[tuple[int, int], Segments] | None, count: int) -> dict[int, Segments]:  # fmt: skip
    """Each task's `count` prompts for seed `seed`: a tune run's stored ones in turn (ptdt's one learned prompt
    repeats), or the prompt-dt baseline's few-shot tails (every one where resets do not vary, else one drawn; a
    tune run's own draw), or noise (the random-prompt control)."""
    rng = np.random.default_rng([seed, 11])
    baseline = fewshot_baseline(config, tuned)
    if stored is not None and (count == 1 or not baseline):
        return {t: in_turn(stored[(seed, t)], count) for t in tasks}
    if baseline:  # prompt-dt tune runs made before it stored every tail hold one: every tail is read again
        bank = fewshot_prompts(workspace, family, tasks, config, policy, seed)
        return {t: bank.all_for_task(t) if count > 1 else bank.for_task(t, rng) for t in tasks}
    length = policy.model.config.prompt_len
    return {t: random_prompts(family, length, count, rng) for t in tasks}


def evaluate(
    workspace: Workspace, run: Run, config: EvalConfig, sources: dict[int, Run], tuned: Run | None
) -> dict[str, Any]:
    family = get_family(config.env or sources[config.seeds[0]].family or "")
    compute = setup_compute(config, workspace.root, run.manifest.get("compute"))
    run.manifest["compute"] = compute.record()
    policies = load_policies(sources, compute.torch_device, family.name, compute)
    tasks = config.tasks or list(family.test_tasks)
    horizon = family.resolve_horizon(config.horizon, max_horizon=getattr(family, "max_horizon", None))
    stored = read_prompts(verified_output(tuned, tuned.dir / "prompts.h5"))[0] if tuned is not None else None
    per_prompt = config.episodes if family.resets_vary else 1  # Meta-World: a repeat is an identical copy
    prompt_count = prompts_per_task(family, config, max(map(len, stored.values())) if stored else 1)
    episodes: list[EpisodeResult] = []
    seed_of: list[int] = []
    total = len(config.seeds) * len(tasks) * prompt_count * per_prompt * horizon
    with (
        StageProgress(f"eval {family.name}", total=total, unit="episode steps") as bar,
        EnvPool(config.workers) as pool,
    ):
        for s, seed in enumerate(config.seeds):
            bar.label(f"eval {family.name} seed {seed} (tasks {','.join(map(str, tasks))})")
            policy = policies[seed]
            prompts = seed_prompts(
                workspace, family, tasks, config, policy, seed, tuned, stored, prompt_count
            )
            plan = plan_episodes(
                tasks, prompts, per_prompt, lambda task, e, seed=seed: episode_seed(seed, task, e)
            )
            render = config.video if s == 0 else 0
            if tuned is not None and changes_weights(tuned.config["method"]):
                results = []
                for task in tasks:  # one model per task: one rollout per task
                    bar.label(f"eval {family.name} seed {seed} task {task}")
                    model = load_tuned(policy.model, tuned_path(tuned.dir, seed, task), tuned.config["method"],
                                       METHODS[tuned.config["method"]].attach)  # fmt: skip
                    rows = plan.rows_of(task)
                    results += rollout(family, replace(policy, model=model), plan.prompts.take(np.array(rows)).to_prompt(),
                                       [task] * len(rows), [plan.resets[i] for i in rows], horizon=horizon,
                                       render_episodes=render, on_step=bar.update, pool=pool)  # fmt: skip
            else:
                results = rollout(family, policy, plan.prompts.to_prompt(), plan.tasks, plan.resets, horizon=horizon,
                                  render_episodes=render, on_step=bar.update, pool=pool)  # fmt: skip
            for result, number in zip(results, (n for row in plan.episode_numbers for n in row), strict=True):
                result.episode = number  # rows come back in plan order, grouped by task either way
            episodes += results
            seed_of += [seed] * len(results)
    references = {t: reference_returns(workspace, family, t) for t in tasks}
    write_outputs(run, family, config, tasks, episodes, seed_of, references)
    return summarise(config, tasks, episodes, seed_of, references)


def normalised(value: float, reference: tuple[float | None, float | None]) -> float | None:
    low, high = reference
    if low is None or high is None or high == low:
        return None
    return 100.0 * (value - low) / (high - low)


def summarise(config: EvalConfig, tasks: list[int], episodes: list[EpisodeResult], seed_of: list[int],
              references: dict[int, tuple[float | None, float | None]]) -> dict[str, Any]:  # fmt: skip
    # (seeds × tasks) matrices: the report's intervals resample whole seeds, tasks kept together (pdiff.stats)
    by_seed_task: dict[str, list[list[float]]] = {"return": [], "normalized": [], "success_rate": []}
    per_task: dict[int, dict[str, Any]] = {}
    for seed in config.seeds:
        task_returns, task_norm, task_success = [], [], []
        for task in tasks:
            eps = [e for e, s in zip(episodes, seed_of, strict=True) if s == seed and e.task == task]
            mean_return = float(np.mean([e.episode_return for e in eps]))
            task_returns.append(mean_return)
            task_norm.append(normalised(mean_return, references[task]))
            if eps[0].success is not None:
                task_success.append(float(np.mean([bool(e.success) for e in eps])))
        by_seed_task["return"].append(task_returns)
        if all(v is not None for v in task_norm):
            by_seed_task["normalized"].append(task_norm)
        if task_success:
            by_seed_task["success_rate"].append(task_success)
    by_seed_task = {k: v for k, v in by_seed_task.items() if len(v) == len(config.seeds)}
    per_seed = {key: [float(np.mean(row)) for row in rows] for key, rows in by_seed_task.items()}
    for task in tasks:
        eps = [e for e in episodes if e.task == task]
        mean_return = float(np.mean([e.episode_return for e in eps]))
        per_task[task] = {"return_mean": mean_return, "return_std": sample_std([e.episode_return for e in eps]),
                          "normalized": normalised(mean_return, references[task]), "n_episodes": len(eps),
                          "ref_random_return": references[task][0], "ref_expert_return": references[task][1]}  # fmt: skip
        if eps[0].success is not None:
            per_task[task]["success_rate"] = float(np.mean([bool(e.success) for e in eps]))
    summary: dict[str, Any] = {
        "scores": "raw returns; normalized = 100·(R − R_random)/(R_expert − R_random); "
        "std over seeds with ddof 1; by_seed_task: [seed][task] means over episodes"
    }
    for key, values in per_seed.items():
        summary[f"{key}_mean"] = float(np.mean(values))
        summary[f"{key}_std"] = sample_std(values)
        summary[f"{key}_per_seed"] = values
    summary["by_seed_task"] = by_seed_task
    # identical rollouts (Meta-World ignores reset seeds; a prompt fixes the policy) count once
    summary["distinct_rollouts"] = len({(e.task, round(e.episode_return, 6), e.length) for e in episodes})
    summary["per_task"] = {str(t): v for t, v in per_task.items()}
    summary.update({"prompt": config.prompt, "shots": config.shots, "data_kind": config.data_kind,
                    "seeds": config.seeds, "tasks": tasks,
                    "episodes_per_task": len(episodes) // (len(config.seeds) * len(tasks))})  # fmt: skip
    return summary


def write_outputs(run: Run, family: TaskFamily, config: EvalConfig, tasks: list[int], episodes: list[EpisodeResult],
                  seed_of: list[int], references: dict) -> None:  # fmt: skip
    out = run.dir / "eval"
    out.mkdir(exist_ok=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["seed", "task", "episode", "reset_seed", "return", "length", "success"])
    for e, seed in zip(episodes, seed_of, strict=True):
        writer.writerow([seed, e.task, e.episode, e.seed, f"{e.episode_return:.6f}", e.length,
                         "" if e.success is None else int(e.success)])  # fmt: skip
    atomic_write_text(out / "episodes.csv", buffer.getvalue())
    run.record_output(out / "episodes.csv", "eval_episodes")
    if config.video:
        import imageio.v2 as imageio

        for e in episodes:
            if e.frames:
                gif = io.BytesIO()
                imageio.mimsave(gif, e.frames[::2], format="GIF", duration=50, loop=0)
                path = out / "videos" / f"task-{e.task:02d}-episode-{e.episode}.gif"
                atomic_write_bytes(path, gif.getvalue())
                run.record_output(path, "video")


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
        tuned_runs = [r for r in list_runs(workspace, "tune", family)
                      if r.status is RunStatus.FINISHED and not uses_full_data(workspace, r)] if config.prompt == "auto" else []  # fmt: skip
        if not tuned_runs:
            return dict.fromkeys(
                config.seeds, require_finished(latest_finished(workspace, "pretrain", family))
            ), None
        tuned = tuned_runs[-1]
    seeds = tuned.config["seeds"]
    refs = tuned.config.get("pretrain_runs") or [tuned.config["pretrain_run"]] * len(seeds)
    return {seed: require_finished(find_run(workspace, ref, "pretrain"))
            for seed, ref in zip(seeds, refs, strict=True)}, tuned  # fmt: skip


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
    update: dict[str, Any] = {"env": family.name, "pretrain_run": source.run_id,
                              "pretrain_runs": [r.run_id for r in sources.values()] if per_seed else None}  # fmt: skip
    if tuned is not None:
        # a tune run's tasks (training tasks for a fidelity measurement) are the ones it has prompts for
        tuned_tasks = tuned.config.get("tasks") or list(family.test_tasks)
        if missing := [t for t in config.tasks or [] if t not in tuned_tasks]:
            raise UsageError(f"--tasks: tune run {tuned.run_id} has no prompt for task {missing[0]}",
                             hint=f"its tasks: {', '.join(map(str, tuned_tasks))}")  # fmt: skip
        update.update(tune_run=tuned.run_id, prompt="auto", seeds=tuned.config["seeds"], tasks=config.tasks or tuned.config.get("tasks"),
                      shots=tuned.config["shots"], data_kind=tuned.config["data_kind"])  # fmt: skip
    elif config.shots == 0:
        raise UsageError("eval --shots 0 needs a zero-shot tune run to evaluate",
                         hint="pdiff tune --shots 0 --method prompt-diffuser|prompt-dt, then pdiff eval --tune RUN")  # fmt: skip
    elif config.prompt == "auto":
        update["prompt"] = "fewshot"
    config = config.model_copy(update=update)
    method = method_name(config, tuned, source)
    run, config = open_run(workspace, "eval", config, argv=argv, family=family.name, seed=config.seeds[0],
                           slug=f"{family.name}-{method}", resume=resume)  # fmt: skip
    with stage_run(run):
        for pretrain in dict.fromkeys(r.run_id for r in sources.values()):
            run.record_input("pretrain", pretrain, None)
        if tuned is not None:
            run.record_input("tune", tuned.run_id, None)
        summary = evaluate(workspace, run, config, sources, tuned)
        summary["method"] = method
        summary["tasks_kind"] = tasks_kind(family, summary["tasks"])
        atomic_write_json(run.dir / "eval" / "results.json", {"family": family.name, "pretrain_run": source.run_id,
                                                              "tune_run": tuned.run_id if tuned else None,
                                                              **summary})  # fmt: skip
        run.record_output(run.dir / "eval" / "results.json", "eval_results")
        run.manifest["summary"].update({k: v for k, v in summary.items() if k != "per_task"})
        run.save()
    return run, summary


def results_table_rows(summary: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = []
    for task, row in summary["per_task"].items():
        norm = row.get("normalized")
        success = row.get("success_rate")
        rows.append((task, f"{row['return_mean']:.1f} ± {row['return_std']:.1f}",
                     "" if norm is None else f"{norm:.1f}", "" if success is None else f"{100 * success:.0f}%"))  # fmt: skip
    return rows
