"""Markdown tables laid out like the paper's: Table 1 (methods × families), Table 2 (few-shot data quality),
the guidance ablation, Table 3 (Ant-dir OOD), with the paper's figures beside ours (where Prompt Diffuser
stands against each method is `pdiff.results.standing`'s; the Setting table and the runs used are
`pdiff.results.setting_table`'s)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from pdiff.envs import get_family
from pdiff.errors import PdiffError
from pdiff.methods.guidance import GUIDANCE_RULES
from pdiff.methods.zero_shot import SETTING_TEXT, ZERO_SHOT_SETTINGS
from pdiff.results import paper
from pdiff.results.bound import FULL_DATA, bound_note
from pdiff.results.cells import ReportData, Result, average_score, on_seeds

METHOD_ORDER = (
    "prompt-diffuser",
    "ptdt",
    "full-ft",
    "soft-prompt",
    "adaptor",
    "lora",
    "prompt-dt",
    "random-prompt",
    "full-data",
)
FAMILY_ORDER = ("cheetah-dir", "cheetah-vel", "ant-dir", "metaworld-reach")
KIND_ORDER = ("expert", "medium", "random")
RULE_ORDER = GUIDANCE_RULES
OURS = "prompt-diffuser"
CONTROLS = {"random-prompt"}


def ordered(values: set[str] | list[str], order: tuple[str, ...]) -> list[str]:
    """Known names in the paper's order first, then any others alphabetically (new methods are rows too)."""
    unique = set(values)
    return [v for v in order if v in unique] + sorted(unique - set(order))


def protocol_methods(cells: Iterable[tuple[str, str]], families: Iterable[str]) -> list[str]:
    """The methods with a (method, family) cell in `families`, in the paper's order, leaving out runs with
    hand-set settings (labelled "method [setting]"): the rows of a table of the protocol's cells."""
    wanted = set(families)
    return ordered({m for m, f in cells if f in wanted and "[" not in m}, METHOD_ORDER)


def is_ood(family: str) -> bool:
    return family.endswith("-ood")


def is_metaworld(family: str) -> bool:
    return family.startswith("metaworld-")


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)
    figure: str | None = None  # the PNG (under figures/) drawn from this table

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", self.body().rstrip("\n"), ""]
        lines += [f"{note}" for note in self.notes if note]
        return "\n".join(lines).rstrip() + "\n"

    def body(self) -> str:
        """The table alone: header, rule and rows, without title or notes."""
        lines = ["| " + " | ".join(self.header) + " |", "|" + "|".join("---" for _ in self.header) + "|"]
        return "\n".join([*lines, *("| " + " | ".join(row) + " |" for row in self.rows)]) + "\n"


def score_text(result: Result | None, *, detail: bool = False) -> str:
    """Raw return mean ± std over seeds, then the normalised score; Meta-World adds the success rate."""
    if result is None:
        return "–"
    text = result.score.text()
    if detail and result.normalized is not None:
        text += f" · norm {result.normalized.text()}"
    if detail and is_metaworld(result.family) and result.success is not None:
        text += f" · success {result.success.text(100, 0, '%')}"
    return text


def main_variant(results: list[Result]) -> Result:
    """Of one method's variants in a cell group, the paper's setting (projection) if run, else the newest."""
    by_rule = {r.variant: r for r in sorted(results, key=lambda r: r.created_at)}
    return by_rule.get("project") or max(results, key=lambda r: r.created_at)


def main_results(
    data: ReportData, data_kind: str, shots: int, zero_shot: str | None = None
) -> dict[tuple[str, str], Result]:
    """(method, family) → the result shown in Table 1-style cells for this data kind and shot count (shots 0:
    and this zero-shot setting)."""
    groups: dict[tuple[str, str], list[Result]] = {}
    for r in data.results:
        if r.data_kind == data_kind and r.shots == shots and r.zero_shot == zero_shot:
            groups.setdefault((r.method, r.family), []).append(r)
    return {key: main_variant(results) for key, results in groups.items()}


def shot_counts(data: ReportData, data_kind: str) -> list[int]:
    """The few-shot counts run with this data kind (zero-shot runs belong to Table 3 alone)."""
    return sorted({r.shots for r in data.results if r.data_kind == data_kind and r.shots > 0})


