"""The tables of what stands behind a report's numbers (pdiff.results.setting_table)."""

from __future__ import annotations

from report_rows import data, result

from pdiff.results.setting_table import eval_commands, made_by


def test_made_by_lists_each_distinct_command_once_oldest_first():
    table1 = ["pdiff", "-w", "WS", "reproduce", "--env", "cheetah-vel", "--preset", "study", "--jobs", "2"]
    ablation = ["pdiff", "-w", "WS", "reproduce", "--env", "cheetah-vel", "--guidance-ablation"]
    rows = [
        result("prompt-dt", 1.0, created="2026-01-02T00:00:00Z"),
        result("ptdt", 1.0, created="2026-01-01T00:00:00Z"),
        result("prompt-diffuser", 1.0, created="2026-01-03T00:00:00Z", variant="sum"),
        result("lora", 1.0, created="2026-01-04T00:00:00Z"),  # recorded no command
    ]
    rows[0].command, rows[1].command, rows[2].command = table1, table1, ablation
    assert eval_commands(data(*rows)) == [
        "pdiff -w WS reproduce --env cheetah-vel --preset study --jobs 2",
        "pdiff -w WS reproduce --env cheetah-vel --guidance-ablation",
    ]
    section = made_by(data(*rows))
    assert section.startswith("### Made by") and "```\npdiff -w WS reproduce" in section


def test_made_by_says_so_when_no_run_recorded_its_command():
    assert "did not record the command" in made_by(data(result("prompt-dt", 1.0)))
