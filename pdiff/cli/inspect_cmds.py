"""Workspace commands: init, ls, show, status, verify, gc, doctor, envs, config."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from pdiff.cli.app import GlobalOptions, app, options
from pdiff.cli.render import choice, compact, headline, key_values, number
from pdiff.console import next_step, out, pasteable
from pdiff.errors import EXIT_FAILED, UsageError
from pdiff.results import inventory
from pdiff.workspace.root import STAGES, Workspace, resolve_root
from pdiff.workspace.runs import find_run, list_runs

JSON_OPTION = typer.Option(False, "--json", help="Print results as JSON on stdout.")


def emit(opts: GlobalOptions, json_flag: bool, payload: Any, render: Callable[[], None]) -> None:
    """JSON on stdout for scripts, or a human rendering."""
    if opts.json or json_flag:
        out.print_json(json.dumps(payload, default=str))
    else:
        render()


# help= rather than a docstring: typer's list of commands keeps a docstring's line breaks
@app.command(
    help="Create a workspace: config.yaml with the smoke/quick/study/paper presets, "
    "a README, datasets/ and runs/."
)
def init(
    ctx: typer.Context,
    path: Path | None = typer.Argument(None, help="Where to create the workspace [default: --workspace]."),
    json_flag: bool = JSON_OPTION,
) -> None:
    opts = options(ctx)
    root = path or opts.workspace
    workspace, created = Workspace.init(root)
    payload = {"workspace": str(workspace.root.resolve()), "created": created}

    def render() -> None:
        what = ", ".join(created) if created else "nothing (already a workspace)"
        out.print(f"workspace {workspace.root}: created {what}")
        root = shlex.quote(str(workspace.root.resolve()))  # the new workspace, whatever -w said
        next_step(f"pdiff -w {root} doctor   then   pdiff -w {root} collect --env metaworld-reach")

    emit(opts, json_flag, payload, render)


@app.command("ls")
def list_cmd(
    ctx: typer.Context,
    stage: str | None = typer.Option(None, "--stage", help="Only runs of this stage."),
    env: str | None = typer.Option(None, "--env", help="Only runs of this task family."),
    datasets: bool = typer.Option(False, "--datasets", help="List datasets instead of runs."),
    json_flag: bool = JSON_OPTION,
) -> None:
    """List runs (or datasets) in the workspace."""
    from pdiff.envs import get_family

    opts = options(ctx)
    choice(stage, STAGES, "--stage")
    env = get_family(env).name if env is not None else None  # a typo is a usage error with a suggestion
    workspace = opts.open_workspace()
    if datasets:
        rows = inventory.list_datasets(workspace, family=env)
        emit(opts, json_flag, rows, lambda: _print_datasets(rows))
        return
    runs = list_runs(workspace, stage, env)
    rows = [inventory.run_row(r) for r in runs]
    results = [compact(r.manifest.get("summary") or {}) for r in runs]
    emit(opts, json_flag, rows, lambda: _print_runs(rows, results))


def _print_runs(rows: list[dict[str, Any]], results: list[str]) -> None:
    if not rows:
        out.print("no runs yet")
        return
    # The run id carries the creation time and is what people copy: it never wraps, nor do the short columns.
    table = Table(caption="result: return (normalised score), success rate; `pdiff show RUN` for the rest")
    for name in ("stage", "run", "family", "method", "status", "result", "duration"):
        table.add_column(
            name, no_wrap=name in ("stage", "run", "status"), min_width=24 if name == "result" else None
        )
    for row, result in zip(rows, results, strict=True):
        cells = ("stage", "run_id", "family", "method", "status")
        table.add_row(*(number(row[key]) for key in cells), result, row["duration"])
    out.print(table)


def _print_datasets(rows: list[dict[str, Any]]) -> None:
    if not rows:
        out.print("no datasets yet")
        return
    table = Table("dataset", "episodes", "steps", "mean return")
    for row in rows:
        table.add_row(row["dataset_id"], str(row["episodes"]), str(row["steps"]), row["mean_return"])
    out.print(table)


@app.command()
def show(
    ctx: typer.Context,
    run: str = typer.Argument(..., help="Run id, unique prefix, or path."),
    json_flag: bool = JSON_OPTION,
) -> None:
    """Show one run: status, config, inputs, outputs, summary."""
    from pdiff.config import flatten_dotted

    opts = options(ctx)
    found = find_run(opts.open_workspace(), run)
    manifest = {**found.manifest, "status": found.display_status()}

    def render() -> None:
        summary = manifest.get("summary") or {}
        method = summary.get("method") or manifest["config"].get("method")
        what = " ".join(str(w) for w in (found.stage, method, found.family and f"on {found.family}") if w)
        out.print(f"[bold]{what}[/bold]  {found.run_id}  {manifest['status']}", highlight=False)
        if headline(summary):
            out.print(f"result: {headline(summary)}", highlight=False)
        if manifest.get("error"):
            out.print(f"[red]error:[/red] {manifest['error']}", highlight=False)
        ended = f", finished {manifest['finished_at']}" if manifest.get("finished_at") else ""
        took = f" ({manifest['duration_s']:.0f} s)" if manifest.get("duration_s") is not None else ""
        out.print(f"created {manifest['created_at']}{ended}{took}", highlight=False)
        shown = {k: v for k, v in summary.items() if k not in ("per_task", "scores", "report")}
        if shown:
            key_values("summary", shown)
        key_values("config", flatten_dotted(manifest["config"]))
        for kind in ("inputs", "outputs"):
            out.print(f"{kind}: {len(manifest[kind])}", highlight=False)
            for item in manifest[kind][:20]:
                out.print(f"  {item.get('kind')}: {item.get('ref') or item.get('path')}", highlight=False)
        out.print(
            pasteable(f"all fields: pdiff show {found.run_id} --json; files: {found.dir}"), highlight=False
        )

    emit(opts, json_flag, manifest, render)


@app.command()
def status(ctx: typer.Context, json_flag: bool = JSON_OPTION) -> None:
    """Runs in progress, stale runs (killed without a word), failures, and datasets left half-written."""
    opts = options(ctx)
    workspace = opts.open_workspace()
    report = inventory.workspace_status(workspace)
    for row in report["attention"]:
        row["advice"] = pasteable(row["advice"])

    def render() -> None:
        counts = ", ".join(f"{k} {v}" for k, v in report["counts"].items()) or "no runs"
        out.print(f"workspace {workspace.root}: {counts}")
        for row in report["attention"]:
            out.print(f"  {row['status']:<8} {row['stage']}/{row['run_id']}  {row['advice']}")
        for leftover in report["leftovers"]:
            out.print(f"  LEFTOVER {leftover}  (remove with `pdiff gc`)")
        if not report["attention"] and not report["leftovers"]:
            out.print("  nothing needs attention")

    emit(opts, json_flag, report, render)


@app.command()
def verify(ctx: typer.Context, json_flag: bool = JSON_OPTION) -> None:
    """Re-hash every dataset and every run output; exit 1 on any mismatch."""
    opts = options(ctx)
    workspace = opts.open_workspace()
    report = inventory.verify_workspace(workspace)

    def render() -> None:
        out.print(f"checked {report['datasets']} datasets and {report['files']} run files")
        for problem in report["problems"]:
            out.print(f"[red]MISMATCH[/red] {problem}")
        if not report["problems"]:
            out.print("all artifacts match their recorded sha256")

    emit(opts, json_flag, report, render)
    if report["problems"]:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def gc(
    ctx: typer.Context,
    yes: bool = typer.Option(False, "--yes", "-y", help="Delete without asking (for scripts)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be deleted."),
    json_flag: bool = JSON_OPTION,
) -> None:
    """Delete FAILED, KILLED and stale runs and half-written temporary files (asks first)."""
    opts = options(ctx)
    workspace = opts.open_workspace()
    targets = [str(t.relative_to(workspace.root)) for t in inventory.garbage(workspace)]
    as_json = opts.json or json_flag
    if targets and not as_json:
        out.print("\n".join(f"  {t}" for t in targets), highlight=False)
    deleted = False
    if targets and not dry_run:
        if not yes and not sys.stdin.isatty():
            raise UsageError("gc needs confirmation but stdin is not a terminal", hint="pass --yes to delete")
        if yes or typer.confirm(f"Delete these {len(targets)} item(s)?", default=False, err=True):
            inventory.delete([workspace.root / t for t in targets])
            deleted = True
    payload = {"targets": targets, "deleted": deleted, "dry_run": dry_run}
    if not targets:
        verdict = "nothing to collect"
    elif dry_run:
        verdict = f"{len(targets)} item(s) would be deleted"
    else:
        verdict = f"deleted {len(targets)} item(s)" if deleted else "nothing deleted"
    emit(opts, json_flag, payload, lambda: out.print(verdict))


@app.command()
def doctor(ctx: typer.Context, json_flag: bool = JSON_OPTION) -> None:
    """Check Python, torch, MuJoCo rendering, Meta-World, disk and the workspace; say what to fix."""
    from pdiff.doctor import run_checks

    opts = options(ctx)
    checks = run_checks(opts.workspace)
    payload = [c.__dict__ for c in checks]

    def render() -> None:
        table = Table("check", "status", "detail", "fix")
        colour = {"ok": "green", "warn": "yellow", "fail": "red"}
        for c in checks:
            table.add_row(c.name, f"[{colour[c.status]}]{c.status}[/]", c.detail, c.fix)
        out.print(table)

    emit(opts, json_flag, payload, render)
    if any(c.status == "fail" for c in checks):
        raise typer.Exit(EXIT_FAILED)


@app.command()
def envs(
    ctx: typer.Context,
    family: str | None = typer.Argument(None, help="Show one family's tasks and parameters."),
    json_flag: bool = JSON_OPTION,
) -> None:
    """List the task families (--env values) with their tasks, splits and horizons."""
    from pdiff.envs import family_names, get_family
    from pdiff.envs.base import TaskFamily
    from pdiff.teachers.shipped import expert_source

    def row(fam: TaskFamily) -> dict[str, Any]:
        return {
            **inventory.family_row(fam),
            "in_distribution": fam.in_distribution,
            "expert": expert_source(fam),
        }

    opts = options(ctx)
    if family is not None:
        fam = get_family(family)
        rows = [
            {"task": t, "split": fam.split(t), "params": fam.task_params(t)} for t in range(fam.num_tasks)
        ]
        emit(
            opts,
            json_flag,
            {**row(fam), "tasks": rows},
            lambda: _print_tasks(fam.name + (f" ({fam.test_note})" if fam.test_note else ""), rows),
        )
        return
    families = [row(get_family(name)) for name in family_names()]
    emit(opts, json_flag, families, lambda: _print_families(families))


# Marks the test tasks of an in-distribution family (cheetah-dir) in `pdiff envs`.
IN_DISTRIBUTION_MARK = "(= train)"


def _print_families(rows: list[dict[str, Any]]) -> None:
    splits = "; ".join(f"{r['name']}: {r['split_note']}" for r in rows if r.get("split_note"))
    table = Table(
        "family",
        "paper",
        "simulator",
        "tasks",
        "test tasks",
        "horizon",
        "obs/act",
        "rtg scale",
        "target",
        "expert",
        caption="paper: one of the paper's four families (its name there); the others are ours to try. "
        "expert: who acts in the expert data (a SAC teacher ships inside pdiff or collect trains one). "
        f"{IN_DISTRIBUTION_MARK}: in distribution, the test tasks are training tasks too (as in Prompt-DT "
        "and the paper), so no unseen task is tested"
        + (f". Out of distribution (Table 3), {splits}" if splits else ""),
    )
    for r in rows:
        test_tasks = ",".join(map(str, r["test_tasks"])) + (
            f" {IN_DISTRIBUTION_MARK}" if r["in_distribution"] else ""
        )
        table.add_row(
            r["name"],
            f"✓ {r['paper']}" if r["paper"] else "",
            r["simulator"],
            str(r["num_tasks"]),
            test_tasks,
            str(r["horizon"]),
            f"{r['obs_dim']}/{r['act_dim']}",
            f"{r['rtg_scale']:g}",
            f"{r['eval_target']:g}",
            r["expert"],
        )
    out.print(table)


def _print_tasks(name: str, rows: list[dict[str, Any]]) -> None:
    table = Table("task", "split", "parameters", title=name)
    for r in rows:
        table.add_row(str(r["task"]), r["split"], json.dumps(r["params"]))
    out.print(table)


config_app = typer.Typer(help="Inspect stage configurations.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
def config_show(
    ctx: typer.Context,
    stage: str = typer.Argument(..., help="Stage name."),
    preset: str | None = typer.Option(None, "--preset", help="Resolve this preset."),
    method: str | None = typer.Option(
        None, "--method", help="tune: the shared settings and this method's own options only."
    ),
    json_flag: bool = JSON_OPTION,
) -> None:
    """Every setting of a stage: key, type, default (or the preset's value) and description."""
    from pdiff.config import describe, flatten_dotted, resolve_config, stage_models
    from pdiff.methods.registry import METHODS, option_sections
    from pdiff.workflows import load_configs

    load_configs()
    opts = options(ctx)
    models = stage_models()
    if stage not in models:
        raise UsageError(
            f"no configurable stage {stage!r}", hint=f"choose one of: {', '.join(sorted(models))}"
        )
    root = resolve_root(opts.workspace)
    workspace = Workspace.open(root) if (root / "workspace.json").is_file() else None
    if method is not None and stage != "tune":
        raise UsageError(
            f"--method {method!r}: only tune has method options, not {stage}",
            hint="pdiff config show tune --method M",
        )
    if method is not None and method not in METHODS:
        raise UsageError(
            f"unknown method {method!r} for --method", hint=f"choose one of: {', '.join(METHODS)}"
        )
    flags = {"method": method} if method is not None else None
    resolved = resolve_config(models[stage], stage, workspace=workspace, preset=preset, flags=flags)
    values = flatten_dotted(resolved.model_dump(mode="json"))
    others = set(option_sections()) - {method} if method is not None else set()  # other methods' sections
    rows = [
        {"key": k, "type": t, "value": values.get(k, d), "description": desc}
        for k, t, d, desc in describe(models[stage])
        if k.partition(".")[0] not in others
    ]

    def render() -> None:
        table = Table("key", "type", "value", "description", title=f"{stage} settings")
        for r in rows:
            table.add_row(r["key"], r["type"], json.dumps(r["value"]), r["description"])
        out.print(table)

    emit(opts, json_flag, rows, render)
