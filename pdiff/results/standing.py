"""Where Prompt Diffuser stands against every other method of each (family, data kind, shots) group, in the
words of the written verdict rule (`pdiff.verdicts`): behind, stated plainly first, then level, then ahead,
each with the numbers that decided it."""

from __future__ import annotations

from pdiff.results.bound import FULL_DATA, compare_results, is_upper_bound
from pdiff.results.cells import ReportData, Result
from pdiff.results.tables import (
    CONTROLS,
    KIND_ORDER,
    OURS,
    Table,
    main_results,
    protocol_methods,
    setting_name,
    settings_in,
    table3_families,
)
from pdiff.verdicts import RULE, Verdict

RULE_LINE = f"Verdicts by the written rule (docs/protocol.md): {RULE}."


def standing(ours: Result, other: Result) -> tuple[Verdict, str]:
    """(verdict, evidence) of Prompt Diffuser against another result. Runs without per-seed scores (made
    before they were recorded) or over other tasks have no interval, so the rule says level; the gap is
    shown."""
    comparison = compare_results(ours, other)
    if comparison is not None:
        return comparison.verdict, comparison.evidence()
    gap = ours.score.mean - other.score.mean
    return "level", f"{gap:+.3g}; no per-seed scores: no interval, no verdict"


def _label(method: str, cells: dict[str, Result]) -> str:
    """How a behind line names the other method: full-data is "the upper bound" only where it is one."""
    if method == FULL_DATA and is_upper_bound(cells[method], cells):
        return "the full-data upper bound"
    return f"the {method} control" if method in CONTROLS else method


def standings(data: ReportData) -> list[str]:
    """The report's lines on Prompt Diffuser against every other method of each group."""
    lines: list[str] = []
    groups = sorted({(r.family, r.data_kind, r.shots, r.zero_shot or "") for r in data.results})
    for family, kind, shots, zero_shot in groups:
        cells = main_results(data, kind, shots, zero_shot or None)
        ours = cells.get((OURS, family))
        others = [(m, r) for (m, f), r in cells.items() if f == family and m != OURS]
        setting = setting_name(shots, zero_shot) if shots == 0 else f"{kind} few-shot data, {shots} shots"
        where = f"{family} ({setting})"
        if ours is None:
            if others:
                lines.append(f"- {where}: no prompt-diffuser run to compare.")
            continue
        grouped: dict[Verdict, list[str]] = {"level": [], "ahead": []}
        for method, other in sorted(others, key=lambda mr: -mr[1].score.mean):
            verdict, evidence = standing(ours, other)
            if verdict == "behind":
                label = _label(method, {m: r for (m, f), r in cells.items() if f == family})
                lines.append(
                    f"- {where}: **prompt-diffuser is behind {label}**: {ours.score.text()} vs "
                    f"{other.score.text()} ({evidence})."
                )
            else:
                grouped[verdict].append(f"{method} ({evidence})")
        for verdict, phrase in (("level", "is level with"), ("ahead", "is ahead of")):
            if grouped[verdict]:
                lines.append(
                    f"- {where}: prompt-diffuser ({ours.score.text()}) {phrase} "
                    f"{'; '.join(grouped[verdict])}."
                )
    return lines + ablation_standings(data)


def ablation_cells(data: ReportData) -> dict[tuple[str, int], dict[str, Result]]:
    """Prompt Diffuser's cells per guidance rule, by (family, shots), expert few-shot data."""
    rules_run: dict[tuple[str, int], dict[str, Result]] = {}
    for r in data.results:
        if r.method == OURS and r.data_kind == "expert" and r.shots > 0 and r.variant:
            rules_run.setdefault((r.family, r.shots), {})[r.variant] = r
    return rules_run


