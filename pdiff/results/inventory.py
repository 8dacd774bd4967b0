"""What is in a workspace: rows for `ls`, the `status` report, `verify` and `gc` candidates."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from pdiff.data.minari_read import verify_dataset
from pdiff.errors import ArtifactError
from pdiff.results.paper import PAPER_FAMILIES
from pdiff.training.state import CHECKSUMS, CheckpointStore
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import Run, RunStatus, list_runs
from pdiff.workspace.verification import verify_run

TMP_MARKER = ".tmp-"


def run_row(run: Run) -> dict[str, Any]:
    duration = run.manifest.get("duration_s") or 0.0
    return {
        "stage": run.stage,
        "run_id": run.run_id,
        "family": run.family,
        "method": run.manifest.get("summary", {}).get("method") or run.config.get("method"),
        "status": run.display_status(),
        "headline": headline(run.manifest.get("summary") or {}),
        "created_at": run.manifest.get("created_at", ""),
        "duration": f"{duration:.0f}s" if run.status is not RunStatus.RUNNING else "-",
    }


def headline(summary: dict[str, Any]) -> str:
    """The one figure of a run worth showing first (eval: return, normalised score, success rate)."""
    if "report" in summary:
        return str(summary["report"])
    if "return_mean" in summary and "prompt" in summary:
        text = f"return {summary['return_mean']:.1f} ± {summary.get('return_std', 0.0):.1f}"
        if summary.get("normalized_mean") is not None:
            text += f", normalized {summary['normalized_mean']:.1f}"
        if summary.get("success_rate_mean") is not None:
            success, spread = summary["success_rate_mean"], summary.get("success_rate_std", 0.0)
            text += f", success {100 * success:.0f}% ± {100 * spread:.0f}"
        return text
    if summary.get("final_loss") is not None:
        return f"final loss {summary['final_loss']:.4f} after {summary.get('steps')} steps"
    if "datasets" in summary:
        text = f"{summary['datasets']} datasets"
        if summary.get("expert/success_rate") is not None:
            text += f", expert success {100 * summary['expert/success_rate']:.0f}%"
        return text
    return ""


def family_row(family: Any) -> dict[str, Any]:
    return {
        "name": family.name,
        "simulator": family.simulator,
        "num_tasks": family.num_tasks,
        "train_tasks": list(family.train_tasks),
        "test_tasks": list(family.test_tasks),
        "horizon": family.horizon,
        "obs_dim": family.obs_dim,
        "act_dim": family.act_dim,
        "rtg_scale": family.rtg_scale,
        "eval_target": family.eval_target,
        "paper": PAPER_FAMILIES.get(
            family.name
        ),  # the paper's name for it, None if the paper has no such family
        "split_note": family.split_note or None,  # an out-of-distribution split (ours), in words
    }


def dataset_dirs(workspace: Workspace) -> list[Path]:
    """Every complete dataset directory (`.../<kind>-vV/data/metadata.json`), temp dirs excluded."""
    root = workspace.datasets_dir
    if not root.is_dir():
        return []
    return sorted(p.parent.parent for p in root.rglob("data/metadata.json") if TMP_MARKER not in str(p))


def list_datasets(workspace: Workspace, family: str | None = None) -> list[dict[str, Any]]:
    rows = []
    for directory in dataset_dirs(workspace):
        try:
            meta = json.loads((directory / "data" / "metadata.json").read_text())
        except (OSError, ValueError):
            rows.append(
                {
                    "dataset_id": str(directory.relative_to(workspace.datasets_dir)),
                    "episodes": "?",
                    "steps": "?",
                    "mean_return": "unreadable metadata",
                }
            )
            continue
        block = meta.get("pdiff", {})
        if family is not None and block.get("family") != family:
            continue
        mean = block.get("return_mean")
        rows.append(
            {
                "dataset_id": meta.get("dataset_id"),
                "episodes": meta.get("total_episodes"),
                "steps": meta.get("total_steps"),
                "mean_return": f"{mean:.1f}" if isinstance(mean, int | float) else "",
            }
        )
    return rows


def _writer_alive(path: Path) -> bool:
    """Whether the process named by a temporary name's `.tmp-<pid>` suffix is still running (still
    writing)."""
    pid = path.name.rsplit(TMP_MARKER, 1)[-1]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but belongs to another user
        return True
    return True


def leftovers(workspace: Workspace) -> list[Path]:
    """Half-written temporary files and directories of processes that died before their atomic rename.

    Those of a live process are being written right now (a concurrent collect or training): not leftovers.
    """
    found: list[Path] = []
    for base in (workspace.datasets_dir, workspace.runs_dir):
        if base.is_dir():
            found.extend(
                p for p in base.rglob(f"*{TMP_MARKER}*") if TMP_MARKER in p.name and not _writer_alive(p)
            )
    # a directory inside a leftover directory is covered by its parent
    return sorted(p for p in found if not any(q != p and q in p.parents for q in found))


def workspace_status(workspace: Workspace) -> dict[str, Any]:
    counts: dict[str, int] = {}
    attention = []
    for run in list_runs(workspace):
        state = run.display_status()
        counts[state] = counts.get(state, 0) + 1
        advice = {
            "STALE": f"killed without finishing: `pdiff {run.stage} --resume {run.run_id}` or `pdiff gc`",
            "RUNNING": f"in progress (pid {run.manifest.get('host', {}).get('pid')})",
            "FAILED": f"failed: {run.manifest.get('error')}",
            "KILLED": f"interrupted: `pdiff {run.stage} --resume {run.run_id}`",
        }.get(state)
        if advice:
            attention.append({**run_row(run), "advice": advice})
    return {"counts": counts, "attention": attention, "leftovers": [str(p) for p in leftovers(workspace)]}


def verify_workspace(workspace: Workspace) -> dict[str, Any]:
    problems: list[str] = []
    dirs = dataset_dirs(workspace)
    for directory in dirs:
        problems += [f"{directory.relative_to(workspace.root)}: {p}" for p in verify_dataset(directory)]
    files = 0
    for run in list_runs(workspace):
        files += len(run.manifest.get("outputs", []))
        problems += verify_run(run)
        problems += _checkpoint_problems(run)
    for run_dir in _unreadable_runs(workspace):
        problems.append(
            f"{run_dir.relative_to(workspace.root)}/run.json is corrupt or not a run manifest "
            f"(recreate: pdiff {run_dir.parent.name} (a new run), then `pdiff gc`)"
        )
    return {"datasets": len(dirs), "files": files, "problems": problems}


def _checkpoint_problems(run: Run) -> list[str]:
    """Every checkpoint directory (resume state included) against its sha256.json."""
    problems = []
    for manifest in sorted(run.dir.glob(f"**/checkpoints/*/{CHECKSUMS}")):
        try:
            CheckpointStore(manifest.parent.parent).verify(manifest.parent)
        except ArtifactError as exc:
            problems.append(
                f"{run.stage}/{run.run_id}: {exc.message} ({exc.hint}; recreate: pdiff {run.stage})"
            )
    return problems


def _unreadable_runs(workspace: Workspace) -> list[Path]:
    readable = {(r.stage, r.run_id) for r in list_runs(workspace)}
    bad = []
    if workspace.runs_dir.is_dir():
        for manifest in workspace.runs_dir.glob("*/*/run.json"):
            if (manifest.parent.parent.name, manifest.parent.name) not in readable:
                bad.append(manifest.parent)
    return bad


def garbage(workspace: Workspace) -> list[Path]:
    """What `pdiff gc` offers to delete: failed, killed, stale and corrupt runs, and leftovers."""
    runs = [r.dir for r in list_runs(workspace) if r.display_status() in ("FAILED", "KILLED", "STALE")]
    return sorted(set(runs) | set(_unreadable_runs(workspace)) | set(leftovers(workspace)))


def delete(paths: list[Path]) -> None:
    """Remove what `garbage` listed (run directories and leftover files)."""
    for path in paths:
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
