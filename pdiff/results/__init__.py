"""`pdiff report`: eval runs → Markdown tables laid out like the paper's, the paper's numbers beside ours,
PNG plots, and where Prompt Diffuser stands by the written verdict rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pdiff.results import fidelity, guidance_rules, standing, tables
from pdiff.results.cells import ReportData, gather
from pdiff.results.figures import all_figures
from pdiff.results.setting_table import made_by, runs_used, setting_table
from pdiff.workspace.root import Workspace, utc_now

__all__ = ["ReportData", "gather", "render_markdown", "report_payload", "write_report"]


def render_markdown(data: ReportData, figures: list[Path], figures_dir: Path, *, commit: str | None) -> str:
    """The whole report.md; figures are linked relative to the report's directory."""
    families = ", ".join(data.families())
    lines = [
        "# pdiff report",
        "",
        f"{len(data.results)} evaluation cells over {families}; written {utc_now()}"
        + (f" at commit `{commit[:12]}`" if commit else "")
        + ".",
        "Numbers are raw returns, mean ± std over seeds of the mean over the test tasks, from `pdiff eval`; "
        "the paper's reported figures stand beside ours (n/r: not reported).",
        "",
        "## Where Prompt Diffuser stands",
        "",
        standing.RULE_LINE,
        "",
        *(standing.standings(data) or ["- nothing to compare (a single method)."]),
        "",
    ]
    drawn = {p.name for p in figures}
    for table in tables.all_tables(data):
        lines += [table.markdown()]
        if table.figure in drawn:
            lines += [f"![{table.figure}]({figures_dir.name}/{table.figure})", ""]
    lines += [table.markdown() for table in guidance_rules.rules_tables(data)]
    measured = fidelity.fidelity_table(data)
    lines += [measured.markdown()] if measured is not None else []
    lines += [setting_table(data).markdown()]
    curves = [p for p in figures if p.name.startswith("curve-")]
    if curves:
        lines += ["### Learning curves", ""]
        lines += [f"![{p.stem}]({figures_dir.name}/{p.name})" for p in curves] + [""]
    lines += [made_by(data), runs_used(data).markdown()]
    return "\n".join(lines)


def report_payload(data: ReportData) -> dict[str, Any]:
    """The report's data for `--json` and report.json."""
    return {
        "results": [r.to_dict() for r in data.results],
        "superseded": [{"run": old, "used": new} for old, new in data.superseded],
        "ignored": [{"run": run, "reason": why} for run, why in data.ignored],
        "lineage": data.lineage,
        "losses": standing.standings(data),  # the key `pdiff report --json` readers already know
        "fidelity": [r.to_dict() for r in data.fidelity],  # on training tasks: in no table of test results
    }


def write_report(
    workspace: Workspace, data: ReportData, out_dir: Path, *, commit: str | None
) -> tuple[Path, list[Path]]:
    """report.md, report.json and figures/*.png under `out_dir`; returns (report.md, PNGs)."""
    from pdiff.workspace.atomic import atomic_write_json, atomic_write_text

    figures_dir = out_dir / "figures"
    figures = all_figures(workspace, data, figures_dir)
    markdown = render_markdown(data, figures, figures_dir, commit=commit)
    atomic_write_text(out_dir / "report.md", markdown)
    atomic_write_json(out_dir / "report.json", report_payload(data))
    return out_dir / "report.md", figures