def ablation_standings(data: ReportData) -> list[str]:
    """The guidance ablation in the rule's words: the paper's projection (`project`) against each other rule
    of Prompt Diffuser on the same family, expert few-shot data."""
    lines = []
    for (family, shots), rules in sorted(ablation_cells(data).items()):
        projection = rules.get("project")
        if projection is None or len(rules) < 2:
            continue
        grouped: dict[Verdict, list[str]] = {"behind": [], "level": [], "ahead": []}
        for rule, other in sorted(rules.items()):
            if rule != "project":
                verdict, evidence = standing(projection, other)
                grouped[verdict].append(f"`{rule}` ({evidence})")
        where = f"{family} (guidance ablation, expert few-shot data, {shots} shots)"
        for verdict, phrase in (
            ("behind", "**`project` is behind**"),
            ("level", "`project` is level with"),
            ("ahead", "`project` is ahead of"),
        ):
            if grouped[verdict]:
                lines.append(f"- {where}: {phrase} {'; '.join(grouped[verdict])}.")
    return lines


def verdict_grid(data: ReportData, families: list[str], shots: int) -> str:
    """Prompt Diffuser's verdict against each other method per family, one cell per family with a word per
    few-shot data kind (expert / medium / random; "–" where either cell is missing): the README's compact
    form of `standings`, by the same rule."""
    by_kind = {kind: main_results(data, kind, shots) for kind in KIND_ORDER}
    methods = [m for m in protocol_methods((k for c in by_kind.values() for k in c), families) if m != OURS]

    def word(kind: str, method: str, family: str) -> str:
        ours, other = by_kind[kind].get((OURS, family)), by_kind[kind].get((method, family))
        return standing(ours, other)[0] if ours and other else "–"

    header = [f"against ({' / '.join(KIND_ORDER)} few-shot data, {shots} shots)", *families]
    rows = [
        [method, *(" / ".join(word(kind, method, family) for kind in KIND_ORDER) for family in families)]
        for method in methods
    ]
    return Table("", header, rows).body()


def ablation_grid(data: ReportData, families: list[str], shots: int) -> str:
    """The paper's projection (`project`) against each other guidance rule per family, by the rule; "–"
    where a family's ablation did not run that rule; "" where no family ran an ablation."""
    by_family = ablation_cells(data)
    cells = {family: by_family.get((family, shots), {}) for family in families}
    rules = sorted({rule for run in cells.values() for rule in run if "project" in run} - {"project"})
    if not rules:
        return ""

    def word(family: str, rule: str) -> str:
        projection, other = cells[family].get("project"), cells[family].get(rule)
        return standing(projection, other)[0] if projection and other else "–"

    header = [f"`project` against (expert few-shot data, {shots} shots)", *families]
    return Table("", header, [[f"`{rule}`", *(word(f, rule) for f in families)] for rule in rules]).body()


def table3_grid(data: ReportData) -> str:
    """Table 3 in the rule's words: Prompt Diffuser against each method on every family with a Table 3 row,
    one column per (family, setting): few-shot with expert data, then each zero-shot setting; "" if none."""
    columns = [
        (
            f"{family}, {setting_name(shots, zero_shot)}",
            family,
            main_results(data, "expert", shots, zero_shot),
        )
        for family in table3_families(data)
        for shots, zero_shot in settings_in([r for r in data.results if r.family == family])
    ]
    columns = [(name, family, cells) for name, family, cells in columns if (OURS, family) in cells]
    if not columns:
        return ""
    own = [(m, f) for _, family, cells in columns for m, f in cells if f == family]
    methods = [m for m in protocol_methods(own, {f for _, f in own}) if m != OURS]

    def word(method: str, family: str, cells: dict[tuple[str, str], Result]) -> str:
        other = cells.get((method, family))
        return standing(cells[(OURS, family)], other)[0] if other else "–"

    header = ["against (Table 3)", *(name for name, _, _ in columns)]
    rows = [[method, *(word(method, family, cells) for _, family, cells in columns)] for method in methods]
    return Table("", header, rows).body()
