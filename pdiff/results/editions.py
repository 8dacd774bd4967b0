"""Two editions of one study side by side: each cell and Prompt Diffuser's verdict against it, as the written
rule gives them on each edition's own per-seed scores, and which verdicts changed.

Both editions are judged by today's rule and estimator (`pdiff.verdicts`, `pdiff.stats`) and on the second
edition's reference returns (a first edition may have measured the random policy on fewer episodes), so a
changed verdict comes from the data (more seeds, another protocol), not from a change of words or of scale.
`make results` writes the comparison of every published study that has two editions and the README's
paragraph on them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from pdiff.envs import get_family
from pdiff.errors import PdiffError
from pdiff.results.cells import ReportData, Result
from pdiff.results.report_json import read_report
from pdiff.results.score import Score
from pdiff.results.standing import RULE_LINE, standing
from pdiff.results.tables import OURS, Table, main_results, setting_name, shot_counts

# A report a larger study of the same family replaced moves to DIR/EARLIER_DIR/<name>/
# (pdiff.results.summary); where DIR/<name>/ then holds its second edition, EDITIONS_PAGE there sets the
# two side by side.
EARLIER_DIR = "earlier"
EDITIONS_PAGE = "editions.md"
# the budgets the README's paragraph says changed between editions, where they did
SETTINGS_COMPARED = (
    "pretrain batch per task",
    "pretrain steps",
    "diffuse steps",
    "tune steps",
    "eval episodes",
)
# The first editions' reports (1–2 December 2026) were written before a cell recorded its Prompt-DT's batch;
# all ran the `study` preset, whose batch was then 1 segment per training task a step.
UNRECORDED_IN_FIRST_EDITIONS = {"pretrain batch per task": 1}


@dataclass(frozen=True)
class EditionRow:
    group: str  # family and setting
    method: str
    old: Result | None
    new: Result | None
    old_verdict: str | None  # Prompt Diffuser against this method; None where either cell is missing
    new_verdict: str | None

    @property
    def changed(self) -> bool:
        return None not in (self.old_verdict, self.new_verdict) and self.old_verdict != self.new_verdict


def _groups(data: ReportData) -> set[tuple[str, str, int, str | None]]:
    return {(r.family, r.data_kind, r.shots, r.zero_shot) for r in data.results if r.training_tasks is None}


def _verdict(cells: dict[tuple[str, str], Result], family: str, method: str) -> str | None:
    ours, other = cells.get((OURS, family)), cells.get((method, family))
    if ours is None or other is None or method == OURS:
        return None
    return standing(ours, other)[0]


# raw return → normalised score of one test task, 100·(return − random)/(expert − random): (slope, intercept)
Scale = tuple[float, float]


def reference_scales(data: ReportData) -> dict[tuple[str, int], Scale]:
    """(family, test-task column) → the map its cells' normalised scores used, read off their (seeds ×
    tasks) raw and normalised scores; a column whose cells disagree (scored on other references) is left
    out."""
    points: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for r in data.results:
        if r.training_tasks is None and r.normalized and r.normalized.by_seed_task and r.score.by_seed_task:
            raw, normalized = np.array(r.score.by_seed_task), np.array(r.normalized.by_seed_task)
            for column in range(raw.shape[1]):
                points.setdefault((r.family, column), []).extend(
                    zip(raw[:, column], normalized[:, column], strict=True)
                )
    scales = {}
    for key, pairs in points.items():
        (low, at_low), (high, at_high) = min(pairs), max(pairs)
        if high > low:
            slope = (at_high - at_low) / (high - low)
            if all(abs(slope * x + at_low - slope * low - y) < 1e-6 * max(1.0, abs(y)) for x, y in pairs):
                scales[key] = (slope, at_low - slope * low)
    return scales


def _task_name(family: str, column: int) -> str:
    try:
        return f"task {get_family(family).test_tasks[column]}"
    except (PdiffError, IndexError):
        return f"test task {column + 1}"


def _references(scale: Scale) -> tuple[float, float]:
    slope, intercept = scale
    return -intercept / slope, (100 - intercept) / slope  # the returns scored 0 and 100


def _column_counts(data: ReportData, family: str) -> set[int]:
    return {
        len(r.score.by_seed_task[0])
        for r in data.results
        if r.family == family and r.training_tasks is None and r.score.by_seed_task
    }


def on_references(old: ReportData, new: ReportData) -> tuple[ReportData, list[str]]:
    """`old` with its normalised scores recomputed on `new`'s reference returns for every family whose
    references differ, and a line per such family that says how. A family is re-scored only where every
    cell of both editions covers the same test tasks and each has a reference in `new`; otherwise the line
    says it keeps its own scale."""
    before, after = reference_scales(old), reference_scales(new)
    moved = sorted(
        key for key in before.keys() & after.keys() if not np.allclose(before[key], after[key], rtol=1e-9)
    )
    rescored: set[str] = set()
    lines: list[str] = []
    for family in sorted({family for family, _ in moved}):
        counts = _column_counts(old, family) | _column_counts(new, family)
        columns = next(iter(counts)) if len(counts) == 1 else 0
        changes = []
        for f, column in moved:
            if f == family:
                (random_old, expert_old), (random_new, expert_new) = (
                    _references(scales[(f, column)]) for scales in (before, after)
                )
                changes.append(
                    f"{_task_name(family, column)}: random {random_old:.1f} → {random_new:.1f}, "
                    f"expert {expert_old:.1f} → {expert_new:.1f}"
                )
        if columns and all((family, j) in after for j in range(columns)):
            rescored.add(family)
            lines.append(
                f"{family}: the first edition re-scored on the second's reference returns "
                f"({'; '.join(changes)})."
            )
        else:
            lines.append(
                f"{family}: the editions' reference returns differ ({'; '.join(changes)}), but not every "
                "cell covers the same test tasks, so the first edition keeps its own scale."
            )

    def rescaled(r: Result) -> Result:
        if r.family not in rescored or r.normalized is None or not r.score.by_seed_task:
            return r
        raw = np.array(r.score.by_seed_task)
        scales = [after[(r.family, j)] for j in range(raw.shape[1])]
        normalized = np.column_stack([a * raw[:, j] + b for j, (a, b) in enumerate(scales)])
        return replace(r, normalized=Score.of(normalized))

    return replace(old, results=[rescaled(r) for r in old.results]), lines


def edition_rows(old: ReportData, new: ReportData) -> list[EditionRow]:
    """One row per method of each group (family, data kind, shots) both editions ran, Prompt Diffuser's own
    row first; `old` judged on `new`'s reference returns (`on_references`)."""
    return _rows(on_references(old, new)[0], new)


