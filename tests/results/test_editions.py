"""Two editions side by side: a report against itself changes no verdict; raising Prompt Diffuser's per-seed
scores far above a method it was level with turns that verdict into "ahead", and the table says so."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from published_pages import CELL, PROBABILITY, ROOT, paragraph_citing

from pdiff.results.cells import ReportData, Result, Score
from pdiff.results.editions import (
    EARLIER_DIR,
    EDITIONS_PAGE,
    change_of_setting,
    edition_page,
    edition_pairs,
    edition_rows,
    edition_table,
    editions_paragraph,
    on_references,
    reference_scales,
)
from pdiff.results.report_json import read_report
from pdiff.results.summary import README_BEGIN, README_END, write_summary
from pdiff.results.tables import OURS

RERUN = Path("docs/results/protocol-rerun/cheetah-vel")  # a page that stays where it is
REPORT = ROOT / RERUN / "report.json"
# cheetah-vel's first edition: in docs/results until its second edition takes its place, then in earlier/
FIRST = next(
    path
    for path in (
        Path("docs/results") / EARLIER_DIR / "cheetah-vel-study",
        Path("docs/results/cheetah-vel-study"),
    )
    if (ROOT / path).exists()
)


def raised(score: Score | None, by: float) -> Score | None:
    if score is None or score.by_seed_task is None:
        return score
    return replace(
        score, mean=score.mean + by, by_seed_task=[[x + by for x in row] for row in score.by_seed_task]
    )


def with_ours_raised(data: ReportData, by: float) -> ReportData:
    def lift(r: Result) -> Result:
        if r.method != OURS:
            return r
        normalized = raised(r.normalized, by) if r.normalized else None
        return replace(r, score=raised(r.score, by), normalized=normalized)

    return replace(data, results=[lift(r) for r in data.results])


def test_a_report_against_itself_changes_no_verdict():
    data = read_report(REPORT)
    rows = edition_rows(data, data)
    assert rows and not any(r.changed for r in rows)
    assert rows[0].method == OURS and rows[0].old_verdict is None
    assert "0 of " in edition_table(rows).markdown()


def test_a_verdict_that_moves_is_marked_changed():
    data = read_report(REPORT)
    rows = edition_rows(data, with_ours_raised(data, 1000.0))
    moved = [r for r in rows if r.changed]
    assert moved and all(r.new_verdict == "ahead" for r in moved)
    assert any(r.old_verdict == "level" for r in moved)
    assert f"{len(moved)} of " in edition_table(rows).markdown()


def rescored(data: ReportData, random_shift: float) -> ReportData:
    """`data` as if its random reference on every test task had been `random_shift` higher."""
    scales = reference_scales(data)

    def shifted(r: Result) -> Result:
        if r.normalized is None or not r.score.by_seed_task:
            return r
        raw = np.array(r.score.by_seed_task)
        columns = []
        for j in range(raw.shape[1]):
            slope, intercept = scales[(r.family, j)]
            random, expert = -intercept / slope, (100 - intercept) / slope
            columns.append(100 * (raw[:, j] - random - random_shift) / (expert - random - random_shift))
        return replace(r, normalized=Score.of(np.column_stack(columns)))

    return replace(data, results=[shifted(r) for r in data.results])


def test_a_first_edition_on_other_references_is_judged_on_the_seconds():
    """Normalised scores on another random reference (a first edition measured it on fewer episodes) are
    re-scored on the second edition's before judging: the verdicts are those of the same data on one scale,
    and the page says which references moved."""
    data = read_report(REPORT)
    near = rescored(data, random_shift=100.0)  # a random reference closer to the expert: gaps grow 2-5 times
    own_scale = [r.new_verdict for r in edition_rows(near, near)]
    assert own_scale != [r.new_verdict for r in edition_rows(data, data)]  # the scale alone moves verdicts

    back, lines = on_references(near, data)
    for before, after in zip(data.results, back.results, strict=True):
        np.testing.assert_allclose(after.normalized.by_seed_task, before.normalized.by_seed_task, atol=1e-9)
    assert len(lines) == 1 and lines[0].startswith("cheetah-vel: the first edition re-scored")
    assert "task 2: random -36.5 → -136.5" in lines[0]
    rows = edition_rows(near, data)
    assert [r.old_verdict for r in rows] == [r.new_verdict for r in rows]  # same data, one scale
    assert on_references(data, data) == (data, [])


def test_a_family_whose_cells_cover_other_tasks_keeps_its_scale_and_says_so():
    data = read_report(REPORT)
    near = rescored(data, random_shift=100.0)
    ours = next(r for r in data.results if r.method == OURS)
    two_tasks = replace(  # an eval over two of the five test tasks (`eval --tasks`)
        ours,
        run_id="two-tasks",
        score=Score.of(np.array(ours.score.by_seed_task)[:, :2]),
        normalized=Score.of(np.array(ours.normalized.by_seed_task)[:, :2]),
    )
    kept, lines = on_references(near, replace(data, results=[*data.results, two_tasks]))
    assert kept == near
    assert len(lines) == 1 and "the first edition keeps its own scale" in lines[0]


def test_editions_on_the_same_references_are_not_re_scored():
    """Two real editions measured on the same references: nothing re-scored, no line (float noise in the
    fitted scales is not a difference)."""
    first, second = read_report(ROOT / FIRST / "report.json"), read_report(ROOT / RERUN / "report.json")
    assert on_references(first, second) == (first, [])


def test_the_published_editions_page_is_what_the_script_writes(monkeypatch):
    monkeypatch.chdir(ROOT)
    page = edition_page(FIRST / "report.json", RERUN / "report.json")
    assert (RERUN / "editions.md").read_text() == page


@pytest.mark.parametrize("doc", ["README.md", "docs/protocol.md"])
def test_the_docs_quote_the_published_rerun(doc):
    """Every cell, probability and count in the paragraph that cites the rerun is in the pages it cites."""
    paragraph = paragraph_citing(ROOT / doc, "protocol-rerun/cheetah-vel/editions.md")
    editions = (ROOT / RERUN / "editions.md").read_text()
    reports = (ROOT / RERUN / "report.md").read_text() + (ROOT / FIRST / "report.md").read_text()
    cells, probabilities = CELL.findall(paragraph), PROBABILITY.findall(paragraph)
    assert len(cells) >= 2 and len(probabilities) >= 3
    assert all(cell in editions for cell in cells)
    assert all(probability in reports for probability in probabilities)
    (changed,) = re.findall(r"(\d+ of \d+)\s+verdicts", paragraph)
    assert f"{changed} verdicts judged in both editions changed" in editions


def test_make_results_sets_a_republished_study_beside_its_first_edition(tmp_path):
    """A study moved to earlier/ with its second edition in its place: the summary links the first edition
    as superseded, the study gets editions.md, and the README's paragraph counts the verdicts that moved."""
    results, readme = tmp_path / "results", tmp_path / "README.md"
    shutil.copytree(ROOT / "docs" / "results", results)
    (results / EARLIER_DIR).mkdir(exist_ok=True)
    first, second = results / EARLIER_DIR / "cheetah-vel-study", results / "cheetah-vel-study"
    if not first.exists():  # until cheetah-vel's second edition is published, the protocol rerun stands in
        second.rename(first)
        shutil.copytree(results / "protocol-rerun" / "cheetah-vel", second)
    readme.write_text(f"# pdiff\n{README_BEGIN}\nold\n{README_END}\n")

    write_summary(results, readme)

    summary = (results / "README.md").read_text()
    assert "First editions, superseded" in summary
    assert f"[cheetah-vel-study]({EARLIER_DIR}/cheetah-vel-study/report.md) (3 → 10 seeds, " in summary
    old, new = first / "report.json", second / "report.json"
    assert (second / EDITIONS_PAGE).read_text() == edition_page(old, new)
    rows = [  # every study with two editions: the one moved here and any already published
        row for a, b in edition_pairs(results) for row in edition_rows(read_report(a), read_report(b))
    ]
    judged = sum(None not in (r.old_verdict, r.new_verdict) for r in rows)
    changed = sum(r.changed for r in rows)
    paragraph = " ".join(readme.read_text().split())
    assert (
        f"Against the first edition, {changed} of Prompt Diffuser's {judged} verdicts judged in both changed"
        in (paragraph)
    )
    assert "[cheetah-vel-study](results/cheetah-vel-study/editions.md) (3 → 10 seeds, " in paragraph
    table = readme.read_text().splitlines()
    header = next(r for r in table if r.startswith("| method"))
    edition_row = next(r for r in table if r.startswith("| *edition of the study* | "))
    families, editions = (row.strip("| ").split(" | ")[1:] for row in (header, edition_row))
    editions = dict(zip(families, editions, strict=True))
    assert editions["cheetah-vel"] == "second, 10 seeds"
    for family, edition in editions.items():
        republished = (results / EARLIER_DIR / f"{family}-study").exists()
        assert edition.startswith("second" if republished else "first, 3 seeds"), family


