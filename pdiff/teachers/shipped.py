"""SAC teachers shipped inside the package, so that paper-quality MuJoCo data takes minutes, not hours.

A shipped teacher is what `collect` needs of a trained one, nothing more (no replay buffer, no optimiser):

    pdiff/teachers/weights/<family>/
        expert/           the teacher's final checkpoint: actor.safetensors, policy.json, config.json
        medium/           the snapshot the training collect chose for the `medium` kind (same files)
        provenance.json   how it was trained (config, seed, updates, the collect run and its commit) and
                          what it scores (per task), with the sha256 of both actors

`ship_teacher` writes one from a finished collect run (the maintainers' step, `scripts/ship_teacher.py`);
`collect --set teacher_source=shipped` reads it (`pdiff.collection.teacher`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pdiff.envs.base import TaskFamily
from pdiff.errors import ArtifactError
from pdiff.workspace.atomic import atomic_write_json, remove_tree

if TYPE_CHECKING:  # torch-free at import: `pdiff envs` lists shipped teachers without loading torch
    from pdiff.teachers.policy import TeacherPolicy
    from pdiff.workspace.runs import Run

SHIPPED_ROOT = Path(__file__).with_name("weights")
PROVENANCE_FILE = "provenance.json"
INFERENCE_FILES = (
    "actor.safetensors",
    "policy.json",
    "config.json",
)  # a policy directory's (teachers.policy)


def shipped_families() -> list[str]:
    """The families the package ships a teacher for."""
    return sorted(p.parent.name for p in SHIPPED_ROOT.glob(f"*/{PROVENANCE_FILE}"))


def expert_source(family: TaskFamily) -> str:
    """Who acts in a family's expert data, in words (`pdiff envs`): a scripted policy, or a SAC teacher that
    ships inside pdiff (an OOD family's is its base family's) or that collect trains."""
    if family.scripted_expert:
        return "scripted"
    return "SAC (shipped)" if teacher_family_name(family) in shipped_families() else "SAC (collect trains it)"


def teacher_family_name(family: TaskFamily) -> str:
    """The family a teacher is trained on: an OOD family's base (the same tasks, all of them)."""
    return family.ood.base if family.ood else family.name


def read_provenance(family: str) -> dict[str, Any]:
    """The provenance of `family`'s shipped teacher; ArtifactError (naming the shipped ones) when there is
    none."""
    path = SHIPPED_ROOT / family / PROVENANCE_FILE
    if not path.is_file():
        shipped = ", ".join(shipped_families()) or "none"
        raise ArtifactError(
            f"pdiff ships no SAC teacher for {family} (shipped: {shipped})",
            hint="train one in this workspace with `--set teacher_source=train` "
            "(hours of CPU at the paper preset)",
        )
    try:
        provenance = json.loads(path.read_text())
        _ = (
            provenance["medium"]["medium_fraction"],
            provenance["expert"]["sha256"],
        )  # what collect reads first
    except (ValueError, KeyError, TypeError) as error:
        raise ArtifactError(f"{path} cannot be read: {error}", hint="reinstall pdiff") from error
    return provenance


def load_shipped(family: str, role: str) -> TeacherPolicy:
    """The shipped `expert` or `medium` actor of `family`, checked against the sha256 its provenance
    records."""
    from pdiff.teachers.policy import TeacherPolicy

    provenance = read_provenance(family)
    policy = TeacherPolicy.load(SHIPPED_ROOT / family / role)
    if policy.sha256 != provenance[role]["sha256"]:
        raise ArtifactError(
            f"the shipped {family} {role} actor does not match its provenance (sha256 {policy.sha256[:12]}…)",
            hint="reinstall pdiff; the package files were changed",
        )
    return policy


def ship_teacher(run: Run, root: Path = SHIPPED_ROOT) -> Path:
    """Copy the teacher a finished collect run used (its expert and medium actors) into `root`/<family>/ with
    a provenance file. Returns that directory; an earlier shipped teacher of the family is replaced."""
    from pdiff.teachers.policy import TeacherPolicy
    from pdiff.teachers.storage import read_metrics

    teacher = run.manifest.get("summary", {}).get("teacher")
    if run.stage != "collect" or not teacher or teacher.get("source", "train") != "train":
        raise ArtifactError(
            f"run {run.run_id} has no teacher trained in a workspace", hint="name a MuJoCo-family collect run"
        )
    if teacher["teacher_run"] != run.run_id:  # its provenance (config, commit) is that other run's
        raise ArtifactError(
            f"collect run {run.run_id} reused the teacher of {teacher['teacher_run']}",
            hint=f"ship from the run that trained it: {teacher['teacher_run']}",
        )
    expert, medium = Path(teacher["expert_dir"]), Path(teacher["medium_dir"])
    family = TeacherPolicy.load(expert).family  # the base family, also for an OOD collect
    target, partial = root / family, root / f".{family}.partial"
    remove_tree(partial)
    for role, source in (("expert", expert), ("medium", medium)):
        (partial / role).mkdir(parents=True)
        for name in INFERENCE_FILES:
            shutil.copy2(source / name, partial / role / name)
    if TeacherPolicy.load(partial / "expert").sha256 != teacher["expert_sha256"]:
        raise ArtifactError(
            f"the expert actor of {expert} is not the one run {run.run_id} recorded",
            hint="check the workspace with `pdiff verify` before shipping",
        )
    # expert_dir is <teacher>/checkpoints/<update>; the evaluation of that update is in the teacher's metrics
    evaluations = [r for r in read_metrics(expert.parent.parent) if r["kind"] == "eval"]
    final_eval = next((r for r in reversed(evaluations) if r["update"] == teacher["updates"]), None)
    if final_eval is None:
        raise ArtifactError(
            f"no evaluation at update {teacher['updates']} in {expert.parent.parent}/metrics.jsonl",
            hint="ship a teacher whose training finished",
        )
    config = run.config
    atomic_write_json(
        partial / PROVENANCE_FILE,
        {
            "family": family,
            "seed": config["seed"],
            "updates": teacher["updates"],
            "teacher_config": config["teacher"],
            "trained_by": {
                "collect_run": teacher["teacher_run"],
                "continued_from": teacher.get("continued_from"),
                "git": run.manifest.get("git"),
                "versions": run.manifest.get("versions"),
            },
            "expert": {
                "sha256": teacher["expert_sha256"],
                "eval_return": teacher["expert_eval_return"],
                "eval_task_returns": final_eval["task_returns"],
                "expert_data_return": run.manifest["summary"].get("expert/return_mean"),
            },
            "medium": {
                "sha256": TeacherPolicy.load(partial / "medium").sha256,
                "update": teacher["medium_update"],
                "eval_return": teacher["medium_eval_return"],
                "target_return": teacher["medium_target_return"],
                "medium_fraction": config["medium_fraction"],
            },
            "random_return": teacher["random_return"],
        },
    )
    remove_tree(target)
    partial.rename(target)
    return target
