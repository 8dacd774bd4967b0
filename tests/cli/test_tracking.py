"""TensorBoard event files of the training stages, read back with tensorboard's own reader (issue 17)."""

from __future__ import annotations

import json

import pytest
from support.cli import runner

from pdiff.cli import app
from pdiff.tracking import TENSORBOARD_DIR

pytestmark = pytest.mark.metaworld
event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator",
    reason="the `tensorboard` extra is not installed (pip install -e '.[tensorboard]'; the dev extra has it)",
)
plugin_data_pb2 = pytest.importorskip("tensorboard.plugins.hparams.plugin_data_pb2")


def read_back(directory):
    events = event_accumulator.EventAccumulator(str(directory))
    events.Reload()
    scalars = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    hparams = {}
    for content in events.PluginTagToContent("hparams").values():
        start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
        hparams.update(
            {
                name: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
                for name, value in start.hparams.items()
            }
        )
    return scalars, hparams


@pytest.mark.parametrize("stage", ["pretrain", "diffuse"])
def test_training_metrics_and_config_go_to_tensorboard(reach_ws, stage):
    base = ["-w", str(reach_ws.root), "--json"]
    for needed in ("pretrain", "diffuse")[: ("pretrain", "diffuse").index(stage) + 1]:
        result = runner.invoke(app, [*base, needed, "--env", "metaworld-reach", "--preset", "smoke"])
        assert result.exit_code == 0, result.output
    run_dir = reach_ws.root / "runs" / stage / json.loads(result.stdout)["run_id"]
    assert "tensorboard --logdir" in result.stderr

    scalars, hparams = read_back(run_dir / TENSORBOARD_DIR)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    key = "loss" if stage == "pretrain" else "loss_dm"
    logged = [(r["step"], r[key]) for r in rows if key in r]
    assert [step for step, _ in scalars[f"train/{key}"]] == [step for step, _ in logged] and len(logged) >= 2
    assert [v for _, v in scalars[f"train/{key}"]] == pytest.approx([v for _, v in logged], rel=1e-6)
    recorded = json.loads((run_dir / "run.json").read_text())["config"]
    assert hparams["env"] == "metaworld-reach" and hparams["steps"] == recorded["steps"]
    assert hparams["device"] == recorded["device"]
