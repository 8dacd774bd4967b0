"""Checking a run's outputs against the sha256 its run.json recorded for them (before use, and
`pdiff verify`)."""

from __future__ import annotations

from pathlib import Path

from pdiff.errors import ArtifactError
from pdiff.workspace.atomic import sha256_file
from pdiff.workspace.runs import Run


def verified_output(run: Run, path: Path) -> Path:
    """`path`, an output of `run`, after checking it against the sha256 run.json recorded for it."""
    rel = run._rel(path)
    recorded = next((o.get("sha256") for o in run.manifest.get("outputs", []) if o["path"] == rel), None)
    fix = f"re-run `pdiff {run.stage}` (the run {run.run_id} cannot be trusted), see `pdiff verify`"
    if not path.is_file():
        raise ArtifactError(f"{path} is missing", hint=fix)
    if recorded is not None and sha256_file(path) != recorded:
        raise ArtifactError(f"{path} does not match the sha256 recorded in run.json (corrupt)", hint=fix)
    return path


def verify_run(run: Run) -> list[str]:
    """Re-hash every output the manifest lists; return the mismatches."""
    problems: list[str] = []
    for output in run.manifest.get("outputs", []):
        rel = Path(output["path"])
        path = run.dir / rel if (run.dir / rel).exists() else run.workspace.root / rel
        redo = f"recreate: pdiff {run.stage} (a new run), then `pdiff gc` this one"
        if not path.is_file():
            problems.append(f"{run.stage}/{run.run_id}: {rel} is missing ({redo})")
        elif output.get("sha256") and sha256_file(path) != output["sha256"]:
            problems.append(f"{run.stage}/{run.run_id}: {rel} does not match its recorded sha256 ({redo})")
    return problems
