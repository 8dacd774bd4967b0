"""What the runs behind a cell recorded about how it was made, as the Setting table shows it: the compute
(CPU, threads, precision), the selection protocol's grid and choice, and the sizes (parameters, batches)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pdiff.workspace.runs import Run


def compute_settings(runs: list[Run | None]) -> dict[str, str]:
    """CPU, torch threads and precision of the runs behind a cell, as recorded (older runs recorded none)."""
    recorded = [r.manifest["compute"] for r in runs if r is not None and "compute" in r.manifest]
    return {
        key: "/".join(sorted({str(c.get(field)) for c in recorded if c.get(field)}))
        for key, field in (("cpu", "cpu"), ("torch threads", "threads"), ("precision", "precision"))
        if any(c.get(field) for c in recorded)
    }


def value_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def selection_settings(method: str, selection: dict[str, Any]) -> dict[str, str]:
    """What the selection protocol tried for `method` (every candidate value of each setting), what it chose
    (settings, then tune steps), a value at an edge of its grid flagged; runs made before early stopping
    recorded neither the steps nor the edges."""
    edges = set(selection.get("at_edge", []))

    def shown(key: str, value: float) -> str:
        return value_text(value) + (" (at the grid's edge)" if key in edges else "")

    rows = {}
    trials = selection.get("scores") or []
    chosen = selection.get("chosen") or {}  # one value of each of the grid's settings
    if chosen and trials:
        values = {key: sorted({trial[key] for trial in trials if key in trial}) for key in sorted(chosen)}
        rows[f"{method} grid"] = ", ".join(f"{k} {'/'.join(map(value_text, v))}" for k, v in values.items())
    if chosen:
        rows[f"{method} chosen"] = ", ".join(f"{k} {shown(k, v)}" for k, v in sorted(chosen.items()))
    if "steps" in selection:
        rows[f"{method} tune steps chosen"] = shown("steps", selection["steps"])
    return rows


def size_settings(tune: Run, diffuse: Run | None) -> dict[str, str]:
    """The Prompt-DT's size, what the method tunes of it and the batches it and the generator trained on."""
    summary, method = tune.manifest.get("summary", {}), tune.config["method"]
    rows = {}
    if summary.get("plm_parameters"):
        rows["Prompt-DT parameters"] = f"{summary['plm_parameters']:,}"
    if summary.get("tunable_parameters"):  # a method that trains
        share = summary.get("tunable_share_percent")
        rows[f"{method} tunable parameters"] = f"{summary['tunable_parameters']:,}" + (
            f" ({share:.3g} %)" if share is not None else ""
        )
        if tune.config.get("batch_size") is not None:
            rows["tune batch size"] = value_text(tune.config["batch_size"])
    if diffuse is not None and diffuse.config.get("batch_size"):
        rows["diffuse batch size"] = value_text(diffuse.config["batch_size"])
    return rows


WORKSPACE_FLAGS = ("-w", "--workspace")


def command_of(run: Run, root: Path) -> list[str]:
    """The argv that made `run`, the workspace as WS wherever it appears (after -w, as --workspace=…, or as
    a script's argument), so a report names the command without this machine's paths; a script keeps its
    interpreter: `python scripts/fidelity.py WS …`."""
    argv = [str(arg) for arg in run.manifest.get("argv") or []]
    if not argv:
        return []

    resolved = root.resolve()

    def is_root(arg: str) -> bool:
        return arg == str(root) or Path(arg).expanduser().resolve() == resolved

    shown = ["python", *argv] if argv[0].endswith(".py") else ["pdiff", *argv[1:]]
    for i, arg in enumerate(shown):
        if (i > 0 and shown[i - 1] in WORKSPACE_FLAGS) or is_root(arg):
            shown[i] = "WS"
        elif arg.startswith("--workspace="):
            shown[i] = "--workspace=WS"
    return shown
