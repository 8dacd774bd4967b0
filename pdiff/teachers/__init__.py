"""Task-conditioned SAC teachers: the data source `collect` trains once per MuJoCo family (or takes from the
package, `pdiff.teachers.shipped`).

`train_teacher` trains (and resumes) a run; `TeacherPolicy.load` reads a checkpoint or snapshot for
rollouts; `nearest_snapshot` picks the snapshot for the `medium` kind. The names below load on first use,
so importing `pdiff.teachers.shipped` (as `pdiff envs` does) does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOME = {
    "SACConfig": "sac",
    "SnapshotInfo": "storage",
    "TaskEvaluator": "evaluation",
    "TeacherPolicy": "policy",
    "TeacherSummary": "sac_training",
    "latest_checkpoint": "storage",
    "list_snapshots": "storage",
    "nearest_snapshot": "storage",
    "read_metrics": "storage",
    "train_teacher": "sac_training",
}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:  # whichever object is asked for
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
