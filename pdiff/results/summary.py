"""One summary of several published reports: `pdiff report --summary DIR` reads every `DIR/<name>/report.json`
(as `pdiff report --out DIR/<name>` writes it) and writes `DIR/README.md` with the same tables as a report,
over all of them together. One cell in two reports is refused, so a report that a larger study of the same
family replaced moves to `DIR/earlier/<name>/`, which the summary links and leaves out of its tables. It reads
only those files and names, so the summary of committed reports is reproducible byte for byte; it has no date
and no commit in it for that reason. Every interval and verdict is computed again from the per-seed scores
the report.json keeps, by today's estimator and rule, so the summary never mixes estimators; a report.md
keeps what was computed when it was written.
"""

from __future__ import annotations

import os
from pathlib import Path

from pdiff.errors import ArtifactError
from pdiff.results import guidance_rules, runtime, standing, tables
from pdiff.results.bound import FULL_DATA, in_distribution
from pdiff.results.cells import ReportData, Result
from pdiff.results.editions import (
    EARLIER_DIR,
    change_of_setting,
    edition_pages,
    edition_pairs,
    editions_paragraph,
)
from pdiff.results.report_json import read_report, restated
from pdiff.results.scaling import published_rungs, scaling_sentence
from pdiff.results.setting_table import setting_table
from pdiff.workspace.atomic import atomic_write_text

SUMMARY_NAME = "README.md"
# What a row of the README's results table is, where its name alone does not say.
HEADLINE_NOTES = {
    "prompt-dt": "the real few-shot prompt",
    "random-prompt": "control",
    FULL_DATA: "Prompt-DT trained on the test tasks too",
}


def block_markers(name: str) -> tuple[str, str]:
    """The lines around a generated block of a Markdown page, which `make results` rewrites."""
    return (
        f"<!-- {name}:begin (made by `make results` from docs/results; do not edit by hand) -->",
        f"<!-- {name}:end -->",
    )


# The README's results table (`--readme README.md`) and docs/study.md's compute table
# (`--study docs/study.md`).
README_BEGIN, README_END = block_markers("results")
COMPUTE_BEGIN, COMPUTE_END = block_markers("compute")


def report_files(results_dir: Path) -> list[Path]:
    files = sorted(results_dir.glob("*/report.json"))
    if not files:
        raise ArtifactError(
            f"no */report.json under {results_dir}",
            hint="publish a report with `pdiff report --env FAMILY --out DIR/NAME` first",
        )
    return files


def read_results(results_dir: Path) -> tuple[list[Path], ReportData]:
    """The report.json files under `results_dir` and their cells together (a cell in two reports is refused),
    their intervals restated by today's estimator."""
    files = report_files(results_dir)
    cells: dict[tuple, Path] = {}
    results = []
    for file in files:
        for result in read_report(file).results:
            if result.cell in cells:
                raise ArtifactError(
                    f"{file} and {cells[result.cell]} both report {' / '.join(map(str, result.cell))}",
                    hint="publish each study once (one directory per workspace's report)",
                )
            cells[result.cell] = file
            results.append(restated(result))
    return files, ReportData(results, [], [], {})


def earlier_reports(results_dir: Path) -> list[str]:
    """The summary's lines (a blank one, then the links) for the reports under DIR/earlier (listed, not
    tabulated): first editions of a study now republished, then any other; none if none."""
    names = sorted(path.parent.name for path in (results_dir / EARLIER_DIR).glob("*/report.md"))
    pairs = edition_pairs(results_dir)
    firsts = [old.parent.name for old, _ in pairs]

    def links(chosen: list[str]) -> str:
        return " · ".join(f"[{name}]({EARLIER_DIR}/{name}/report.md)" for name in chosen)

    lines = []
    if firsts:
        why = " · ".join(  # what the second edition changed in Prompt Diffuser's Table 1 cell
            f"[{old.parent.name}]({EARLIER_DIR}/{old.parent.name}/report.md)"
            + change_of_setting(read_report(old), read_report(new))
            for old, new in pairs
        )
        lines += [
            "",
            "First editions, superseded by the study's second edition under the current protocol (each "
            "study's `editions.md` sets the verdicts of both side by side; not in the tables), with what "
            f"changed in Prompt Diffuser's Table 1 cell: {why}",
        ]
    if others := [name for name in names if name not in firsts]:
        lines += [
            "",
            "Earlier reports, replaced by a larger study of the same family (not in the tables): "
            + links(others),
        ]
    return lines


