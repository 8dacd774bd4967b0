"""What a tune run has finished so far, kept in its directory so that a killed run resumes (`tune --resume`,
`reproduce`) where it stopped instead of tuning again from the start: a Prompt-Tuning DT tune of the study
preset runs for hours on one core.

`RUN/progress/trials.jsonl` holds one line per finished selection trial (the candidate's settings, seed,
task and held-out curve: the loss at each scored step); `RUN/progress/seed-S-task-NN.h5` one finished
adaptation (its prompt, metrics and tunable-parameter count, and the tuned tensors' file of a
weight-changing method, written first);
`RUN/progress/inputs.json` what they were computed from (the few-shot or zero-shot datasets by content
hash, the device): if that changed before the resume, nothing is reused. Each trial and each adaptation
draws only from its own (seed, task) random streams, so what is reused is what an uninterrupted run
computes. Only a single-process run keeps progress (torchrun's ranks would race for the files).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

from pdiff.console import log
from pdiff.data.prompts_file import read_prompts, write_prompts
from pdiff.errors import ArtifactError
from pdiff.methods.base import TaskResult
from pdiff.methods.selection import Curve
from pdiff.workspace.atomic import atomic_write_text

DIRNAME = "progress"


def _trial_key(candidate: dict[str, Any], seed: int, task: int) -> str:
    return json.dumps({"candidate": candidate, "seed": seed, "task": task}, sort_keys=True)


def clear_progress(run_dir: Path) -> None:
    """Drop a run's records once its own outputs and summary are written."""
    shutil.rmtree(run_dir / DIRNAME, ignore_errors=True)


def inputs_of(device: Any, fewshot: dict[int, Any], zero_shot: dict[int, Any]) -> dict[str, Any]:
    """What a tune's trials and adaptations are computed from: the device, and each seed's few-shot datasets
    (FamilyData) or zero-shot training prompts' datasets (ZeroShotPrompts), by content hash; as JSON reads
    it."""
    inputs = {
        "device": device.type,
        "fewshot": {s: [d.dataset_ids, d.content_sha256] for s, d in fewshot.items()},
        "zero_shot": {s: z.datasets for s, z in zero_shot.items()},
    }
    return json.loads(json.dumps(inputs))


class TuneProgress:
    """The finished trials and adaptations of one tune run computed from `inputs` (empty for a new run)."""

    def __init__(self, run_dir: Path, inputs: dict[str, Any]) -> None:
        self.dir = run_dir / DIRNAME
        self.trials: dict[str, Curve] = {}
        recorded = self.dir / "inputs.json"
        if recorded.exists() and json.loads(recorded.read_text()) != inputs:
            log.info("resuming: the few-shot data or device changed since the kill; tuning starts again")
            clear_progress(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(recorded, json.dumps(inputs, sort_keys=True))
        self._read_trials()
        kept = sum(self.result(*self._job(path)) is not None for path in self.dir.glob("seed-*-task-*.h5"))
        if self.trials or kept:
            log.info(
                "resuming: %d selection trials and %d adaptations were finished before",
                len(self.trials),
                kept,
            )

    def _read_trials(self) -> None:
        path = self.dir / "trials.jsonl"
        text = path.read_text() if path.exists() else ""
        if text and not text.endswith("\n"):  # a line cut short by a kill: dropped (that trial runs again)
            text = text[: text.rfind("\n") + 1]
            atomic_write_text(path, text)
        for line in text.splitlines():
            row = json.loads(line)
            if "curve" in row:  # a trial of a pdiff before early stopping (one loss) runs again
                curve = {int(step): float(loss) for step, loss in row["curve"]}
                self.trials[_trial_key(row["candidate"], row["seed"], row["task"])] = curve

    @staticmethod
    def _job(path: Path) -> tuple[int, int]:
        _, seed, _, task = path.stem.split("-")
        return int(seed), int(task)

    def trial_curve(self, candidate: dict[str, Any], seed: int, task: int) -> Curve | None:
        return self.trials.get(_trial_key(candidate, seed, task))

    def add_trial(self, candidate: dict[str, Any], seed: int, task: int, curve: Curve) -> None:
        points = [[step, loss if math.isfinite(loss) else "inf"] for step, loss in curve.items()]
        row = {"candidate": candidate, "seed": seed, "task": task, "curve": points}
        with open(self.dir / "trials.jsonl", "a") as handle:
            handle.write(json.dumps(row, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.trials[_trial_key(candidate, seed, task)] = curve

    def _path(self, seed: int, task: int) -> Path:
        return self.dir / f"seed-{seed}-task-{task:02d}.h5"

    def result(self, seed: int, task: int) -> TaskResult | None:
        """The finished adaptation of (seed, task), without its model (whose tensors are on disk), or None."""
        path = self._path(seed, task)
        if not path.exists():
            return None
        try:
            prompts, attrs = read_prompts(path)
            weights = attrs.get("weights", "")
            if weights and not (self.dir.parent / weights).is_file():  # lost with the kill: tune it again
                return None
            return TaskResult(
                prompt=prompts[(seed, task)],
                tunable_parameters=int(attrs["tunable_parameters"]),
                metrics=json.loads(attrs["metrics"]),
            )
        except (ArtifactError, KeyError, ValueError):  # written atomically, so only damage gets here: redo it
            return None

    def add_result(self, seed: int, task: int, result: TaskResult, weights: Path | None) -> None:
        """Record an adaptation; `weights` is the tuned tensors' file, already written."""
        attrs = {
            "tunable_parameters": str(result.tunable_parameters),
            "metrics": json.dumps(result.metrics),
            "weights": str(weights.relative_to(self.dir.parent)) if weights is not None else "",
        }
        write_prompts(self._path(seed, task), {(seed, task): result.prompt}, attrs)
