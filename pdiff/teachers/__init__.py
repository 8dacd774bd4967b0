"""Task-conditioned SAC teachers: the data source `collect` trains once per MuJoCo family.

`train_teacher` trains (and resumes) a run; `TeacherPolicy.load` reads a checkpoint or snapshot for
rollouts; `nearest_snapshot` picks the snapshot for the `medium` kind.
"""

from pdiff.teachers.evaluation import TaskEvaluator
from pdiff.teachers.policy import TeacherPolicy
from pdiff.teachers.sac import SACConfig
from pdiff.teachers.storage import (
    SnapshotInfo,
    latest_checkpoint,
    list_snapshots,
    nearest_snapshot,
    read_metrics,
)
from pdiff.teachers.training import TeacherSummary, train_teacher

__all__ = [
    "SACConfig",
    "SnapshotInfo",
    "TaskEvaluator",
    "TeacherPolicy",
    "TeacherSummary",
    "latest_checkpoint",
    "list_snapshots",
    "nearest_snapshot",
    "read_metrics",
    "train_teacher",
]
