"""`pdiff report --summary`: the committed docs/results/README.md, the README's results table and
docs/study.md's compute table are what the command makes of the committed reports, byte for byte; a
report.json reads back into the same cells; each family's Setting row is its report's, and the study page's
compute figures are the reports' compute columns; one cell in two reports is refused; a report moved to
earlier/ is linked, not tabulated."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from published_pages import ROOT
from support.cli import runner

from pdiff.cli import app
from pdiff.errors import ArtifactError
from pdiff.methods.zero_shot import BEFORE_EQUAL_INFORMATION
from pdiff.results import runtime
from pdiff.results.report_json import read_report
from pdiff.results.setting_table import setting_table
from pdiff.results.summary import (
    COMPUTE_BEGIN,
    COMPUTE_END,
    EARLIER_DIR,
    README_BEGIN,
    README_END,
    SUMMARY_NAME,
    compute_table,
    earlier_reports,
    headline,
    read_results,
    render_summary,
)

RESULTS, README, STUDY = ROOT / "docs" / "results", ROOT / "README.md", ROOT / "docs" / "study.md"


def stale_copy(page: Path, begin_line: str, end_line: str, copy: Path) -> str:
    """Write `page` to `copy` with its generated block emptied; returns the committed text."""
    committed = page.read_text()
    begin, end = committed.index(begin_line), committed.index(end_line)
    copy.write_text(committed[:begin] + begin_line + "\nstale rows\n" + committed[end:])
    return committed


def test_the_committed_summary_readme_table_and_study_compute_are_what_the_command_writes(tmp_path):
    # laid out as the repository is, so that the links the README gets are the committed ones
    copy, readme, study = (
        tmp_path / "docs" / "results",
        tmp_path / "README.md",
        tmp_path / "docs" / "study.md",
    )
    shutil.copytree(RESULTS, copy)
    (copy / SUMMARY_NAME).unlink()
    committed_readme = stale_copy(README, README_BEGIN, README_END, readme)
    committed_study = stale_copy(STUDY, COMPUTE_BEGIN, COMPUTE_END, study)
    result = runner.invoke(
        app, ["report", "--summary", str(copy), "--readme", str(readme), "--study", str(study)]
    )
    assert result.exit_code == 0, result.output
    assert (copy / SUMMARY_NAME).read_bytes() == (RESULTS / SUMMARY_NAME).read_bytes()
    assert readme.read_text() == committed_readme and study.read_text() == committed_study
    for flag, page in (("--readme", readme), ("--study", study)):
        assert runner.invoke(app, ["report", flag, str(page)]).exit_code == 2  # needs --summary
    refused = runner.invoke(app, ["report", "--summary", str(copy), "--study", str(readme)])
    assert refused.exit_code != 0 and "has no compute block" in refused.output
    assert readme.read_text() == committed_readme  # a page without its block: nothing written


def test_the_study_pages_compute_figures_are_the_reports_compute_columns():
    table = compute_table(RESULTS, STUDY).splitlines()
    assert table[0].split(" | ")[1:5] == list(runtime.STAGES)
    for path in sorted(RESULTS.glob("*/report.json")):
        row = next(line for line in table if line.startswith(f"| [{path.parent.name}]("))
        cells = row.split(" | ")[1:5]
        column = " · ".join(
            f"{stage} {cell}" for stage, cell in zip(runtime.STAGES, cells, strict=True) if cell != "–"
        )
        assert column in (path.parent / "report.md").read_text(), (
            path.parent.name
        )  # as the published page says


def test_a_report_json_reads_back_into_its_cells():
    for path in sorted(RESULTS.glob("*/report.json")):
        written = json.loads(path.read_text())["results"]
        read = [r.to_dict() for r in read_report(path).results]
        assert [
            {key: row[key] for key in stored} for row, stored in zip(read, written, strict=True)
        ] == written
        added = {key for row in read for key in row} - {key for row in written for key in row}
        # fields added since: their defaults stand
        assert added <= {"guidance_trace", "zero_shot", "training_tasks", "heldout_loss", "command"}


def test_zero_shot_cells_of_reports_written_before_equal_information_say_so():
    results = [r for path in sorted(RESULTS.glob("*/report.json")) for r in read_report(path).results]
    zero_shot = [r for r in results if r.shots == 0]
    assert zero_shot and all(r.zero_shot == BEFORE_EQUAL_INFORMATION for r in zero_shot)
    assert f"| zero-shot, {BEFORE_EQUAL_INFORMATION} | prompt-diffuser |" in render_summary(RESULTS)


def test_the_summary_states_each_familys_setting_as_its_report_does():
    summary = render_summary(RESULTS)
    families = set()
    for path in sorted(RESULTS.glob("*/report.json")):
        own = setting_table(read_report(path))

        for row in own.rows:
            assert "| " + " | ".join(row) + " |" in summary, f"{path.parent.name}: {row[0]}"
            families.add(row[0])
    section = summary[summary.index("### Setting") :].splitlines()
    rows = [line.split(" | ")[0].removeprefix("| ") for line in section if line.startswith("| ")][1:]
    assert sorted(rows) == sorted(families)  # one row per family


def test_one_cell_in_two_reports_is_refused(tmp_path):
    source = next(iter(sorted(RESULTS.glob("*/report.json"))))
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        shutil.copy(source, tmp_path / name / "report.json")
    with pytest.raises(ArtifactError, match="both report"):
        render_summary(tmp_path)


def test_the_readme_table_states_each_columns_budget():
    lines = headline(RESULTS).splitlines()
    families = lines[0].split(" | ")[1:]
    table = lines[: lines.index("")]  # the cells' table, before the verdict grid
    budgets = table[-2].split(" | ")[1:]
    assert table[-2].startswith("| *budget") and table[-1].startswith("| *edition of the study* | ")
    pretrain = {  # the steps, and the batch where the runs recorded it (reports before 5 December did not)
        r.family: (r.settings["pretrain steps"], r.settings.get("pretrain batch per task"))
        for r in read_results(RESULTS)[1].results
        if (r.method, r.data_kind, r.variant) == ("prompt-diffuser", "expert", "project")
    }
    for family, text in zip(families, budgets, strict=True):
        steps, batch = pretrain[family.rstrip(" |")]
        assert f"pretrain {steps}{f' × {batch} per task' if batch else ''} · " in text, family


def test_an_earlier_report_is_linked_and_left_out_of_the_tables(tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(RESULTS, copy)
    assert earlier_reports(tmp_path) == []  # no earlier/: no line
    moved = copy / "cheetah-dir-study"  # a Table 1 family: its column would show
    assert "| cheetah-dir (ours) |" in render_summary(copy)
    (copy / EARLIER_DIR).mkdir(exist_ok=True)
    shutil.rmtree(copy / EARLIER_DIR / moved.name, ignore_errors=True)  # a first edition, once republished
    moved.rename(copy / EARLIER_DIR / moved.name)
    summary = render_summary(copy)
    assert f"[{moved.name}]({EARLIER_DIR}/{moved.name}/report.md)" in summary.split("Earlier reports")[1]
    assert "cheetah-dir (ours)" not in summary and f"[{moved.name}]({moved.name}/" not in summary


def summary_verdicts() -> dict[tuple[str, str, str], str]:
    """(family, setting, method) → Prompt Diffuser's verdict, read off the summary's "Where Prompt Diffuser
    stands" lines (setting: the text in brackets after the family, e.g. "expert few-shot data, 5 shots")."""
    summary = (RESULTS / "README.md").read_text()
    said: dict[tuple[str, str, str], str] = {}
    for family, setting, rest in re.findall(r"^- (\S+) \((.*?)\): (.*)$", summary, re.MULTILINE):
        behind = re.match(
            r"\*\*prompt-diffuser is behind (the full-data upper bound|the (\S+) control|\S+)\*\*", rest
        )
        if behind:
            label = behind.group(1)
            method = "full-data" if "full-data" in label else behind.group(2) or label
            said[(family, setting, method)] = "behind"
        elif rest.startswith("prompt-diffuser ("):
            verdict = "level" if " is level with " in rest else "ahead"
            for method in re.findall(r"(?:with |of |; )([a-z-]+) \(P\(improvement\)", rest):
                said[(family, setting, method)] = verdict
    return said