def _rows(old: ReportData, new: ReportData) -> list[EditionRow]:
    rows = []
    for family, kind, shots, zero_shot in sorted(_groups(old) & _groups(new), key=str):
        old_cells, new_cells = (main_results(d, kind, shots, zero_shot) for d in (old, new))
        methods = {m for (m, f) in (*old_cells, *new_cells) if f == family}
        where = f"{family}, " + (
            setting_name(shots, zero_shot) if shots == 0 else f"{kind} data, {shots} shots"
        )
        for method in sorted(methods, key=lambda m: (m != OURS, m)):
            rows.append(
                EditionRow(
                    where,
                    method,
                    old_cells.get((method, family)),
                    new_cells.get((method, family)),
                    _verdict(old_cells, family, method),
                    _verdict(new_cells, family, method),
                )
            )
    return rows


def _cell(result: Result | None) -> str:
    # the interval by today's estimator: a first edition's stored one may come from an older estimator
    return "—" if result is None else f"{result.score.with_interval().text()} ({len(result.seeds)} seeds)"


def edition_table(rows: list[EditionRow], rescored: list[str] | None = None) -> Table:
    header = ["setting", "method", "first edition", "verdict", "second edition", "verdict", "changed"]
    body = [
        [
            r.group,
            r.method,
            _cell(r.old),
            r.old_verdict or "",
            _cell(r.new),
            r.new_verdict or "",
            "**yes**" if r.changed else "",
        ]
        for r in rows
    ]
    changed = sum(r.changed for r in rows)
    judged = sum(None not in (r.old_verdict, r.new_verdict) for r in rows)
    notes = [
        f"Both editions judged by today's estimator and rule, on the second edition's reference returns. "
        f"{RULE_LINE}",
        *(rescored or []),
        f"{changed} of {judged} verdicts judged in both editions changed.",
    ]
    return Table("Prompt Diffuser's verdicts, first and second edition", header, body, notes)


