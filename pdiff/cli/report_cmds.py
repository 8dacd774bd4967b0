"""`pdiff report` and `pdiff reproduce`: parse flags, delegate to the report stage / reproduce workflow,
print."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from pdiff.cli.app import app, options
from pdiff.cli.flags import PRESET, parse_ids, parse_names
from pdiff.cli.inspect_cmds import JSON_OPTION, emit
from pdiff.cli.render import steps_table
from pdiff.console import err, next_step, out
from pdiff.errors import UsageError
from pdiff.methods.guidance import ABLATION_RULES


# help= rather than a docstring: typer's list of commands keeps a docstring's line breaks
@app.command(
    help="Tables like the paper's (its numbers beside ours), where Prompt Diffuser loses, "
    "PNG plots: report.md."
)
def report(
    ctx: typer.Context,
    runs: list[str] = typer.Option(
        [], "--runs", metavar="RUN,…", help="Eval runs to include (default: every finished one)."
    ),
    env: list[str] = typer.Option(
        [], "--env", "--envs", metavar="FAMILY,…", help="Only these task families."
    ),
    methods: list[str] = typer.Option(
        [],
        "--methods",
        metavar="METHOD,…",
        help="Only these methods' cells, each guidance rule and setting kept (e.g. a scaling rung's).",
    ),
    data_kinds: list[str] = typer.Option(
        [],
        "--data-kinds",
        metavar="KIND,…",
        help="Only cells of these few-shot data kinds: expert, medium, random (zero-shot cells and the "
        "random-prompt control count as expert).",
    ),
    out_dir: Path | None = typer.Option(
        None, "--out", help="Also copy report.md, report.json and figures/ into this directory."
    ),
    summary_dir: Path | None = typer.Option(
        None,
        "--summary",
        metavar="DIR",
        help="Instead: write DIR/README.md, one summary of every DIR/*/report.json (no workspace needed; "
        "DIR/earlier/* is linked, not tabulated).",
    ),
    readme: Path | None = typer.Option(
        None,
        "--readme",
        help="With --summary: also rewrite the results table of this README (between its markers).",
    ),
    study: Path | None = typer.Option(
        None,
        "--study",
        help="With --summary: also rewrite the compute table of this study page (between its markers).",
    ),
    scaling: bool = typer.Option(
        False,
        "--scaling",
        help="Instead: set the rungs RUNG_DIR … of the scaling study side by side in --out's README.md and "
        "scaling.png (no workspace needed; docs/study.md: Scaling).",
    ),
    rung_dir: list[Path] | None = typer.Argument(
        None, help="With --scaling: one directory per rung, named for it, with the rung's report.json."
    ),
    json_flag: bool = JSON_OPTION,
) -> None:
    from pdiff.stages.report import run_report
    from pdiff.workflows.pipeline import stage_config

    opts = options(ctx)
    for flag, page in (("--readme", readme), ("--study", study)):
        if page is not None and summary_dir is None:
            raise UsageError(
                f"{flag} needs --summary DIR",
                hint="pdiff report --summary docs/results --readme README.md --study docs/study.md",
            )
    if rung_dir and not scaling:
        raise UsageError(
            f"unexpected argument {str(rung_dir[0])!r}",
            hint="directories are the rungs of --scaling: pdiff report --scaling DIR [DIR ...] --out OUT",
        )
    if scaling:
        if out_dir is None or summary_dir is not None:
            raise UsageError(
                "--scaling needs --out OUT (and no --summary)",
                hint="pdiff report --scaling docs/results/scaling/cheetah-dir/x1 "
                "docs/results/scaling/cheetah-dir/x4 --out docs/results/scaling/cheetah-dir",
            )
        from pdiff.results.scaling import write_scaling

        page = write_scaling(list(rung_dir or []), out_dir)
        emit(opts, json_flag, {"scaling": str(page)}, lambda: out.print(f"scaling: {page}", highlight=False))
        return
    if summary_dir is not None:
        from pdiff.results.summary import write_summary

        written = write_summary(summary_dir, readme, study)
        emit(
            opts,
            json_flag,
            {"summary": str(written)},
            lambda: out.print(f"summary: {written}", highlight=False),
        )
        return
    workspace = opts.open_workspace()
    flags = {
        "runs": parse_names(runs),
        "envs": parse_names(env),
        "methods": parse_names(methods),
        "data_kinds": parse_names(data_kinds),
        "out": str(out_dir) if out_dir else None,
    }
    run, summary = run_report(
        workspace, stage_config(workspace, "report", None, flags), argv=["pdiff", *sys.argv[1:]]
    )
    path = run.dir / "report.md"

    def render() -> None:  # a summary: the file keeps the Markdown tables, the paper's numbers and the plots
        print_report_summary(summary)

    emit(opts, json_flag, {"run_id": run.run_id, "report": str(path), **summary}, render)
    err.print(
        f"report: {path}  ({summary['figures']} figures in {path.parent / 'figures'})",
        highlight=False,
        soft_wrap=True,
    )
    if out_dir is None:  # a copy beside the repository's other reports is how one is published
        next_step("pdiff report --out docs/results/NAME   (report.md, report.json and figures copied there)")
    elif out_dir.resolve().parent == Path("docs/results").resolve():
        next_step("make results   (docs/results/README.md and the README's results block, with it)")
    else:
        next_step("pdiff ls --stage report")


def _score(score: dict[str, Any] | None, scale: float = 1.0, unit: str = "") -> str:
    """`mean ± std` of a report cell's score (std left out where there is none, e.g. one seed)."""
    if not score or score.get("mean") is None:
        return ""
    spread = f" ± {scale * score['std']:.1f}" if score.get("std") is not None else ""
    return f"{scale * score['mean']:.1f}{spread}{unit}"


