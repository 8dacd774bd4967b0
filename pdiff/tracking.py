"""Experiment tracking: every training metric also goes to TensorBoard event files, when `tensorboard` is
installed (`pip install 'pdiff[tensorboard]'`).

A training stage's `metrics.jsonl` stays the record pdiff reads; beside it, `tensorboard/` holds the same
numbers as scalars (tag `<phase>/<key>`, step = the row's `step` or `update`, wall time = its `time`) and the
resolved config as hyper-parameters, written by torch's own `SummaryWriter`. See them all with
`tensorboard --logdir <workspace>/runs`.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

TENSORBOARD_DIR = "tensorboard"
HINT = "tensorboard --logdir {runs}"


def available() -> bool:
    """Whether the tensorboard package (needed by torch.utils.tensorboard) is installed."""
    return importlib.util.find_spec("tensorboard") is not None


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Hyper-parameters as TensorBoard takes them: dotted keys, numbers/strings/booleans only."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        elif isinstance(value, bool | int | float | str):
            flat[f"{prefix}{key}"] = value
        else:  # None, lists
            flat[f"{prefix}{key}"] = str(value)
    return flat


class Tracker:
    """Scalars and hyper-parameters of one run directory; a no-op without the tensorboard package."""

    def __init__(self, directory: Path, config: dict[str, Any] | None = None) -> None:
        self.writer: Any = None
        if not available():
            return
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        self.writer = SummaryWriter(log_dir=str(directory))
        if config:
            for summary in hparams(_flat(config), {}):  # experiment, session start, session end
                self.writer.file_writer.add_summary(summary)

    def log(self, row: dict[str, Any], step_key: str = "step") -> None:
        """One metrics row: every finite number but the step and the time becomes a scalar."""
        if self.writer is None or not isinstance(row.get(step_key), int):
            return
        phase = row.get("phase") or row.get("kind")
        for key, value in row.items():
            if key in (step_key, "time") or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if math.isfinite(value):
                tag = f"{phase}/{key}" if isinstance(phase, str) else key
                self.writer.add_scalar(tag, value, row[step_key], walltime=row.get("time"))
        self.writer.flush()  # a killed run keeps what it logged

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