def edition_page(first: Path, second: Path) -> str:
    """The page `scripts/compare_editions.py FIRST SECOND` prints: the table and the command that made it."""
    new = read_report(second)
    old, rescored = on_references(read_report(first), new)
    table = edition_table(_rows(old, new), rescored).markdown()
    return f"{table}\nMade by `python scripts/compare_editions.py {first} {second}`.\n"


def edition_pairs(results_dir: Path) -> list[tuple[Path, Path]]:
    """(first, second) report.json of each study that moved to results_dir/earlier/NAME with a newer report
    in its place, results_dir/NAME."""
    return [
        (old, results_dir / old.parent.name / "report.json")
        for old in sorted((results_dir / EARLIER_DIR).glob("*/report.json"))
        if (results_dir / old.parent.name / "report.json").is_file()
    ]


def change_of_setting(old: ReportData, new: ReportData) -> str:
    """What differs between the editions' Table 1 cells of Prompt Diffuser (expert data, the largest shot
    count both ran), as " (3 → 10 seeds, pretrain batch per task 1 → 16)"; "" if nothing recorded differs."""
    shots = set(shot_counts(old, "expert")) & set(shot_counts(new, "expert"))
    if not shots:
        return ""
    before, after = (main_results(d, "expert", max(shots)) for d in (old, new))
    pairs = [(before[key], after[key]) for key in before if key[0] == OURS and key in after]
    if not pairs:
        return ""
    (a, b), changes = pairs[0], []
    if len(a.seeds) != len(b.seeds):
        changes.append(f"{len(a.seeds)} → {len(b.seeds)} seeds")
    for key in SETTINGS_COMPARED:
        x, y = a.settings.get(key), b.settings.get(key)
        if x is None and "pretrain steps" in a.settings:
            x = UNRECORDED_IN_FIRST_EDITIONS.get(key)
        if x is not None and y is not None and x != y:
            changes.append(f"{key} {x} → {y}")
    return f" ({', '.join(changes)})" if changes else ""


def editions_paragraph(results_dir: Path, page: Path) -> str:
    """The README's paragraph on what the second edition changed: which of Prompt Diffuser's verdicts moved
    from the first edition, each with its cells' seed counts; "" while no study has two editions."""
    pairs = edition_pairs(results_dir)
    if not pairs:
        return ""
    reports = [(new, read_report(old), read_report(new)) for old, new in pairs]
    rows = [row for _, first, second in reports for row in edition_rows(first, second)]
    judged = [r for r in rows if None not in (r.old_verdict, r.new_verdict)]
    changed = [r for r in judged if r.changed]  # a verdict in both: both cells exist
    links = ", ".join(
        f"[{new.parent.name}]({os.path.relpath(new.parent / EDITIONS_PAGE, page.parent)})"
        + change_of_setting(first, second)
        for new, first, second in reports
    )
    moves = "; ".join(
        f"{r.group}, against {r.method}: {r.old_verdict} → {r.new_verdict} "
        f"({len(r.old.seeds)} → {len(r.new.seeds)} seeds)"
        for r in changed
        if r.old and r.new
    )
    return (
        f"\nAgainst the first edition, {len(changed)} of Prompt Diffuser's {len(judged)} verdicts judged in "
        "both changed"
        + (f": {moves}" if moves else "")
        + ". Both editions are judged by today's estimator and "
        "rule on the second edition's reference returns, so a change comes from the data (the seeds, the "
        "protocol, the budgets), not from the words or the scale. "
        f"Per study, with what changed in Prompt Diffuser's Table 1 cell: {links}.\n"
    )


def edition_pages(results_dir: Path) -> dict[Path, str]:
    """results_dir/NAME/editions.md → its text, for every study with two editions (`make results`)."""
    return {new.parent / EDITIONS_PAGE: edition_page(old, new) for old, new in edition_pairs(results_dir)}