def table1(data: ReportData, shots: int) -> Table:
    cells = main_results(data, "expert", shots)
    families = ordered({f for _, f in cells if not is_ood(f)}, FAMILY_ORDER)
    methods = ordered({m for m, f in cells if f in families}, METHOD_ORDER)
    in_paper = [f for f in families if f in paper.PAPER_FAMILIES]
    header = ["method"]
    for family in families:
        header.append(f"{family} (ours)")
        if family in paper.PAPER_FAMILIES:
            header.append(f"{paper.PAPER_FAMILIES[family]} (paper)")
    header += ["average (ours)", "average (paper)", "tunable (paper)"]
    rows = []
    for method in methods:
        row = [method]
        reported = paper.TABLE1.get(method, {})
        for family in families:
            row.append(score_text(cells.get((method, family)), detail=True))
            if family in paper.PAPER_FAMILIES:
                row.append(reported[family].text() if family in reported else "n/r")
        ours = [cells[(method, f)] for f in paper.PAPER_FAMILIES if (method, f) in cells]
        full = len(ours) == len(paper.PAPER_FAMILIES)
        average = average_score(ours) if full else None  # None: a bare mean (no per-seed scores, other seeds)
        bare = f"{np.mean([r.score.mean for r in ours]):.1f}" if full else "–"
        row.append(average.text() if average else bare)
        row.append(reported["average"].text() if "average" in reported else "n/r")
        row.append(paper.TABLE1_TUNABLE.get(method, "n/r"))
        rows.append(row)
    notes = [
        "Raw return, mean ± std over seeds of the mean over the test tasks; expert few-shot data, "
        f"{shots} shots. Each cell adds the normalised score 100·(R − R_random)/(R_expert − R_random); "
        "Meta-World cells the success rate.",
        "Our average, where a method has all four paper families"
        + ("" if len(in_paper) == len(paper.PAPER_FAMILIES) else " (not the case here)")
        + ": their mean ± std over seeds of the per-seed average [95% bootstrap interval resampling those "
        "seeds] (a bare mean where the four lack per-seed scores or share no seeds).",
        *split_notes(families),
        bound_note({f: {m: r for (m, g), r in cells.items() if g == f} for f in families}),
    ]
    return Table(f"Table 1: few-shot policy generalisation ({shots} expert shots)", header, rows, notes)


def seed_counts(results: list[Result]) -> str:
    """How many seeds stand behind `results`' cells, e.g. "5" or "5, 10"."""
    return ", ".join(sorted({str(len(r.seeds)) for r in results}, key=int))


def table2(data: ReportData, family: str, shots: int) -> Table | None:
    if is_ood(family):  # its rows are Table 3's
        return None
    kinds = ordered(
        {r.data_kind for r in data.results if r.family == family and r.shots == shots}, KIND_ORDER
    )
    if len(kinds) < 2:
        return None
    cells = {kind: main_results(data, kind, shots) for kind in kinds}
    methods = ordered({m for kind in kinds for m, f in cells[kind] if f == family}, METHOD_ORDER)
    rows = []
    for method in methods:
        rows.append([method] + [score_text(cells[kind].get((method, family)), detail=True) for kind in kinds])
        reported = paper.TABLE2.get(method, {}).get(family)
        if reported is not None:
            paper_cells = [reported[kind].text() if kind in reported else "n/r" for kind in kinds]
            rows.append([f"{method} (paper)", *paper_cells])
    shown = [r for kind in kinds for (_, f), r in cells[kind].items() if f == family]
    notes = [
        f"{family}, {shots} shots, seeds per cell: {seed_counts(shown)}; columns: the quality of the "
        "few-shot data the prompt or tuning uses.",
        paper.TABLE2_NOTE,
        *split_notes([family]),
        bound_note({kind: {m: r for (m, f), r in cells[kind].items() if f == family} for kind in kinds}),
    ]
    return Table(f"Table 2: few-shot data quality on {family}", ["method", *kinds], rows, notes)


def trace_text(result: Result | None) -> str:
    """ "; removes 0.03, cos -0.03" from the diffuse run's guidance medians (empty where none were logged)."""
    trace = result.guidance_trace if result is not None else {}
    parts = [
        f"{name} {trace[key]:{form}}"
        for key, name, form in (("removed_share", "removes", ".2f"), ("cosine", "cos", "+.2f"))
        if trace.get(key) is not None
    ]
    return "; " + ", ".join(parts) if parts else ""