def scaling_links(results_dir: Path) -> list[str]:
    """The summary's lines (a blank one, then the links) for the scaling study's pages, one per family; none
    while results_dir/scaling holds no rung."""
    pages = published_rungs(results_dir)
    if not pages:
        return []
    links = " · ".join(
        f"[{page.name}]({page.relative_to(results_dir).as_posix()}/README.md)" for page in pages
    )
    return [
        "",
        f"The scaling study (every method against the Prompt-DT's pretraining budget), per family: {links}",
    ]


def render_summary(results_dir: Path) -> str:
    """The summary's Markdown, from the report.json files under `results_dir` alone."""
    files, merged = read_results(results_dir)
    lines = [
        "# Results",
        "",
        "Generated by `pdiff report --summary docs/results` (`make results`) from the report.json of each "
        "report below; do not edit by hand. Raw returns, mean ± std over seeds [95% bootstrap interval "
        "resampling whole seeds, computed again from each report's per-seed scores, so a report's own page "
        "may show an older interval or verdict]; the paper's figures beside ours (n/r: not reported). Each "
        "family's budgets, seeds, distinct rollouts, compute and differences from the paper: the Setting "
        "table at the end (its report's own).",
        "",
        "Reports: " + " · ".join(f"[{f.parent.name}]({f.parent.name}/report.md)" for f in files),
        *earlier_reports(results_dir),
        *scaling_links(results_dir),
        "",
        "## Where Prompt Diffuser stands",
        "",
        standing.RULE_LINE.replace("docs/protocol.md", "[docs/protocol.md](../protocol.md)"),
        "",
        *(standing.standings(merged) or ["- nothing to compare (a single method)."]),
        "",
    ]
    shown = [*tables.all_tables(merged), *guidance_rules.rules_tables(merged), setting_table(merged)]
    lines += [table.markdown() for table in shown]
    return "\n".join(lines)


def budget(result: Result) -> str:
    """A cell's training budgets and distinct rollouts in a few words (columns may come from different
    presets)."""
    steps = [
        f"{stage} {result.settings[f'{stage} steps']}"
        for stage in ("pretrain", "diffuse", "tune")
        if f"{stage} steps" in result.settings
    ]
    batch = result.settings.get("pretrain batch per task")
    if steps and batch and "pretrain steps" in result.settings:  # the Prompt-DT's samples, not only its steps
        steps[0] += f" × {batch} per task"
    text = " · ".join(steps) + " steps" if steps else "–"
    return text + (f", {result.distinct_rollouts} distinct rollouts" if result.distinct_rollouts else "")


def headline(results_dir: Path) -> str:
    """The README's results table: each method's Table 1 cell (expert few-shot data, the most-run shot count,
    the protocol's own settings only) per family, with the success rate where the family has one; its last
    two rows are each family's budget (that of Prompt Diffuser's cell) and the edition of its study, with the
    seeds of Prompt Diffuser's cell."""
    _, data = read_results(results_dir)
    counts = tables.shot_counts(data, "expert")
    if not counts:
        return "No published report has expert few-shot cells yet.\n"
    shots = max(counts, key=lambda n: sum(r.shots == n for r in data.results))
    cells = tables.main_results(data, "expert", shots)
    families = tables.ordered({f for _, f in cells if not tables.is_ood(f)}, tables.FAMILY_ORDER)
    methods = tables.protocol_methods(cells, families)
    rows = [
        f"| method (expert few-shot data, {shots} shots) | " + " | ".join(families) + " |",
        "|" + "---|" * (len(families) + 1),
    ]
    for method in methods:
        texts = []
        for family in families:
            result = cells.get((method, family))
            text = result.score.text() if result else "–"
            if result and result.success is not None:
                text += f" · {100 * result.success.mean:.0f}% success"
            texts.append(text)
        rows.append(f"| {headline_label(method, families)} | " + " | ".join(texts) + " |")
    ours = [cells.get(("prompt-diffuser", family)) for family in families]
    rows.append(
        "| *budget (Prompt Diffuser's cell)* | " + " | ".join(budget(r) if r else "–" for r in ours) + " |"
    )
    second = {f for _, new in edition_pairs(results_dir) for f in read_report(new).families()}
    editions = [
        ("second" if family in second else "first") + (f", {len(r.seeds)} seeds" if r else "")
        for family, r in zip(families, ours, strict=True)
    ]
    rows.append("| *edition of the study* | " + " | ".join(editions) + " |")
    text = "\n".join(rows) + "\n"
    text += (
        "\nPrompt Diffuser against each method by the verdict rule, per family and few-shot data kind:\n\n"
    )
    text += standing.verdict_grid(data, families, shots)
    if ablation := standing.ablation_grid(data, families, shots):
        text += (
            "\nThe guidance ablation: the paper's projection against each other rule, by the same rule:\n\n"
        )
        text += ablation
    if table3 := standing.table3_grid(data):
        text += "\nTable 3, out of distribution and zero-shot, by the same rule:\n\n" + table3
    return text


