"""How results read in a terminal: one headline per run, rounded numbers, nothing printed as a raw `None`.

`--json` never goes through here: scripts get every field, unrounded.
"""

from __future__ import annotations

import difflib
import shlex
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from rich.table import Table

from pdiff.console import err, out
from pdiff.errors import UsageError
from pdiff.results.inventory import headline
from pdiff.workspace.root import Workspace

if TYPE_CHECKING:
    from pdiff.workflows.steps import StepResult

__all__ = ["choice", "compact", "headline", "key_values", "number"]


def number(value: Any) -> str:
    """4 significant digits for floats, '' for None, lists shortened; everything else as str."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        shown = ", ".join(number(v) for v in value[:8])
        return f"[{shown}{', …' if len(value) > 8 else ''}]"
    if isinstance(value, dict):
        return f"{{{len(value)} entries}}"
    return str(value)


def compact(summary: dict[str, Any]) -> str:
    """The headline in a few characters, for a table row: `850.5 (94 norm.), 93%` or `loss 0.0123`."""
    if summary.get("return_mean") is not None and "prompt" in summary:
        text = f"{summary['return_mean']:.1f}"
        if summary.get("normalized_mean") is not None:
            text += f" ({summary['normalized_mean']:.0f} norm.)"
        if summary.get("success_rate_mean") is not None:
            text += f", {100 * summary['success_rate_mean']:.0f}%"
        return text
    for key, name in (("final_loss", "loss"), ("final_loss_dm", "L_DM")):
        if summary.get(key) is not None:
            return f"{name} {summary[key]:.3g}"
    if "datasets" in summary:
        return f"{summary['datasets']} datasets"
    return "report.md" if "report" in summary else ""


def key_values(title: str, values: dict[str, Any]) -> None:
    """A two-column table of the values that are set (None left out), numbers rounded."""
    table = Table("setting", "value", title=title, title_justify="left", show_header=False)
    for key, value in values.items():
        if value is not None and value != {}:
            table.add_row(key, number(value))
    out.print(table)


def choice(value: str | None, known: Iterable[str], flag: str) -> str | None:
    """`value` if it is one of `known` (None passes); otherwise a usage error naming the closest ones."""
    names = list(known)
    if value is None or value in names:
        return value
    close = difflib.get_close_matches(value, names, n=2, cutoff=0.5)
    suggestion = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    raise UsageError(f"unknown {flag} {value!r}", hint=f"{suggestion}choose one of: {', '.join(names)}")


def results_table_rows(summary: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """An eval summary's per-task rows: task, return mean ± std, normalised score, success rate."""
    rows = []
    for task, row in summary["per_task"].items():
        norm = row.get("normalized")
        success = row.get("success_rate")
        rows.append(
            (
                task,
                f"{row['return_mean']:.1f} ± {row['return_std']:.1f}",
                "" if norm is None else f"{norm:.1f}",
                "" if success is None else f"{100 * success:.0f}%",
            )
        )
    return rows


def run_summary(title: str, run_id: str, summary: dict[str, Any]) -> None:
    """A finished stage's summary, one metric a row."""
    table = Table("metric", "value", title=f"{title}  ({run_id})")
    for key, value in summary.items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    out.print(table)


def tracking_hint(workspace: Workspace) -> None:
    """Where a training stage's curves can be browsed (TensorBoard, when installed)."""
    from pdiff.tracking import available

    if available():
        runs = shlex.quote(str(workspace.runs_dir.resolve()))
        err.print(f"curves: tensorboard --logdir {runs}", highlight=False, soft_wrap=True, markup=False)


def steps_table(title: str, results: Iterable[StepResult]) -> None:
    """What a pipeline command did per step (reproduce, demo): its state, run and headline."""
    table = Table("step", "state", "run", "result", title=title)
    for r in results:
        table.add_row(r.step, r.state, r.run_id or "", headline(r.summary or {}))
    out.print(table)