def ablation_cells(data: ReportData, shots: int) -> dict[str, dict[str, Result]]:
    """family → guidance rule (the variant) → Prompt Diffuser's expert cell, for families with several, each
    on the seeds every rule of the family ran (Table 1's default rule may have run more: its extra seeds
    saw few-shot draws the others never did)."""
    by_family: dict[str, dict[str, Result]] = {}
    for r in data.results:
        if (
            r.method == OURS
            and r.data_kind == "expert"
            and r.shots == shots
            and r.variant
            and not is_ood(r.family)
        ):
            by_family.setdefault(r.family, {})[r.variant] = r
    cells = {}
    for family, rules in by_family.items():
        if len(rules) > 1:
            fewest = min(rules.values(), key=lambda r: len(r.seeds)).seeds
            shared = [seed for seed in fewest if all(seed in r.seeds for r in rules.values())]
            cells[family] = {rule: on_seeds(r, shared) if len(shared) > 1 else r for rule, r in rules.items()}
    return cells


def ablation(data: ReportData, shots: int) -> Table | None:
    by_family = ablation_cells(data, shots)
    if not by_family:
        return None
    families = ordered(set(by_family), FAMILY_ORDER)
    rules = ordered({rule for rules in by_family.values() for rule in rules}, RULE_ORDER)
    rows = []
    for rule in rules:
        row = [f"`{rule}`" + (f" — {paper.ABLATION_NAMES[rule]}" if rule in paper.ABLATION_NAMES else "")]
        for family in families:
            result, base = by_family[family].get(rule), by_family[family].get("none")
            text = score_text(result, detail=True)
            if result is not None and base is not None and base.score.mean != 0:
                text += (
                    f" ({100 * (result.score.mean - base.score.mean) / abs(base.score.mean):+.1f}% vs `none`)"
                )
            row.append(text + trace_text(result))
        rows.append(row)
    shown = [r for rules in by_family.values() for r in rules.values()]
    notes = [
        f"prompt-diffuser, expert few-shot data, {shots} shots, seeds per cell: {seed_counts(shown)} (every "
        "rule on the seeds all rules of its family ran, so Table 1's default rule may show fewer here); "
        "`--guidance` of the diffuse run; "
        "removes: the median share of ‖g_PLM‖ the rule took out over the diffuse run's steps, cos: the "
        "median cosine between g_DM and g_PLM (runs made before they were logged show neither).",
        paper.ABLATION_NOTE,
    ]
    for family in families:
        best = max(by_family[family].values(), key=lambda r: r.score.mean)
        if best.variant != "project" and "project" in by_family[family]:
            notes.append(
                f"On {family} the paper's projection does not have the best mean: `{best.variant}` "
                f"scores {best.score.text()} against {by_family[family]['project'].score.text()} "
                "(the verdicts: Where Prompt Diffuser stands)."
            )
    return Table("Guidance ablation", ["guidance", *families], rows, notes)


def setting_name(shots: int, zero_shot: str | None = None) -> str:
    if shots:
        return f"few-shot ({shots} shots)"
    return f"zero-shot, {zero_shot}" if zero_shot else "zero-shot"


def settings_in(results: list[Result]) -> list[tuple[int, str | None]]:
    """The (shots, zero-shot setting) pairs of `results`: few-shot by shot count, then zero-shot: nearest,
    none, then older settings."""
    known = list(ZERO_SHOT_SETTINGS)

    def order(setting: tuple[int, str | None]) -> tuple[bool, int, int, str]:
        shots, zero_shot = setting
        rank = known.index(zero_shot) if zero_shot in known else len(known)
        return (shots == 0, shots, rank, zero_shot or "")

    return sorted({(r.shots, r.zero_shot) for r in results}, key=order)


def table3_families(data: ReportData) -> list[str]:
    """Families with a Table 3 row: the out-of-distribution ones, and any with zero-shot runs."""
    families = ordered({r.family for r in data.results if is_ood(r.family) or r.shots == 0}, FAMILY_ORDER)
    return sorted(families, key=lambda f: not is_ood(f))  # the paper's Table 3 is out of distribution


