"""How long the runs behind a report's numbers ran, summed per stage: the Setting table's compute column and
docs/study.md's compute table."""

from __future__ import annotations

from pdiff.results.cells import Result

STAGES = ("pretrain", "diffuse", "tune", "eval")  # the compute column's, in pipeline order


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min"


def stage_compute(results: list[Result]) -> dict[str, tuple[float | None, int]]:
    """Per stage that ran, in pipeline order: (the seconds the runs behind `results` ran, each run once, None
    where no run has a recorded time; how many runs have none)."""
    runs: dict[str, dict[str, float | None]] = {}
    for result in results:
        for stage, seconds in result.compute_s.items():
            runs.setdefault(stage, {}).update(seconds)
    sums = {}
    for stage in [s for s in STAGES if runs.get(s)]:
        known = [s for s in runs[stage].values() if s is not None]
        sums[stage] = (sum(known) if known else None, len(runs[stage]) - len(known))
    return sums


def compute_cell(seconds: float | None, unknown: int) -> str:
    """A sum of run times: "+" where some runs' times are unknown, "?" where all are."""
    if seconds is None:
        return "?"
    return duration(seconds) + ("+" if unknown else "")


def compute_text(results: list[Result]) -> str:
    """Seconds run per stage by the runs behind `results` (each run once), e.g.
    "pretrain 24 min · tune 1 h 05 min"."""
    parts = [f"{stage} {compute_cell(*sums)}" for stage, sums in stage_compute(results).items()]
    return " · ".join(parts) or "–"
