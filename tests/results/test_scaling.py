"""`pdiff report --scaling`: the rungs' reports side by side, on report.json files built here (the smoke run
of tests/stages/test_scaling_ladder.py writes real ones). Columns in order of pretraining samples, read off
the runs; cells, verdicts and fidelity figures by the report's own estimators and rule; the README's
sentence."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from report_rows import data, pretrained, publish, scored
from support.cli import runner

from pdiff.cli import app
from pdiff.errors import ArtifactError, UsageError
from pdiff.results.cells import ReportData, Result
from pdiff.results.fidelity import Fidelity
from pdiff.results.report_json import restated
from pdiff.results.scaling import FIGURE, SCALING_DIR, scaling_sentence, write_scaling
from pdiff.results.standing import standing
from pdiff.results.summary import README_BEGIN, README_END, write_summary

SEEDS = range(10)


def cell(method: str, level: float, family: str, batch: int, *, tasks: int = 2) -> Result:
    """A Table 1 cell of 10 seeds × 2 tasks around `level`, pretrained 4000 steps × `batch` on `tasks`
    tasks."""
    rng = np.random.default_rng([batch, int(level) + 100])
    scores = level + rng.normal(0.0, 2.0, size=(10, 2))
    row = pretrained(scored(method, scores, seeds=SEEDS, family=family), 4000, batch, tasks)
    row.compute_s = {"pretrain": {f"pretrain-{batch}": 300.0 * batch}, "tune": {f"tune-{method}": 60.0}}
    return row


def rung(ours: float, real: float, batch: int, family: str = "cheetah-dir") -> ReportData:
    return data(
        cell("prompt-diffuser", ours, family, batch),
        cell("prompt-dt", real, family, batch),
        cell("soft-prompt", 50.0, family, batch),
    )


def row_of(markdown: str, title: str, first: str) -> list[str]:
    """The cells of the row starting with `first` in the table titled `title`."""
    section = markdown.split(f"### {title}")[1].split("###")[0]
    line = next(line for line in section.splitlines() if line.startswith(f"| {first} |"))
    return [c.strip() for c in line.strip("|").split(" | ")]


@pytest.fixture
def ladder(tmp_path: Path) -> tuple[list[Path], Path]:
    """Two rungs of cheetah-dir (Prompt Diffuser behind the real prompt at x1, ahead at x4), given out of
    order."""
    x1 = publish(tmp_path / "rungs" / "x1", rung(40.0, 60.0, batch=1))
    x4 = publish(tmp_path / "rungs" / "x4", rung(75.0, 60.0, batch=4))
    return [x4, x1], tmp_path / "out"


def test_rungs_are_columns_in_order_of_the_samples_their_runs_record(ladder):
    rungs, out = ladder
    page = write_scaling(rungs, out).read_text()
    header = next(line for line in page.splitlines() if line.startswith("| method |"))
    assert header == "| method | x1 (8,000 samples) | x4 (32,000 samples) |"  # 4000 steps × batch × 2 tasks
    for method in ("prompt-diffuser", "prompt-dt", "soft-prompt"):
        expected = [
            restated(cell(method, level, "cheetah-dir", batch)).normalized.text()
            for batch, level in (
                (1, {"prompt-diffuser": 40.0, "prompt-dt": 60.0}.get(method, 50.0)),
                (4, {"prompt-diffuser": 75.0, "prompt-dt": 60.0}.get(method, 50.0)),
            )
        ]
        assert row_of(page, "Normalised score per rung", method)[1:] == expected
    assert (out / FIGURE).read_bytes()[:4] == b"\x89PNG" and f"![{FIGURE}]({FIGURE})" in page
    assert write_scaling(rungs, out).read_text() == page  # no date: the same reports give the same page


def test_each_rung_has_prompt_diffusers_verdict_by_the_written_rule(ladder):
    rungs, out = ladder
    page = write_scaling(rungs, out).read_text()
    against_real = row_of(page, "Prompt Diffuser against each method, per rung", "prompt-dt")
    assert against_real[1].startswith("**behind** (") and against_real[2].startswith("ahead (")
    ours, real = (
        cell(m, level, "cheetah-dir", 1) for m, level in (("prompt-diffuser", 40.0), ("prompt-dt", 60.0))
    )
    assert against_real[1] == f"**behind** ({standing(restated(ours), restated(real))[1]})"


def test_in_distribution_fidelity_is_table1_and_each_rung_shows_compute_and_commands(ladder):
    rungs, out = ladder
    page = write_scaling(rungs, out).read_text()
    fidelity = row_of(page, "Generator fidelity on training tasks", "x1")
    generated, real = (
        restated(cell(m, level, "cheetah-dir", 1))
        for m, level in (("prompt-diffuser", 40.0), ("prompt-dt", 60.0))
    )
    assert fidelity[4] == "the test tasks (training tasks)"
    assert fidelity[-1] == f"{generated.normalized.mean / real.normalized.mean:.2f}"
    assert row_of(page, "Each rung's budget and compute", "x4")[2:] == [
        "32,000",
        "pretrain 20 min · tune 3 min",
    ]
    assert (
        "pdiff -w scaling-x4 reproduce --env cheetah-dir --preset study --methods "
        "prompt-diffuser,prompt-dt,ptdt,full-data,adaptor --data-kinds expert --no-guidance-ablation "
        "--jobs 2 --set pretrain.batch_per_task=4" in page
    )
    assert "scripts/fidelity.py" not in page  # cheetah-dir's test tasks are its training tasks
    assert "other budgets" not in page  # 4000 steps × 1 and × 4: the study preset's


def test_fidelity_runs_on_training_tasks_give_the_ratio_of_normalised_scores(tmp_path):
    report = rung(70.0, 65.0, batch=1, family="cheetah-vel")
    fidelity = [cell("prompt-diffuser", 45.0, "cheetah-vel", 1), cell("prompt-dt", 90.0, "cheetah-vel", 1)]
    for row in fidelity:
        row.training_tasks = [0, 39]
    report.fidelity = fidelity
    directory = publish(tmp_path / "x1", report)
    page = write_scaling([directory], tmp_path / "out").read_text()
    row = row_of(page, "Generator fidelity on training tasks", "x1")
    assert row[4] == "training tasks 0, 39"
    generated, real = (restated(r).normalized.mean for r in fidelity)
    assert row[-1] == f"{generated / real:.2f}" and 0.4 < generated / real < 0.6
    assert "python scripts/fidelity.py scaling-x1 --env cheetah-vel" in page
    assert (
        "| prompt-diffuser |" in page.split("### Normalised score per rung")[1]
    )  # test cells stay the test's


def test_no_ratio_to_a_score_that_is_not_above_zero():
    real = cell("prompt-dt", -5.0, "cheetah-vel", 1)
    assert (
        Fidelity(
            "cheetah-vel", "expert", 5, "tasks", cell("prompt-diffuser", 20.0, "cheetah-vel", 1), real
        ).ratio
        is None
    )


@pytest.mark.parametrize(
    ("make", "error", "words"),
    [
        (lambda root: [publish(root / "x2", rung(40.0, 60.0, 1))], UsageError, "'x2' is not a rung"),
        (lambda root: [root / "x1"], UsageError, "no report.json"),
        (
            lambda root: [
                publish(root / "x1", rung(40.0, 60.0, 1)),
                publish(root / "x4", rung(40.0, 60.0, 4, "cheetah-vel")),
            ],
            ArtifactError,
            "a scaling study is one family",
        ),
        (
            lambda root: [
                publish(
                    root / "x1",
                    data(
                        cell("prompt-dt", 60.0, "cheetah-dir", 1), cell("soft-prompt", 50.0, "cheetah-dir", 4)
                    ),
                )
            ],
            ArtifactError,
            "8000, 32000 samples",
        ),
    ],
    ids=["unknown rung", "no report", "two families", "two budgets in one rung"],
)
def test_rungs_that_cannot_be_compared_are_refused(tmp_path, make, error, words):
    with pytest.raises(error, match=words):
        write_scaling(make(tmp_path), tmp_path / "out")


def test_a_report_written_before_the_batch_was_recorded_is_refused(tmp_path):
    report = rung(40.0, 60.0, 1)
    for row in report.results:
        del row.settings["pretrain batch per task"]
    with pytest.raises(ArtifactError, match="records no pretrain batch per task"):
        write_scaling([publish(tmp_path / "x1", report)], tmp_path / "out")


def test_the_command_writes_the_page_and_refuses_bad_use_with_one_line(ladder):
    rungs, out = ladder
    result = runner.invoke(app, ["--json", "report", "--scaling", *map(str, rungs), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["scaling"] == str(out / "README.md")
    for args in (["report", "--scaling", *map(str, rungs)], ["report", str(rungs[0])]):
        refused = runner.invoke(app, args)
        assert refused.exit_code == 2 and "--scaling" in refused.stderr


def test_the_readme_gets_a_sentence_only_when_rungs_are_published(tmp_path):
    results, readme = tmp_path / "docs" / "results", tmp_path / "README.md"
    publish(results / "cheetah-vel-study", rung(70.0, 65.0, batch=1, family="cheetah-vel"))
    readme.write_text(f"# pdiff\n{README_BEGIN}\nold\n{README_END}\n")
    write_summary(results, readme)
    assert "Scaling" not in readme.read_text() and scaling_sentence(results, readme) == ""
    assert "scaling" not in (results / "README.md").read_text()
    publish(results / SCALING_DIR / "cheetah-dir" / "x1", rung(40.0, 60.0, batch=1))
    publish(results / SCALING_DIR / "cheetah-dir" / "x4", rung(75.0, 60.0, batch=4))
    publish(results / SCALING_DIR / "cheetah-vel" / "x1", rung(70.0, 65.0, batch=1, family="cheetah-vel"))
    write_summary(results, readme)
    evidence = r"P\(improvement\) \d\.\d\d \[\d\.\d\d, \d\.\d\d\], normalised [+-]\d+\.\d"
    sentence = (
        r"Scaling the Prompt-DT's pretraining, Prompt Diffuser against the real prompt \(prompt-dt\): on "
        r"cheetah-dir \(\[the study\]\(docs/results/scaling/cheetah-dir/README\.md\)\) it is behind at x1 "
        rf"\(8,000 samples; {evidence}\), ahead at x4 \(32,000 samples; {evidence}\); on cheetah-vel "
        r"\(\[the study\]\(docs/results/scaling/cheetah-vel/README\.md\)\) it is"
    )
    assert re.search(sentence, readme.read_text().replace("\n", " "))
    assert not (results / SCALING_DIR / "cheetah-dir" / "README.md").exists()  # `make results` writes it
    summary = (results / "README.md").read_text()
    pages = "[cheetah-dir](scaling/cheetah-dir/README.md) · [cheetah-vel](scaling/cheetah-vel/README.md)"
    assert f"per family: {pages}" in summary
