"""Where Prompt Diffuser stands against every other method of each (family, data kind, shots) group, in the
words of the written verdict rule (`pdiff.verdicts`): behind, stated plainly first, then level, then ahead,
each with the numbers that decided it."""

from __future__ import annotations

import numpy as np

from pdiff.report.collect import ReportData, Result, Score
from pdiff.report.tables import CONTROLS, OURS, UPPER_BOUND, main_results
from pdiff.verdicts import RULE, Verdict, compare

RULE_LINE = f"Verdicts by the written rule (docs/protocol.md): {RULE}."


def _matrix(score: Score | None) -> np.ndarray | None:
    return np.array(score.by_seed_task) if score is not None and score.by_seed_task else None


def standing(ours: Result, other: Result) -> tuple[Verdict, str]:
    """(verdict, evidence) of Prompt Diffuser against another result. Runs without per-seed scores (made
    before they were recorded) or over other tasks have no interval, so the rule says level; the gap is shown."""
    x, y = _matrix(ours.score), _matrix(other.score)
    if x is not None and y is not None and x.shape[1] == y.shape[1]:
        x_norm, y_norm = _matrix(ours.normalized), _matrix(other.normalized)
        if x_norm is None or y_norm is None or x_norm.shape != x.shape or y_norm.shape != y.shape:
            x_norm = y_norm = None
        comparison = compare(x, ours.seeds, y, other.seeds, x_norm, y_norm)
        return comparison.verdict, comparison.evidence()
    gap = ours.score.mean - other.score.mean
    return "level", f"{gap:+.3g}; no per-seed scores: no interval, no verdict"


def _label(method: str) -> str:
    if method == UPPER_BOUND:
        return "the full-data upper bound"
    return f"the {method} control" if method in CONTROLS else method


def standings(data: ReportData) -> list[str]:
    """The report's lines on Prompt Diffuser against every other method of each group."""
    lines: list[str] = []
    groups = sorted({(r.family, r.data_kind, r.shots) for r in data.results})
    for family, kind, shots in groups:
        cells = main_results(data, kind, shots)
        ours = cells.get((OURS, family))
        others = [(m, r) for (m, f), r in cells.items() if f == family and m != OURS]
        where = f"{family} (zero-shot)" if shots == 0 else f"{family} ({kind} few-shot data, {shots} shots)"
        if ours is None:
            if others:
                lines.append(f"- {where}: no prompt-diffuser run to compare.")
            continue
        grouped: dict[Verdict, list[str]] = {"level": [], "ahead": []}
        for method, other in sorted(others, key=lambda mr: -mr[1].score.mean):
            verdict, evidence = standing(ours, other)
            if verdict == "behind":
                lines.append(f"- {where}: **prompt-diffuser is behind {_label(method)}**: {ours.score.text()} vs "
                             f"{other.score.text()} ({evidence}).")  # fmt: skip
            else:
                grouped[verdict].append(f"{method} ({evidence})")
        for verdict, phrase in (("level", "is level with"), ("ahead", "is ahead of")):
            if grouped[verdict]:
                lines.append(
                    f"- {where}: prompt-diffuser ({ours.score.text()}) {phrase} {'; '.join(grouped[verdict])}."
                )
    return lines
