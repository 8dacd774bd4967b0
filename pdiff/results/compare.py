"""Compare the cells of two report.json files: the same study run twice, by two commits, on two machines or
under two settings (field by field, `compare_reports`; or whether each cell moved beyond what its seeds
vary, `cell_moves`).

A cell is keyed by what it measures (family, method, data kind, shots, guidance variant, zero-shot setting,
training tasks); what names a run or a moment (run ids, times, compute seconds, versions) is left out, so two
reports of the same numbers compare equal however their runs were named.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pdiff.results.bound import compare_results
from pdiff.results.cells import ReportData, Result
from pdiff.results.report_json import restated
from pdiff.verdicts import Comparison

CELL_KEY = ("family", "method", "data_kind", "shots", "variant", "zero_shot", "training_tasks")
SCORES = ("score", "normalized", "success")
# Fields that name a run, a moment, the machine or the command, not a number the study measured.
NOT_MEASURED = {
    "command",
    "run_id",
    "created_at",
    "compute_s",
    "diffuse_run",
    "pretrain_run",
    "pretrain_runs",
    "tune_run",
    "versions",
    "settings",
}


@dataclass(frozen=True)
class Difference:
    cell: str
    field: str
    before: Any
    after: Any
    gap: float | None  # the largest absolute difference of two numbers; None where not numeric

    def line(self) -> str:
        gap = "" if self.gap is None else f" (largest gap {self.gap:.6g})"
        return f"{self.cell}: {self.field}: {self.before!r} → {self.after!r}{gap}"


def cell_name(result: dict[str, Any]) -> str:
    return " ".join(f"{key}={result.get(key)}" for key in CELL_KEY if result.get(key) is not None)


def _numbers(value: Any) -> list[float] | None:
    """Every number in a nested list (a by_seed_task matrix), or None when it holds anything else."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return [float(value)]
    if not isinstance(value, list):
        return None
    flat: list[float] = []
    for item in value:
        numbers = _numbers(item)
        if numbers is None:
            return None
        flat += numbers
    return flat


def _gap(before: Any, after: Any) -> float | None:
    a, b = _numbers(before), _numbers(after)
    if a is None or b is None or len(a) != len(b):
        return None
    return max((abs(x - y) for x, y in zip(a, b, strict=True)), default=0.0)


def _differs(before: Any, after: Any, tolerance: float) -> tuple[bool, float | None]:
    gap = _gap(before, after)
    if gap is None:
        return before != after, None
    return gap > tolerance, gap


def compare_reports(
    before: dict[str, Any], after: dict[str, Any], tolerance: float = 0.0, common: bool = False
) -> list[Difference]:
    """Every measured field that differs between the two reports' cells (by more than `tolerance`); a cell
    only one report holds is a difference too, unless `common` (a report of part of a study, such as its
    Table 1 regenerated elsewhere, against the whole)."""
    cells = [{cell_name(r): r for r in report["results"]} for report in (before, after)]
    differences = []
    if not common:
        differences += [
            Difference(name, "cell", "present", "missing", None) for name in cells[0] if name not in cells[1]
        ]
        differences += [
            Difference(name, "cell", "missing", "present", None) for name in cells[1] if name not in cells[0]
        ]
    for name in sorted(cells[0].keys() & cells[1].keys()):
        old, new = cells[0][name], cells[1][name]
        for field in sorted((old.keys() | new.keys()) - NOT_MEASURED):
            if field in SCORES and isinstance(old.get(field), dict) and isinstance(new.get(field), dict):
                pairs = [
                    (f"{field}.{k}", old[field].get(k), new[field].get(k)) for k in old[field] | new[field]
                ]
            else:
                pairs = [(field, old.get(field), new.get(field))]
            for label, a, b in pairs:
                differs, gap = _differs(a, b, tolerance)
                if differs:
                    differences.append(Difference(name, label, a, b, gap))
    return differences


@dataclass(frozen=True)
class Move:
    """One cell in two reports of the same study: did it move beyond what its seeds vary?"""

    cell: str
    before: Result
    after: Result
    inside: bool  # each mean lies inside the other's 95% interval
    comparison: Comparison | None  # after against before by the verdict rule (paired where seeds match)

    @property
    def verdict(self) -> str:
        return self.comparison.verdict if self.comparison is not None else "level"


def cell_moves(before: ReportData, after: ReportData) -> list[Move]:
    """Every cell both reports hold, the second against the first: the same study under another setting
    (precision, machine), where "level" by the verdict rule means the setting did not move the cell. Each
    interval is restated by today's estimator."""
    cells = [{cell_name(asdict(r)): restated(r) for r in data.results} for data in (before, after)]
    moves = []
    for name in sorted(cells[0].keys() & cells[1].keys()):
        old, new = cells[0][name], cells[1][name]
        inside = all(
            s.low is not None and s.high is not None and s.low <= o.mean <= s.high
            for s, o in ((old.score, new.score), (new.score, old.score))
        )
        moves.append(Move(name, old, new, inside, compare_results(new, old)))
    return moves


def moves_text(moves: list[Move]) -> str:
    """One line per cell: both scores with their intervals, whether each mean lies in the other's interval,
    and the rule's word for the second against the first; then the counts."""
    lines = []
    for move in moves:
        evidence = move.comparison.evidence() if move.comparison else "no per-seed scores"
        inside = "yes" if move.inside else "no"
        lines.append(
            f"{move.cell}: {move.before.score.text()} → {move.after.score.text()}; means inside each other's "
            f"interval: {inside}; {move.verdict} ({evidence})"
        )
    level, inside_both = sum(m.verdict == "level" for m in moves), sum(m.inside for m in moves)
    lines.append(
        f"{level} of {len(moves)} cells level by the verdict rule; "
        f"{inside_both} of {len(moves)} inside each other's interval"
    )
    return "\n".join(lines)


def moves_page(moves: list[Move], before: Path, after: Path) -> str:
    """The page `scripts/compare_reports.py BEFORE AFTER --moves --out PAGE` writes: `moves` (of those two
    reports) as a list, and the command that made it."""
    *cells, counts = moves_text(moves).splitlines()
    lines = "\n".join(f"- {line}" for line in cells)
    command = f"python scripts/compare_reports.py {before} {after} --moves"
    heading = "### Each cell of the second report against the first"
    return f"{heading}\n\n{lines}\n\n{counts}.\n\nMade by `{command}`.\n"
