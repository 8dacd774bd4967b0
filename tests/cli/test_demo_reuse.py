"""`pdiff demo` reuses a run only when its method, family and resolved settings are the demo's (issue 17)."""

from __future__ import annotations

import pytest
from support.cli import workspace_json

pytestmark = pytest.mark.metaworld


def test_demo_reuses_only_runs_of_its_own_method_and_settings(reach_ws):
    first = {row["step"]: row for row in workspace_json(reach_ws, "demo", "--preset", "smoke")}
    # What a user tries next in the demo workspace: other methods, and a control with more seeds.
    for method in ("lora", "soft-prompt"):
        tuned = workspace_json(reach_ws, "tune", "--method", method, "--preset", "smoke")
        workspace_json(reach_ws, "eval", "--tune", tuned["run_id"], "--preset", "smoke")
    workspace_json(reach_ws, "eval", "--prompt", "random", "--seeds", "0,1", "--preset", "smoke")

    again = {row["step"]: row for row in workspace_json(reach_ws, "demo", "--preset", "smoke")}
    assert {row["state"] for row in again.values()} == {"reused"}
    for step, row in again.items():
        if step != "report":  # same evaluations, so the same report run
            assert row["run_id"] == first[step]["run_id"], step
    assert again["eval prompt-diffuser"]["summary"]["method"] == "prompt-diffuser"
    assert again["eval random prompt (control)"]["summary"]["seeds"] == [0]
    assert again["report"]["run_id"] == first["report"]["run_id"]


def test_demo_after_other_methods_runs_its_own_evaluation(reach_ws):
    """The sequence of the report: lora and soft-prompt tuned first, then demo; it must not pick them up."""
    workspace_json(reach_ws, "pretrain", "--env", "metaworld-reach", "--preset", "smoke")
    for method in ("lora", "soft-prompt"):
        tuned = workspace_json(reach_ws, "tune", "--method", method, "--preset", "smoke")
        workspace_json(reach_ws, "eval", "--tune", tuned["run_id"], "--preset", "smoke")
    workspace_json(reach_ws, "eval", "--prompt", "random", "--seeds", "0,1", "--preset", "smoke")

    steps = {row["step"]: row for row in workspace_json(reach_ws, "demo", "--preset", "smoke")}
    assert steps["pretrain"]["state"] == "reused"  # same preset, same datasets
    for step in ("eval random prompt (control)", "diffuse", "tune prompt-diffuser", "eval prompt-diffuser"):
        assert steps[step]["state"] == "ran", step
    assert steps["eval prompt-diffuser"]["summary"]["method"] == "prompt-diffuser"
    assert steps["eval random prompt (control)"]["summary"]["seeds"] == [0]
    report = (reach_ws.root / steps["report"]["summary"]["report"]).read_text()
    assert "prompt-diffuser" in report and "soft-prompt" not in report and "lora" not in report