def headline_label(method: str, families: list[str]) -> str:
    """A row's name in the README's table; the full-data row says where it is a second pretrain on the same
    data (in-distribution families)."""
    notes = [HEADLINE_NOTES[method]] if method in HEADLINE_NOTES else []
    same_data = [f for f in families if in_distribution(f)]
    if method == FULL_DATA and same_data:
        notes.append(f"on {', '.join(same_data)} those are its training tasks: a second pretrain")
    return method + (f" ({'; '.join(notes)})" if notes else "")


def compute_table(results_dir: Path, page: Path) -> str:
    """docs/study.md's table of how long each published study's runs ran: per stage, as its report's compute
    column sums them, in all, and Prompt-Tuning DT's share of tune (its largest single cost)."""
    rows = [
        "| study | " + " | ".join(runtime.STAGES) + " | all four | of which ptdt's tunes |",
        "|" + "---|" * (len(runtime.STAGES) + 3),
    ]
    for file in report_files(results_dir):
        results = read_report(file).results
        sums = runtime.stage_compute(results)
        cells = [runtime.compute_cell(*sums[stage]) if stage in sums else "–" for stage in runtime.STAGES]
        known = [seconds for seconds, _ in sums.values() if seconds is not None]
        unknown = sum(count for _, count in sums.values())
        total = runtime.compute_cell(sum(known) if known else None, unknown)
        ptdt = runtime.stage_compute([r for r in results if r.method == "ptdt"]).get("tune")
        link = os.path.relpath(file.parent / "report.md", page.parent)
        rows.append(
            f"| [{file.parent.name}]({link}) | "
            + " | ".join(cells)
            + f" | {total} | {runtime.compute_cell(*ptdt) if ptdt else '–'} |"
        )
    return "\n".join(rows) + "\n"


def with_block(page: Path, name: str, body: str) -> str:
    """`page`'s text with its generated block `name` (between `block_markers(name)`) replaced by `body`."""
    begin_line, end_line = block_markers(name)
    text = page.read_text()
    begin, end = text.find(begin_line), text.find(end_line)
    if begin < 0 or end < begin:
        raise ArtifactError(f"{page} has no {name} block", hint=f"add the lines {begin_line} and {end_line}")
    return text[:begin] + f"{begin_line}\n{body}" + text[end:]


def write_summary(results_dir: Path, readme: Path | None = None, study: Path | None = None) -> Path:
    """Write `results_dir/README.md`, each republished study's editions.md, and the results table of `readme`
    and the compute table of `study` (the study page) where given; returns the summary's path."""
    path = results_dir / SUMMARY_NAME
    pages = {}  # made before anything is written, so a page without its block fails with nothing changed
    if readme is not None:
        table = (
            headline(results_dir)
            + editions_paragraph(results_dir, readme)
            + scaling_sentence(results_dir, readme)
        )
        pages[readme] = with_block(readme, "results", table)
    if study is not None:
        pages[study] = with_block(study, "compute", compute_table(results_dir, study))
    pages.update(edition_pages(results_dir))
    atomic_write_text(path, render_summary(results_dir))
    for page, text in pages.items():
        atomic_write_text(page, text)
    return path