def test_an_earlier_report_without_a_second_edition_beside_it_makes_no_paragraph(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(
        ROOT / "docs" / "results" / "cheetah-vel-study", results / EARLIER_DIR / "cheetah-vel-study"
    )
    shutil.copytree(ROOT / "docs" / "results" / "cheetah-dir-study", results / "cheetah-dir-study")
    assert editions_paragraph(results, tmp_path / "README.md") == ""


def with_settings(data: ReportData, **changes: object) -> ReportData:
    """`data` with each cell's recorded settings changed: a key set to None is removed."""

    def change(r: Result) -> Result:
        settings = {**r.settings, **changes}
        return replace(r, settings={k: v for k, v in settings.items() if v is not None})

    return replace(data, results=[change(r) for r in data.results])


def test_a_first_edition_without_a_recorded_batch_counts_as_the_study_presets_one_per_task():
    first = read_report(ROOT / FIRST / "report.json")  # written before cells recorded the Prompt-DT's batch
    assert all("pretrain batch per task" not in r.settings for r in first.results)
    second = with_settings(first, **{"pretrain batch per task": 16})
    assert change_of_setting(first, second) == " (pretrain batch per task 1 → 16)"
    assert change_of_setting(first, with_settings(second, **{"pretrain steps": 8000})) == (
        " (pretrain batch per task 1 → 16, pretrain steps 4000 → 8000)"
    )
    unknown_steps = with_settings(first, **{"pretrain steps": None})  # no Prompt-DT recorded: nothing assumed
    assert change_of_setting(unknown_steps, second) == ""
