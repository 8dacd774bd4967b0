"""The tables of what stands behind the numbers: the Setting table (each family's simulator, horizon, seeds,
budgets, compute and versions beside the paper's setting), the eval runs used, one per cell, and the
commands that made them."""

from __future__ import annotations

import shlex

from pdiff.envs import get_family
from pdiff.errors import PdiffError
from pdiff.results import paper
from pdiff.results.cells import ReportData
from pdiff.results.runtime import compute_text
from pdiff.results.tables import FAMILY_ORDER, Table, ordered, seed_counts, split_notes


def family_facts(family: str) -> tuple[str, int | None]:
    try:
        spec = get_family(family)
    except PdiffError:
        return "unknown family", None
    return spec.simulator, spec.horizon


def setting_table(data: ReportData) -> Table:
    rows = []
    for family in ordered(set(data.families()), FAMILY_ORDER):
        results = [r for r in data.results if r.family == family]
        simulator, horizon = family_facts(family)
        horizons = sorted({r.horizon or horizon or 0 for r in results})
        budgets: dict[str, set] = {}
        for r in results:
            for key, value in r.settings.items():
                budgets.setdefault(key, set()).add(str(value))
        versions = {f"{k} {v}" for r in results for k, v in r.versions.items() if v}
        rows.append(
            [
                family,
                simulator,
                paper.simulator_difference(family),
                ", ".join(map(str, horizons)),
                seed_counts(results),
                ", ".join(sorted({str(r.shots) for r in results})),
                "; ".join(f"{k}: {'/'.join(sorted(v))}" for k, v in sorted(budgets.items())),
                compute_text(results),
                ", ".join(sorted(versions)),
            ]
        )
    notes = [
        "Paper's setting: " + "; ".join(f"{k}: {v}" for k, v in paper.PAPER_SETTING.items()) + ".",
        "Budgets (steps, episodes) are those recorded in the runs behind the numbers; small budgets "
        "(smoke/quick/study presets) give numbers that are not comparable with the paper's.",
        "Compute: how long the runs behind the numbers ran, summed per stage (each run once; collect and "
        "SAC teachers not included; runs that ran beside others count in full). + : the stage also has runs "
        "resumed before pdiff recorded when they stopped, whose time is not in the sum; ? : only such runs.",
        *split_notes(ordered(set(data.families()), FAMILY_ORDER)),
    ]
    header = [
        "family",
        "simulator",
        "difference from the paper",
        "horizon",
        "seeds",
        "shots",
        "budgets",
        "compute",
        "versions",
    ]
    return Table("Setting: ours vs the paper's", header, rows, notes)


def runs_used(data: ReportData) -> Table:
    rows = [
        [
            r.family,
            r.method,
            r.variant or "",
            r.data_kind,
            str(r.shots) + (f" ({r.zero_shot})" if r.zero_shot else ""),
            f"`{r.run_id}`",
        ]
        for r in sorted(data.results, key=lambda r: r.cell)
    ]
    notes = [f"`{old}` is superseded by the newer `{new}` (same cell)." for old, new in data.superseded]
    notes += [f"`{run}` is not included: {why}." for run, why in data.ignored]
    header = ["family", "method", "variant", "data", "shots", "eval run"]
    return Table("Runs used (the newest finished eval run per cell)", header, rows, notes)


def eval_commands(data: ReportData) -> list[str]:
    """The distinct commands behind the report's eval runs, oldest first, as the runs recorded them (the
    workspace as WS: a reader re-runs them in a workspace of their own)."""
    ordered_results = sorted([*data.results, *data.fidelity], key=lambda r: (r.created_at, r.run_id))
    return list(dict.fromkeys(shlex.join(r.command) for r in ordered_results if r.command))


def made_by(data: ReportData) -> str:
    """The report's "Made by" section: the commands, or a line saying the runs did not record them."""
    found = eval_commands(data)
    if not found:
        return "### Made by\n\nThe eval runs behind this report did not record the command that made them.\n"
    intro = (
        "The commands that made the eval runs behind this report, as each run recorded them "
        "(WS: the workspace):"
    )
    return "\n".join(["### Made by", "", intro, "", "```", *found, "```", ""])