def print_report_summary(summary: dict[str, Any]) -> None:
    """One row per evaluation cell (raw return, normalised score, success) and the plain comparisons."""
    table = Table(
        "family",
        "method",
        "data",
        "shots",
        "seeds",
        "return",
        "normalized",
        "success",
        title=f"{summary['cells']} evaluation cells (mean ± std over seeds)",
        title_justify="left",
    )
    for r in summary["data"]["results"]:
        method = escape(
            r["method"] + (f" ({r['variant']})" if r.get("variant") else "")
        )  # `[ε-prediction]` is text
        cells = [_score(r["score"]), _score(r["normalized"]), _score(r["success"], 100.0, " %")]
        table.add_row(r["family"], method, r["data_kind"], str(r["shots"]), str(len(r["seeds"])), *cells)
    out.print(table)
    for line in summary["data"]["losses"]:
        out.print(line.replace("**", ""), highlight=False, markup=False)


@app.command()
def reproduce(
    ctx: typer.Context,
    preset: str | None = PRESET,
    env: list[str] = typer.Option(
        [],
        "--env",
        "--envs",
        metavar="FAMILY,…",
        help="Task families, e.g. cheetah-vel,ant-dir (default: the paper's four).",
    ),
    methods: list[str] = typer.Option(
        [], "--methods", metavar="METHOD,…", help="Methods (default: every tune method + full-data)."
    ),
    seeds: str | None = typer.Option(
        None,
        "--seeds",
        metavar="SEEDS",
        help="Seeds, e.g. 0,1,2 or 0-4 (default: the preset's; a lone N: 0..N-1).",
    ),
    data_kinds: list[str] = typer.Option(
        [], "--data-kinds", metavar="KIND,…", help="Few-shot data kinds, e.g. expert,medium."
    ),
    ablation: bool | None = typer.Option(
        None,
        "--guidance-ablation/--no-guidance-ablation",
        help=f"Also run every rule of the guidance ablation ({', '.join(ABLATION_RULES)}).",
    ),
    ood: bool | None = typer.Option(
        None,
        "--ood/--no-ood",
        help="Table 3: also each family's out-of-distribution variant (ant-dir-ood, …) and zero-shot cells.",
    ),
    overrides: list[str] = typer.Option(
        [], "--set", help="Override a stage setting: --set pretrain.steps=300."
    ),
    jobs: int | None = typer.Option(
        None,
        "--jobs",
        "-j",
        min=1,
        metavar="N",
        help="Steps at once, each in its own process (default 1; see docs/stages/reproduce.md).",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (skip / resume / run) and stop."),
    json_flag: bool = JSON_OPTION,
) -> None:
    """The whole matrix: collect → pretrain → diffuse → tune × methods × data kinds → eval → report.

    Creates the workspace if needed. Finished steps with the same settings are skipped, interrupted ones
    resumed: run it again after a kill."""
    from pdiff.workflows.pipeline import stage_config
    from pdiff.workflows.reproduce import run_matrix
    from pdiff.workspace.root import Workspace

    opts = options(ctx)
    # Like `pdiff demo`: one command from nothing. A dry run writes nothing, so it plans a missing workspace
    # in a scratch one (every step planned, as it would be there).
    scratch = None
    if dry_run and not Workspace(opts.workspace).manifest_file.exists():
        scratch = tempfile.TemporaryDirectory(prefix="pdiff-plan-")
    workspace, _ = Workspace.init(scratch.name if scratch else opts.workspace)
    shown = opts.workspace if scratch else workspace.root
    count = seeds is not None and seeds.strip().isdigit()  # the older `--seeds 3`: seeds 0, 1, 2
    flags = {
        "envs": parse_names(env),
        "methods": parse_names(methods),
        "seeds": int(seeds) if count else parse_ids(seeds, "--seeds"),
        "data_kinds": parse_names(data_kinds),
        "guidance_ablation": ablation,
        "ood": ood,
        "jobs": jobs,
    }
    matrix = stage_config(
        workspace,
        "reproduce",
        preset,
        flags,
        [o.removeprefix("reproduce.") for o in overrides if o.startswith("reproduce.")],
    )
    stage_overrides = [o for o in overrides if not o.startswith("reproduce.")]
    results, report_run = run_matrix(
        workspace,
        matrix,
        preset=preset,
        argv=["pdiff", *sys.argv[1:]],
        overrides=stage_overrides,
        dry_run=dry_run,
    )
    path = report_run.dir / "report.md" if report_run is not None else None

    payload = {"steps": [r.__dict__ for r in results], "report": str(path) if path else None}
    emit(opts, json_flag, payload, lambda: steps_table(f"reproduce in {shown}", results))
    counts = {
        state: sum(r.state == state for r in results) for state in ("ran", "resumed", "reused", "planned")
    }
    err.print(", ".join(f"{n} {state}" for state, n in counts.items() if n))
    if path is not None:
        err.print(f"report: {path}")
    if scratch is not None:
        scratch.cleanup()
