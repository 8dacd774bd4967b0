"""Stage commands: parse flags into a config, delegate to pdiff.stages, print the result and what next."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.table import Table

from pdiff.cli.app import app, options
from pdiff.cli.flags import (
    CONFIG,
    DATA_KIND,
    DEVICE,
    PRESET,
    RESUME,
    SEEDS,
    SHOTS,
    parse_ids,
    parse_names,
    set_option,
    with_upstream_family,
)
from pdiff.cli.inspect_cmds import JSON_OPTION, emit
from pdiff.cli.render import results_table_rows, run_summary, tracking_hint
from pdiff.config import parse_set, resolve_config
from pdiff.console import log, next_step, out
from pdiff.errors import UsageError
from pdiff.methods.guidance import rules_text
from pdiff.methods.registry import DEFAULT_METHOD, METHODS, others_options


def _preset(preset: str | None) -> str:
    """The ` --preset NAME` the user chose, for the commands suggested next."""
    return f" --preset {preset}" if preset else ""


@app.command()
def collect(
    ctx: typer.Context,
    env: str | None = typer.Option(None, "--env", help="Task family (see `pdiff envs`)."),
    kinds: str | None = typer.Option(
        None, "--kinds", help="Comma list of expert,medium,random,prompt-expert."
    ),
    episodes: int | None = typer.Option(
        None, "--episodes", help="Episodes per task for expert/medium/random."
    ),
    tasks: str | None = typer.Option(None, "--tasks", help="Task ids, e.g. 0,3,5-7 (default: all)."),
    workers: int | None = typer.Option(None, "--workers", help="Worker processes."),
    horizon: int | None = typer.Option(None, "--horizon", help="Episode length (default: the family's)."),
    seed: int | None = typer.Option(None, "--seed", help="Root seed."),
    preset: str | None = PRESET,
    config: Path | None = CONFIG,
    overrides: list[str] = set_option("teacher.total_updates=1000"),
    resume: str | None = RESUME,
    json_flag: bool = JSON_OPTION,
) -> None:
    """Collect datasets for every task of a family (Minari HDF5 layout, one per task and kind)."""
    from pdiff.stages.collect import CollectConfig, run_collect

    opts = options(ctx)
    workspace = opts.open_workspace()
    flags = {
        "env": env,
        "kinds": parse_names(kinds),
        "episodes": episodes,
        "tasks": parse_ids(tasks),
        "workers": workers,
        "horizon": horizon,
        "seed": seed,
    }
    cfg = resolve_config(
        CollectConfig,
        "collect",
        workspace=workspace,
        preset=preset,
        config_file=config,
        overrides=overrides,
        flags=flags,
    )
    run, summary = run_collect(workspace, cfg, argv=["pdiff", *sys.argv[1:]], resume=resume)
    payload = {"run_id": run.run_id, "status": run.status.value, "summary": summary}
    emit(opts, json_flag, payload, lambda: run_summary(f"collect {run.family}", run.run_id, summary))
    next_step(f"pdiff pretrain --env {run.family}{_preset(preset)}")


@app.command()
def pretrain(
    ctx: typer.Context,
    env: str | None = typer.Option(None, "--env", help="Task family (default: that of the latest collect)."),
    steps: int | None = typer.Option(None, "--steps", help="Gradient steps."),
    data_kind: str | None = typer.Option(
        None, "--data-kind", help="Dataset kind to train on (default expert)."
    ),
    include_test_tasks: bool | None = typer.Option(
        None,
        "--include-test-tasks/--train-tasks-only",
        help="The full-data model: train on the test tasks too.",
    ),
    device: str | None = DEVICE,
    seed: int | None = typer.Option(None, "--seed", help="Seed."),
    preset: str | None = PRESET,
    config: Path | None = CONFIG,
    overrides: list[str] = set_option("lr=3e-4"),
    resume: str | None = RESUME,
    json_flag: bool = JSON_OPTION,
) -> None:
    """Train a Prompt-DT on the training tasks of a family (works under torchrun for DDP).

    Curves: metrics.jsonl and learning_curve.png in the run, and with the `tensorboard` extra installed,
    `tensorboard --logdir WORKSPACE/runs`."""
    from pdiff.stages.pretrain import PretrainConfig, run_pretrain

    opts = options(ctx)
    workspace = opts.open_workspace()
    flags = {
        "env": env,
        "steps": steps,
        "data_kind": data_kind,
        "include_test_tasks": include_test_tasks,
        "device": device,
        "seed": seed,
    }
    cfg = resolve_config(
        PretrainConfig,
        "pretrain",
        workspace=workspace,
        preset=preset,
        config_file=config,
        overrides=overrides,
        flags=flags,
    )
    cfg = with_upstream_family(workspace, cfg, "collect", resume)
    run, summary = run_pretrain(workspace, cfg, argv=["pdiff", *sys.argv[1:]], resume=resume)
    if run is None:  # a non-zero torchrun rank: rank 0 reports
        return
    payload = {"run_id": run.run_id, "status": run.status.value, "summary": summary}
    emit(opts, json_flag, payload, lambda: run_summary(f"pretrain {run.family}", run.run_id, summary))
    next_step(
        f"pdiff eval --pretrain {run.run_id}{_preset(preset)}   "
        f"(or: pdiff diffuse --env {run.family}{_preset(preset)})"
    )
    tracking_hint(workspace)


@app.command("eval")
def eval_cmd(
    ctx: typer.Context,
    env: str | None = typer.Option(None, "--env", help="Task family (default: that of the latest pretrain)."),
    pretrain_run: str | None = typer.Option(None, "--pretrain", help="Pretrain run to evaluate (prompt-dt)."),
    tune_run: str | None = typer.Option(None, "--tune", help="Tune run whose prompts to evaluate."),
    prompt: str | None = typer.Option(
        None,
        "--prompt",
        help="auto (the latest tune run with these shots and data kind, else few-shot) | fewshot "
        "(prompt-dt) | random (control).",
    ),
    shots: int | None = SHOTS,
    data_kind: str | None = DATA_KIND,
    seeds: str | None = SEEDS,
    tasks: str | None = typer.Option(
        None, "--tasks", help="Task ids, e.g. 0,3 (default: the test tasks, or the tune run's)."
    ),
    episodes: int | None = typer.Option(None, "--episodes", help="Episodes per task per seed."),
    device: str | None = DEVICE,
    video: int | None = typer.Option(None, "--video", help="GIFs of the first N episodes per task."),
    workers: int | None = typer.Option(
        None, "--workers", help="Processes stepping the simulators (the model stays here); same results."
    ),
    preset: str | None = PRESET,
    config: Path | None = CONFIG,
    overrides: list[str] = set_option("episodes=5"),
    resume: str | None = RESUME,
    json_flag: bool = JSON_OPTION,
) -> None:
    """Roll the policy out on every test task (all episodes batched) and score it."""
    from pdiff.stages.eval import EvalConfig, run_eval

    opts = options(ctx)
    workspace = opts.open_workspace()
    if shots is not None and shots <= 0:
        raise UsageError(
            f"--shots {shots} must be at least 1",
            hint="use e.g. --shots 5; zero-shot prompts come from `pdiff tune --shots 0`",
        )
    chosen = {"--prompt": prompt, "--shots": shots, "--data-kind": data_kind, "--seeds": seeds}
    if tune_run and (clash := [flag for flag, value in chosen.items() if value is not None]):
        raise UsageError(
            f"{clash[0]} cannot go with --tune: a tune run's prompts come with its own seeds, shots and "
            "few-shot data",
            hint=f"pdiff eval --tune {tune_run} (`pdiff show {tune_run}` lists them), or tune again",
        )
    flags = {
        "env": env,
        "pretrain_run": pretrain_run,
        "tune_run": tune_run,
        "prompt": prompt,
        "shots": shots,
        "data_kind": data_kind,
        "seeds": parse_ids(seeds, "--seeds"),
        "tasks": parse_ids(tasks),
        "episodes": episodes,
        "device": device,
        "video": video,
        "workers": workers,
    }
    cfg = resolve_config(
        EvalConfig,
        "eval",
        workspace=workspace,
        preset=preset,
        config_file=config,
        overrides=overrides,
        flags=flags,
    )
    cfg = with_upstream_family(
        workspace, cfg, "pretrain", resume, cfg.pretrain_run, cfg.pretrain_runs, cfg.tune_run
    )
    if not (cfg.env or cfg.pretrain_run or cfg.tune_run or resume):
        raise UsageError(
            f"nothing to evaluate: no finished pretrain run in {workspace.root}",
            hint="run `pdiff collect --env FAMILY` and `pdiff pretrain` first (or all of it: `pdiff demo`)",
        )
    run, summary = run_eval(workspace, cfg, argv=["pdiff", *sys.argv[1:]], resume=resume)

    def render() -> None:
        title = f"eval {summary['method']} on {run.family} ({run.run_id})"
        table = Table("task", "return", "normalized", "success", title=title)
        for row in results_table_rows(summary):
            table.add_row(*row)
        out.print(table)
        line = (
            f"over {len(summary['seeds'])} seeds: "
            f"return {summary['return_mean']:.1f} ± {summary['return_std']:.1f}"
        )
        if "normalized_mean" in summary:
            line += f", normalized {summary['normalized_mean']:.1f} ± {summary['normalized_std']:.1f}"
        if "success_rate_mean" in summary:
            line += (
                f", success {100 * summary['success_rate_mean']:.1f}% "
                f"± {100 * summary['success_rate_std']:.1f}"
            )
        out.print(line)

    emit(opts, json_flag, {"run_id": run.run_id, **summary}, render)
    next_step(f"pdiff report   (or: pdiff show {run.run_id})")


@app.command()
def diffuse(
    ctx: typer.Context,
    env: str | None = typer.Option(None, "--env", help="Task family (default: that of the latest pretrain)."),
    pretrain_run: str | None = typer.Option(None, "--pretrain", help="Frozen Prompt-DT run."),
    guidance: str | None = typer.Option(None, "--guidance", help=f"{rules_text()}."),
    lam: float | None = typer.Option(
        None, "--lambda", help="λ, weight of the PLM gradient (the paper's: 1)."
    ),
    diffusion_steps: int | None = typer.Option(
        None, "--diffusion-steps", help="N, the reverse-chain length."
    ),
    steps: int | None = typer.Option(None, "--steps", help="Training steps."),
    device: str | None = DEVICE,
    seed: int | None = typer.Option(None, "--seed", help="Seed."),
    preset: str | None = PRESET,
    config: Path | None = CONFIG,
    overrides: list[str] = set_option("lam=0.5"),
    resume: str | None = RESUME,
    json_flag: bool = JSON_OPTION,
) -> None:
    """Train the prompt diffusion model on the training tasks, guided by the frozen Prompt-DT.

    Curves: metrics.jsonl and learning_curve.png in the run, and with the `tensorboard` extra installed,
    `tensorboard --logdir WORKSPACE/runs`."""
    from pdiff.stages.diffuse import DiffuseConfig, run_diffuse

    opts = options(ctx)
    workspace = opts.open_workspace()
    flags = {
        "env": env,
        "pretrain_run": pretrain_run,
        "guidance": guidance,
        "lam": lam,
        "diffusion.steps": diffusion_steps,
        "steps": steps,
        "device": device,
        "seed": seed,
    }
    cfg = resolve_config(
        DiffuseConfig,
        "diffuse",
        workspace=workspace,
        preset=preset,
        config_file=config,
        overrides=overrides,
        flags=flags,
    )
    cfg = with_upstream_family(workspace, cfg, "pretrain", resume, cfg.pretrain_run)
    run, summary = run_diffuse(workspace, cfg, argv=["pdiff", *sys.argv[1:]], resume=resume)
    if run is None:  # a non-zero torchrun rank: rank 0 reports
        return
    payload = {"run_id": run.run_id, "status": run.status.value, "summary": summary}
    emit(opts, json_flag, payload, lambda: run_summary(f"diffuse {run.family}", run.run_id, summary))
    next_step(f"pdiff tune --diffuse {run.run_id}{_preset(preset)}")
    tracking_hint(workspace)


@app.command()
def tune(
    ctx: typer.Context,
    shots: int | None = SHOTS,
    method: str | None = typer.Option(
        None,
        "--method",
        help=" | ".join(f"{name} (default)" if name == DEFAULT_METHOD else name for name in METHODS) + ".",
    ),
    env: str | None = typer.Option(None, "--env", help="Task family (default: that of the latest diffuse)."),
    data_kind: str | None = DATA_KIND,
    seed: int | None = typer.Option(None, "--seed", help="A single seed (shorthand for --seeds S)."),
    seeds: str | None = SEEDS,
    diffuse_run: str | None = typer.Option(None, "--diffuse", help="Diffusion model run (prompt-diffuser)."),
    pretrain_run: str | None = typer.Option(
        None, "--pretrain", help="Prompt-DT run (all but prompt-diffuser)."
    ),
    device: str | None = DEVICE,
    preset: str | None = PRESET,
    config: Path | None = CONFIG,
    overrides: list[str] = set_option("steps=50 or ptdt.population=10"),
    resume: str | None = RESUME,
    json_flag: bool = JSON_OPTION,
) -> None:
    """Adapt to each test task from N few-shot episodes (the Prompt-DT stays frozen).

    A method's own options are in its section: `--set lora.rank=8`; `pdiff config show tune --method M`
    lists them."""
    from pdiff.stages.tune import TuneConfig, run_tune

    opts = options(ctx)
    workspace = opts.open_workspace()
    if shots is not None and shots < 0:
        raise UsageError(f"--shots {shots} must be 0 (zero-shot) or more", hint="use e.g. --shots 5")
    if seed is not None and seeds is not None:
        raise UsageError("give --seed or --seeds, not both", hint="--seeds 0,1,2 runs several seeds")
    flags = {
        "env": env,
        "shots": shots,
        "method": method,
        "data_kind": data_kind,
        "seeds": [seed] if seed is not None else parse_ids(seeds, "--seeds"),
        "diffuse_run": diffuse_run,
        "pretrain_run": pretrain_run,
        "device": device,
    }
    cfg = resolve_config(
        TuneConfig,
        "tune",
        workspace=workspace,
        preset=preset,
        config_file=config,
        overrides=overrides,
        flags=flags,
    )
    upstream_stage = "diffuse" if cfg.method == "prompt-diffuser" else "pretrain"
    cfg = with_upstream_family(
        workspace,
        cfg,
        upstream_stage,
        resume,
        cfg.diffuse_run,
        cfg.diffuse_runs,
        cfg.pretrain_run,
        cfg.pretrain_runs,
    )
    for key in others_options(cfg.method, [parse_set(item)[0] for item in overrides]):
        log.warning("--set %s is an option of another method than %s: ignored", key, cfg.method)
    if not (cfg.env or cfg.diffuse_run or cfg.pretrain_run or resume):
        raise UsageError(
            f"nothing to tune from: no finished {upstream_stage} run in {workspace.root}",
            hint="run `pdiff collect --env FAMILY`, `pdiff pretrain` and `pdiff diffuse` first "
            "(or all of it: `pdiff demo`)",
        )
    run, summary = run_tune(workspace, cfg, argv=["pdiff", *sys.argv[1:]], resume=resume)
    if run is None:  # a non-zero torchrun rank: rank 0 reports
        return
    shown = {k: v for k, v in summary.items() if k != "per_task"}
    emit(
        opts,
        json_flag,
        {"run_id": run.run_id, **summary},
        lambda: run_summary(f"tune {run.family}", run.run_id, shown),
    )
    next_step(f"pdiff eval --tune {run.run_id}{_preset(preset)}")