def best_baseline(cells: dict[str, Result]) -> tuple[str, Result] | None:
    """The best-scoring method other than Prompt Diffuser, the controls and the full-data model."""
    others = [(m, r) for m, r in cells.items() if m != OURS and m not in CONTROLS and m != FULL_DATA]
    return max(others, key=lambda mr: mr[1].score.mean) if others else None


def table3(data: ReportData) -> Table | None:
    """The paper's Table 3: per family, few-shot and zero-shot rows (expert data), each method with the best
    baseline beside it, the paper's numbers in their own column (ant-dir-ood only: the paper's is Ant-dir)."""
    families = table3_families(data)
    if not families:
        return None
    rows = []
    zero_shot_run = {r.zero_shot for r in data.results if r.family in families}
    for family in families:
        # in-distribution families show their zero-shot rows only: their few-shot cells are in Table 1
        shown = [
            r
            for r in data.results
            if r.family == family and r.data_kind == "expert" and (r.shots == 0 or is_ood(family))
        ]
        for shots, zero_shot in settings_in(shown):
            # the paper's setting: its zero-shot figures stand beside each of our zero-shot settings
            setting, name = "zero-shot" if shots == 0 else "few-shot", setting_name(shots, zero_shot)
            found = main_results(data, "expert", shots, zero_shot)
            cells = {m: r for (m, f), r in found.items() if f == family}
            reported = paper.TABLE3.get(setting, {}) if family == paper.TABLE3_FAMILY else {}
            for method in ordered(set(cells), METHOD_ORDER):
                paper_text = reported[method].text() if method in reported else "n/r"
                rows.append([family, name, method, score_text(cells[method], detail=True), paper_text])
            best = best_baseline(cells)
            paper_best = paper.TABLE3_BEST_BASELINE.get(setting) if family == paper.TABLE3_FAMILY else None
            if best is not None or paper_best is not None:
                rows.append(
                    [
                        family,
                        name,
                        "**best baseline**",
                        f"{best[0]}: {best[1].score.text()}" if best else "–",
                        f"{paper_best[1].text()} ({paper_best[0]})" if paper_best else "n/r",
                    ]
                )
    notes = [
        "Raw return, mean ± std over seeds of the mean over the test tasks [95% bootstrap interval over "
        "seeds], expert data; each cell adds the normalised score. Zero-shot: no trajectory of the target "
        "task; what stands in for it comes from the training tasks' prompt-expert episodes, our reading "
        "(docs/tuning-methods.md#zero-shot---shots-0).",
        *(f"Zero-shot, {name}: {text}." for name, text in SETTING_TEXT.items() if name in zero_shot_run),
        *(f"{family}: {split}." for family in families if (split := ood_split_note(family))),
        paper.TABLE3_NOTE,
    ]
    return Table(
        "Table 3: out-of-distribution tasks and zero-shot prompts",
        ["family", "setting", "method", "ours", "paper"],
        rows,
        notes,
    )


def ood_split_note(family: str) -> str:
    try:
        return get_family(family).split_note
    except PdiffError:
        return ""


def split_notes(families: list[str]) -> list[str]:
    """For each family whose test tasks are not simply held out (in distribution, or our out-of-distribution
    split), a note saying what they are."""
    notes = []
    for family in families:
        try:
            note = get_family(family).test_note
        except PdiffError:
            continue
        if note:
            notes.append(f"{family}: {note}.")
    return notes


def all_tables(data: ReportData) -> list[Table]:
    """Every table that has data, each naming the figure drawn from it (one figure per shot count)."""
    tables = []
    for shots in shot_counts(data, "expert"):
        if all(is_ood(r.family) for r in data.results if r.shots == shots and r.data_kind == "expert"):
            continue  # out-of-distribution families have their rows in Table 3
        tables.append(table1(data, shots))
        tables[-1].figure = f"table1-{shots}shots.png"
    for shots in sorted({r.shots for r in data.results if r.shots > 0}):
        quality = [t for f in ordered(set(data.families()), FAMILY_ORDER) if (t := table2(data, f, shots))]
        if quality:
            quality[-1].figure = f"table2-{shots}shots.png"
        tables += quality
        guidance = ablation(data, shots)
        if guidance is not None:
            guidance.figure = f"ablation-{shots}shots.png"
            tables.append(guidance)
    zero_shot_or_ood = table3(data)
    if zero_shot_or_ood is not None:
        zero_shot_or_ood.figure = "table3.png"
        tables.append(zero_shot_or_ood)
    return tables
