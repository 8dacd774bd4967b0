"""The report's tables from report rows: layout, the paper's numbers, optional tables."""

from __future__ import annotations

import numpy as np
from report_rows import data, result, scored

from pdiff.results import render_markdown
from pdiff.results.cells import Result, Score
from pdiff.results.runtime import compute_text, duration
from pdiff.results.standing import standings
from pdiff.results.tables import ablation, all_tables, table1, table2, table3
from pdiff.stats import sample_std


def test_table1_has_every_method_as_a_row_and_the_paper_beside_ours():
    rows = data(
        result("prompt-diffuser", -40.0, variant="project"),
        result("ptdt", -38.0),
        result("my-new-method", -50.0),
        result("full-data", -30.0),
    )
    table = table1(rows, 5)
    assert table.header[:3] == ["method", "cheetah-vel (ours)", "Cheetah-vel (paper)"]
    by_method = {row[0]: row for row in table.rows}
    assert list(by_method) == ["prompt-diffuser", "ptdt", "full-data", "my-new-method"]  # no "(upper bound)"
    assert by_method["prompt-diffuser"][1:3] == ["-40.0 ± 1.0", "-35.3 ± 2.4"]
    assert by_method["my-new-method"][2] == "n/r"


def test_the_average_column_needs_all_four_paper_families_and_carries_an_interval():
    by_seed_task = {
        "cheetah-dir": [[800.0, 810.0], [820.0, 790.0], [805.0, 815.0]],
        "cheetah-vel": [[-40.0], [-42.0], [-38.0]],
        "ant-dir": [[350.0], [340.0], [365.0]],
        "metaworld-reach": [[850.0], [852.0], [851.0]],
    }

    def with_seeds(family: str) -> Result:
        seed_means = [sum(row) / len(row) for row in by_seed_task[family]]
        row = result("ptdt", sum(seed_means) / 3, family=family)
        row.score = Score(row.score.mean, row.score.std, by_seed_task=by_seed_task[family])
        return row

    three = table1(data(*(with_seeds(f) for f in ["cheetah-dir", "cheetah-vel", "ant-dir"])), 5)
    assert three.rows[0][three.header.index("average (ours)")] == "–"
    four = table1(data(*(with_seeds(f) for f in by_seed_task)), 5)
    average = four.rows[0][four.header.index("average (ours)")]
    per_family = [806.6667, -40.0, 351.6667, 851.0]  # the means over seeds of the per-seed means above
    per_seed = [
        (805.0 - 40.0 + 350.0 + 850.0) / 4,
        (805.0 - 42.0 + 340.0 + 852.0) / 4,
        (810.0 - 38.0 + 365.0 + 851.0) / 4,
    ]
    assert average.startswith(f"{sum(per_family) / 4:.1f} ± {sample_std(per_seed):.1f} ["), average
    low, high = (float(x) for x in average.split("[")[1].rstrip("]").split(", "))
    assert low < sum(per_family) / 4 < high
    other_seeds = data(*(with_seeds(f) for f in by_seed_task))
    other_seeds.results[0].seeds = [3, 4, 5]  # seed i of one family is not seed i of the others: no pairing
    lone = table1(other_seeds, 5)
    assert lone.rows[0][lone.header.index("average (ours)")] == f"{sum(per_family) / 4:.1f}"
    bare = table1(
        data(*(result("ptdt", m, family=f) for m, f in zip(per_family, by_seed_task, strict=True))), 5
    )
    assert bare.rows[0][bare.header.index("average (ours)")] == f"{sum(per_family) / 4:.1f}"


def test_ablation_and_table2_only_with_several_rules_or_kinds():
    single = data(result("prompt-diffuser", -40.0, variant="project"))
    assert ablation(single, 5) is None and table2(single, "cheetah-vel", 5) is None and table3(single) is None
    rules = data(
        result("prompt-diffuser", -40.0, variant="project"),
        result("prompt-diffuser", -36.0, variant="sum"),
        result("prompt-diffuser", -50.0, variant="none"),
    )
    table = ablation(rules, 5)
    assert [row[0].split()[0] for row in table.rows] == ["`project`", "`sum`", "`none`"]
    assert "(+20.0% vs `none`)" in table.rows[0][1]
    assert any("projection does not have the best mean" in note for note in table.notes)
    kinds = data(result("ptdt", -40.0), result("ptdt", -90.0, kind="random"))
    assert table2(kinds, "cheetah-vel", 5).header == ["method", "expert", "random"]