def grid_words(text: str, header: str) -> tuple[list[str], dict[tuple[str, str], str]]:
    """The columns of the README block's grid whose header starts with `header`, and (row, column) → word."""
    grid = text[text.index(header) :].split("\n\n")[0].splitlines()
    columns = grid[0].strip("| ").split(" | ")[1:]
    rows = [line.strip("| ").split(" | ") for line in grid[2:]]
    return columns, {(row[0], c): w for row in rows for c, w in zip(columns, row[1:], strict=True)}


def test_the_readme_verdict_grid_says_what_the_summary_says_for_every_comparison():
    """Each behind, level or ahead of the summary's "Where Prompt Diffuser stands" (Tables 1 and 2, 5 shots)
    is the word the README's grid gives that method, family and data kind, and so for Table 3."""
    text, said = headline(RESULTS), summary_verdicts()
    families, cells = grid_words(text, "| against (expert")
    kinds = ("expert", "medium", "random")
    words = {
        (family, f"{kind} few-shot data, 5 shots", method): word
        for (method, family), cell in cells.items()
        for kind, word in zip(kinds, cell.split(" / "), strict=True)
    }
    shown = {key: verdict for key, verdict in said.items() if key[0] in families}
    assert len(shown) >= len(families) * 7 and {key: words[key] for key in shown} == shown
    columns, cells = grid_words(text, "| against (Table 3)")
    judged = set()
    for (family, setting, method), verdict in said.items():
        column = f"{family}, {'few-shot (5 shots)' if 'few-shot data' in setting else setting}"
        if column in columns:
            assert cells[(method, column)] == verdict, (family, setting, method)
            judged.add(column)
    assert columns and judged == set(columns), "a Table 3 column of the README matches no summary verdict"


def test_the_readme_ablation_grid_says_what_the_summary_says_for_every_rule():
    _, cells = grid_words(headline(RESULTS), "| `project` against (")
    summary = (RESULTS / "README.md").read_text()
    line = re.compile(r"^- (\S+) \(guidance ablation, expert few-shot data, 5 shots\): (.*)$", re.MULTILINE)
    said = {
        (f"`{rule}`", family): next(v for v in ("behind", "level", "ahead") if v in verdict)
        for family, rest in line.findall(summary)
        for verdict, rules in re.findall(r"`project` is (behind\*\*|level with|ahead of) (.*)", rest)
        for rule in re.findall(r"`([a-z-]+)` \(P\(improvement\)", rules)
    }
    assert said and {key: cells[key] for key in said} == said
