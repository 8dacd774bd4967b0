"""What each guidance rule did, measured without a test task's return: per family and rule, the share of
‖g_PLM‖ it removed and cos(g_DM, g_PLM) while the generator trained, L_DM and L_PLM at the end of that, and
the held-out few-shot loss that the tuning's selection measured for the chosen setting. Each rule is set
against the default by that loss, paired by seed. The default rule is chosen from this table (docs/method.md),
never from the ablation's returns, which are a test task's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pdiff.errors import ArtifactError
from pdiff.results.cells import ReportData, Result
from pdiff.results.report_json import read_report, restated
from pdiff.results.tables import FAMILY_ORDER, RULE_ORDER, Table, ablation, ablation_cells, ordered
from pdiff.stats import Improvement
from pdiff.verdicts import compare

DEFAULT_RULE = "project"
# The other reading of the paper's projection: the one rule that may replace the default. The ablation's other
# rules drop or change a part of the paper's method; they are measured, not candidates.
CANDIDATES = ("gpm",)


def lower_loss(rule: Result, default: Result) -> Improvement | None:
    """P(the rule's held-out loss < the default's), on the seeds both ran, paired by seed (as every comparison
    of two cells is: `pdiff.verdicts.compare`); None without per-seed losses."""
    if rule.heldout_loss is None or default.heldout_loss is None:
        return None
    mine, theirs = (np.asarray(r.heldout_loss.by_seed_task) for r in (rule, default))
    return compare(-mine, rule.seeds, -theirs, default.seeds).improvement  # lower is better


def word(improvement: Improvement | None) -> str:
    """lower / higher where the 95% interval excludes 0.5, level otherwise ("" without an interval)."""
    if improvement is None or improvement.interval is None:
        return ""
    low, high = improvement.interval
    return "lower" if low > 0.5 else "higher" if high < 0.5 else "level"


def _number(value: float | None, form: str) -> str:
    return "–" if value is None else f"{value:{form}}"


def rules_table(data: ReportData, shots: int) -> Table | None:
    """One row per (family, rule) of the guidance ablation; which rule the measurement makes the default."""
    by_family = ablation_cells(data, shots)
    if not by_family:
        return None
    rows: list[list[str]] = []
    words: dict[str, dict[str, str]] = {}  # family → rule → its word against the default
    for family in ordered(set(by_family), FAMILY_ORDER):
        rules = by_family[family]
        default = rules.get(DEFAULT_RULE)
        words[family] = {}
        for rule in ordered(set(rules), RULE_ORDER):
            result, trace = rules[rule], rules[rule].guidance_trace
            if result.heldout_loss is None and not any(v is not None for v in trace.values()):
                continue  # a run made before any of this was kept
            versus = lower_loss(result, default) if default is not None and rule != DEFAULT_RULE else None
            if word(versus):
                words[family][rule] = word(versus)
            rows.append(
                [
                    family,
                    f"`{rule}`",
                    _number(trace.get("removed_share"), ".2f"),
                    _number(trace.get("cosine"), "+.2f"),
                    _number(trace.get("loss_dm"), ".3f"),
                    _number(trace.get("loss_plm"), ".4f"),
                    result.heldout_loss.text(digits=4) if result.heldout_loss else "–",
                    f"{versus.probability:.2f} [{versus.interval[0]:.2f}, {versus.interval[1]:.2f}] "
                    f"({word(versus)})"
                    if versus is not None and versus.interval is not None
                    else "",
                ]
            )
    if not rows:
        return None
    notes = [
        "Measured without any test task's return. removes: the median share of ‖g_PLM‖ the rule took "
        "out, cos: the median cosine between g_DM and g_PLM (each over a diffuse run's steps); L_DM, L_PLM: "
        "at a diffuse run's last step; each the median over the cell's diffusion models (one per seed). "
        "Held-out loss: the Prompt-DT's action MSE on each seed's held-out few-shot episode with the tuned "
        "generator's prompt, at the setting the selection chose, mean ± std over seeds [95% interval "
        f"resampling seeds]. Last column: P(the rule's held-out loss is below `{DEFAULT_RULE}`'s), paired "
        "by seed over the seeds both ran, and the word its interval gives (lower or higher only where the "
        "interval excludes 0.5).",
        default_note(words),
    ]
    header = [
        "family",
        "guidance",
        "removes",
        "cos",
        "L_DM (end)",
        "L_PLM (end)",
        "held-out loss",
        "vs default",
    ]
    return Table("Guidance rules, without test returns", header, rows, notes)


def default_note(words: dict[str, dict[str, str]]) -> str:
    """Which rule the measurement makes the default (docs/method.md), from each family's words."""
    rule = (
        f"The default rule (docs/method.md): `{DEFAULT_RULE}`, unless "
        + " or ".join(f"`{c}`" for c in CANDIDATES)
        + " has the lower held-out loss on every family here. "
    )
    measured = [c for c in CANDIDATES if any(c in by_rule for by_rule in words.values())]
    if not measured:
        return rule + "Nothing to compare: these runs kept no per-seed held-out loss, or ran no candidate."
    winners = [c for c in measured if all(by_rule.get(c) == "lower" for by_rule in words.values())]
    found = ", ".join(
        f"`{c}` on {f}: {by_rule[c]}" for c in measured for f, by_rule in words.items() if c in by_rule
    )
    verdict = (
        f"It is {', '.join(f'`{w}`' for w in winners)} ({found})."
        if winners
        else f"The default stays `{DEFAULT_RULE}` ({found})."
    )
    others = [
        f"`{r}` on {f}"
        for f, by_rule in words.items()
        for r, w in by_rule.items()
        if w == "lower" and r not in CANDIDATES
    ]
    measured_only = f" Lower than `{DEFAULT_RULE}` but no candidate: {', '.join(others)}." if others else ""
    return rule + verdict + measured_only


def rules_tables(data: ReportData) -> list[Table]:
    """`rules_table` for every shot count with a guidance ablation."""
    return [table for shots in few_shot_counts(data) if (table := rules_table(data, shots)) is not None]


def few_shot_counts(data: ReportData) -> list[int]:
    return sorted({r.shots for r in data.results if r.shots > 0})


def rules_page(reports: list[Path]) -> str:
    """The page `scripts/guidance_rules.py REPORT.json …` writes: the table over every family of the given
    reports (intervals restated by today's estimator), the default rule it gives, and the command."""
    results = [restated(r) for path in reports for r in read_report(path).results]
    data = ReportData(results, [], [], {})
    tables = rules_tables(data)
    if not tables:
        raise ArtifactError("no guidance ablation with measurements in these reports")
    # beside them, each rule's test returns (which decide nothing here)
    returns = [table for shots in few_shot_counts(data) if (table := ablation(data, shots)) is not None]
    command = "python scripts/guidance_rules.py " + " ".join(str(path) for path in reports)
    families = ", ".join(ordered({r.family for r in results}, FAMILY_ORDER))
    title = [
        f"# The guidance rules on {families}",
        "",
        "Generated from the families' published reports (the command at the end); do not edit by hand. First "
        "what each rule did while the generator trained and the held-out few-shot loss, which choose the "
        "default rule without any test return; then each rule's test returns, which choose nothing.",
        "",
    ]
    page = [table.markdown() for table in [*tables, *returns]]
    return "\n".join([*title, *page]) + f"\nMade by `{command}`.\n"
