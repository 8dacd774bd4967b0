"""Two editions of one study side by side: each cell and Prompt Diffuser's verdict against it, as the written
rule gives them on each edition's own per-seed scores, and which verdicts changed.

Both editions are judged by today's rule and estimator (`pdiff.verdicts`, `pdiff.stats`), so a changed verdict
comes from the data (more seeds, another protocol), not from a change of words.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pdiff.results.cells import ReportData, Result
from pdiff.results.report_json import read_report
from pdiff.results.standing import RULE_LINE, standing
from pdiff.results.tables import OURS, Table, main_results, setting_name


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


def edition_rows(old: ReportData, new: ReportData) -> list[EditionRow]:
    """One row per method of each group (family, data kind, shots) both editions ran, Prompt Diffuser's own
    row first."""
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


def edition_table(rows: list[EditionRow]) -> Table:
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
        f"Both editions judged by today's estimator and rule. {RULE_LINE}",
        f"{changed} of {judged} verdicts judged in both editions changed.",
    ]
    return Table("Prompt Diffuser's verdicts, first and second edition", header, body, notes)


def edition_page(first: Path, second: Path) -> str:
    """The page `scripts/compare_editions.py FIRST SECOND` prints: the table and the command that made it."""
    table = edition_table(edition_rows(read_report(first), read_report(second))).markdown()
    return f"{table}\nMade by `python scripts/compare_editions.py {first} {second}`.\n"
