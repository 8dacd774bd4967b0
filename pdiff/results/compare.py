"""Compare the cells of two report.json files: the same study run twice, by two commits or on two machines.

A cell is keyed by what it measures (family, method, data kind, shots, guidance variant, zero-shot setting,
training tasks); what names a run or a moment (run ids, times, compute seconds, versions) is left out, so two
reports of the same numbers compare equal however their runs were named.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CELL_KEY = ("family", "method", "data_kind", "shots", "variant", "zero_shot", "training_tasks")
SCORES = ("score", "normalized", "success")
# Fields that name a run, a moment or the machine, not a number the study measured.
NOT_MEASURED = {
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
    before: dict[str, Any], after: dict[str, Any], tolerance: float = 0.0
) -> list[Difference]:
    """Every measured field that differs between the two reports' cells (by more than `tolerance`)."""
    cells = [{cell_name(r): r for r in report["results"]} for report in (before, after)]
    differences = [
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