def test_table2s_paper_row_puts_the_papers_table1_figure_in_the_expert_cell():
    kinds = data(
        *(
            result("prompt-diffuser", mean, kind=kind, variant="project")
            for mean, kind in ((-40.0, "expert"), (-90.0, "medium"), (-120.0, "random"))
        )
    )
    rows = {row[0]: row[1:] for row in table2(kinds, "cheetah-vel", 5).rows}
    assert rows["prompt-diffuser (paper)"] == ["-35.3 ± 2.4", "≈ -33.5", "≈ -33.5"]  # expert: Table 1's


def test_the_ablation_shows_what_each_rule_removed_beside_its_score():
    gpm = result("prompt-diffuser", -38.0, variant="gpm")
    gpm.guidance_trace = {"removed_share": 0.41, "cosine": -0.03}
    table = ablation(data(result("prompt-diffuser", -40.0, variant="project"), gpm), 5)
    assert [row[0].split()[0] for row in table.rows] == ["`project`", "`gpm`"]
    assert table.rows[1][1].endswith("; removes 0.41, cos -0.03") and "removes" not in table.rows[0][1]


def test_the_ablation_shows_every_rule_on_the_seeds_all_rules_ran():
    ten = scored(
        "prompt-diffuser", np.array([[90.0]] * 5 + [[10.0]] * 5), seeds=range(10), family="cheetah-vel"
    )
    five = scored("prompt-diffuser", np.array([[80.0]] * 5), seeds=range(5), family="cheetah-vel")
    five.variant = "sum"
    table = ablation(data(ten, five), 5)
    assert table.rows[0][1].startswith("590.0 ± 0.0")  # project on seeds 0-4, not 550.0 over all ten
    assert "seeds per cell: 5 (every rule on the seeds all rules" in table.notes[0]


def test_the_newest_variant_when_the_projection_was_not_run_and_ood_gets_table3():
    rows = data(
        result("prompt-diffuser", -40.0, variant="sum", created="2026-01-02T00:00:00Z"),
        result("prompt-diffuser", -60.0, variant="none"),
        result("ptdt", 500.0, family="ant-dir-ood"),
    )
    assert table1(rows, 5).rows[0][1] == "-40.0 ± 1.0"
    assert table3(rows).rows[0] == ["ant-dir-ood", "few-shot (5 shots)", "ptdt", "500.0 ± 1.0", "540.8"]
    markdown = render_markdown(rows, [], __import__("pathlib").Path("figures"), commit=None)
    assert [t.title.split(":")[0] for t in all_tables(rows)] == ["Table 1", "Guidance ablation", "Table 3"]
    assert "## Where Prompt Diffuser stands" in markdown and "### Runs used" in markdown


def test_table3_has_few_shot_and_zero_shot_rows_with_the_papers_numbers_and_the_best_baseline():
    rows = data(
        result("prompt-diffuser", 530.0, family="ant-dir-ood", variant="project"),
        result("ptdt", 520.0, family="ant-dir-ood"),
        result("soft-prompt", 525.0, family="ant-dir-ood"),
        result("prompt-diffuser", 300.0, family="ant-dir-ood", variant="project", shots=0),
        result("prompt-dt", 60.0, family="ant-dir-ood", shots=0),
        result("prompt-diffuser", -40.0, variant="project"),
        result("ptdt", -38.0),  # cheetah-vel, Table 1
        result("prompt-diffuser", -90.0, variant="project", shots=0),
        result("prompt-dt", -120.0, shots=0),
    )
    table = table3(rows)
    assert table.header == ["family", "setting", "method", "ours", "paper"]
    cells = {(row[0], row[1], row[2]): row[3:] for row in table.rows}
    ood_few, ood_zero = ("ant-dir-ood", "few-shot (5 shots)"), ("ant-dir-ood", "zero-shot")
    assert cells[(*ood_few, "prompt-diffuser")] == ["530.0 ± 1.0", "546.8"]
    assert cells[(*ood_few, "soft-prompt")] == ["525.0 ± 1.0", "n/r"]
    assert cells[(*ood_few, "**best baseline**")] == ["soft-prompt: 525.0 ± 1.0", "540.8 (ptdt)"]
    assert cells[(*ood_zero, "prompt-diffuser")] == ["300.0 ± 1.0", "329.2 ± 21.8"]
    assert cells[(*ood_zero, "**best baseline**")] == ["prompt-dt: 60.0 ± 1.0", "52.7 (method n/r)"]
    # an in-distribution family: its zero-shot rows only (few-shot is Table 1's), no paper column
    assert [key for key in cells if key[0] == "cheetah-vel"] == [
        ("cheetah-vel", "zero-shot", "prompt-diffuser"),
        ("cheetah-vel", "zero-shot", "prompt-dt"),
        ("cheetah-vel", "zero-shot", "**best baseline**"),
    ]
    assert cells[("cheetah-vel", "zero-shot", "prompt-dt")] == ["-120.0 ± 1.0", "n/r"]
    assert [row[0] for row in table.rows][0] == "ant-dir-ood"  # out-of-distribution families first
    assert any("[3π/2, 2π)" in note and "ours" in note for note in table.notes)
    titles = [t.title for t in all_tables(rows)]
    assert titles == [
        "Table 1: few-shot policy generalisation (5 expert shots)",
        "Table 3: out-of-distribution tasks and zero-shot prompts",
    ]
    assert any("cheetah-vel (zero-shot)" in line for line in standings(rows))


def test_table3_shows_each_zero_shot_setting_as_its_own_rows_and_compares_within_each():
    ood = "ant-dir-ood"
    rows = data(
        result("prompt-diffuser", 250.0, family=ood, variant="project", shots=0, zero_shot="nearest"),
        result("prompt-dt", 200.0, family=ood, shots=0, zero_shot="nearest"),
        result("prompt-diffuser", 10.0, family=ood, variant="project", shots=0, zero_shot="none"),
        result("prompt-dt", 90.0, family=ood, shots=0, zero_shot="none"),
    )
    table = table3(rows)
    cells = {(row[1], row[2]): row[3] for row in table.rows}
    assert [row[1] for row in table.rows] == ["zero-shot, nearest"] * 3 + ["zero-shot, none"] * 3
    assert cells[("zero-shot, nearest", "prompt-diffuser")] == "250.0 ± 1.0"
    assert cells[("zero-shot, nearest", "**best baseline**")] == "prompt-dt: 200.0 ± 1.0"
    assert cells[("zero-shot, none", "**best baseline**")] == "prompt-dt: 90.0 ± 1.0"
    described = [note.split(":")[0] for note in table.notes if note.startswith("Zero-shot, ")]
    assert described == ["Zero-shot, nearest", "Zero-shot, none"]
    # rows without per-seed scores are level, with the gap to the other method of the same setting
    lines = {line.split(": ")[0]: line for line in standings(rows)}
    assert "prompt-dt (+50;" in lines[f"- {ood} (zero-shot, nearest)"]
    assert "prompt-dt (-80;" in lines[f"- {ood} (zero-shot, none)"]


def test_no_table3_without_ood_or_zero_shot_runs():
    rows = data(result("prompt-diffuser", -40.0, variant="project"), result("ptdt", -38.0))
    assert table3(rows) is None
    assert [t.title.split(":")[0] for t in all_tables(rows)] == ["Table 1"]


def test_an_ood_family_has_no_table2_nor_ablation_column():
    ood = "ant-dir-ood"
    rows = data(
        result("ptdt", 500.0, family=ood),
        result("ptdt", 300.0, family=ood, kind="medium"),
        result("prompt-diffuser", 510.0, family=ood, variant="project"),
        result("prompt-diffuser", 490.0, family=ood, variant="sum"),
    )
    assert table2(rows, ood, 5) is None and ablation(rows, 5) is None
    assert [t.title for t in all_tables(rows)] == ["Table 3: out-of-distribution tasks and zero-shot prompts"]


def test_compute_counts_each_run_behind_the_numbers_once():
    shared = {"pretrain": {"p": 1500.0}, "diffuse": {"d0": 100.0, "d1": 140.0}}
    diffuser, dt = result("prompt-diffuser", 10.0), result("prompt-dt", 9.0)
    diffuser.compute_s = {**shared, "tune": {"t1": 65.0}, "eval": {"e1": 30.0}}
    dt.compute_s = {"pretrain": {"p": 1500.0}, "tune": {"t2": 6000.0}, "eval": {"e2": None}}
    assert compute_text([diffuser, dt]) == "pretrain 25 min · diffuse 4 min · tune 1 h 41 min · eval 30 s+"
    dt.compute_s["pretrain"] = {"p2": None}
    assert compute_text([dt]).startswith("pretrain ? · tune")  # only runs of unknown time
    assert compute_text([result("prompt-dt", 9.0)]) == "–"  # a report.json from before compute was recorded
    assert [duration(s) for s in (89, 5399, 7190)] == ["89 s", "90 min", "2 h 00 min"]
