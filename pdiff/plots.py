"""Learning curves from metrics.jsonl (matplotlib, headless)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pdiff.workspace.atomic import atomic_write_bytes

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def read_metrics(path: Path) -> list[dict]:
    """Every complete JSON line (a torn line from a kill is skipped), in the order logged, except that a
    resumed run's rows replace what the killed run had logged past the checkpoint it resumed from: where a
    phase's `step` goes back, that phase's earlier rows at or after it are dropped, so curves never step
    backwards."""
    rows: list[dict] = []
    if not path.is_file():
        return rows
    last_step: dict[object, float] = {}  # per phase (None: rows without one)
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        phase, step = row.get("phase"), row.get("step")
        if isinstance(step, int | float) and not isinstance(step, bool):
            if phase in last_step and step <= last_step[phase]:
                rows = [r for r in rows if r.get("phase") != phase or not r.get("step", -1) >= step]
            last_step[phase] = step
        rows.append(row)
    return rows


# What a curve's key means, under its panel: the y-axis label and, where the name alone says little, a note.
CURVE_LABELS = {
    "loss": ("loss", "action MSE of the Prompt-DT"),
    "lr": ("learning rate", ""),
    "grad_norm": ("gradient norm", "before clipping"),
    "train_task_return": (
        "return on training tasks",
        "each with a prompt of its own (diffuse: generated); the curve budgets are sized by",
    ),
    "train_task_success": ("success on training tasks", ""),
    "loss_dm": ("L_DM", "denoising loss of the diffusion model"),
    "loss_plm": ("L_PLM", "the frozen Prompt-DT's action loss on generated prompts"),
    "cosine": (
        "cos(g_DM, g_PLM)",
        "cosine of the angle between the two losses' gradients (< 0: they conflict)",
    ),
}
X_LABELS = {"step": "training step", "update": "SAC update"}


def smoothed(values: Sequence[float], weight: float = 0.8) -> list[float]:
    """An exponential moving average (TensorBoard's smoothing), bias-corrected so it starts at the data."""
    average, out = 0.0, []
    for i, value in enumerate(values, 1):
        average = weight * average + (1 - weight) * value
        out.append(average / (1 - weight**i))
    return out


def plot_curves(
    metrics: Path, keys: Sequence[str], out: Path, *, x: str = "step", title: str = ""
) -> Path | None:
    """One panel per key that appears in the metrics; returns the PNG path, or None with nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics)
    present = [k for k in keys if any(k in r for r in rows)]
    if not present:
        return None
    fig, axes = plt.subplots(1, len(present), figsize=(4.5 * len(present), 3.6), squeeze=False)
    for ax, key in zip(axes[0], present, strict=True):
        points = [(r[x], r[key]) for r in rows if key in r and x in r and r[key] is not None]
        steps, values = [p[0] for p in points], [p[1] for p in points]
        few = len(values) <= 2  # nothing to smooth
        ax.plot(steps, values, lw=1.2 if few else 0.8, alpha=1.0 if few else 0.35, color="C0", label="logged")
        if not few:
            ax.plot(steps, smoothed(values), lw=1.6, color="C0", label="smoothed (EMA 0.8)")
            ax.legend(fontsize=7)
        label, note = CURVE_LABELS.get(key, (key, ""))
        ax.set_xlabel(X_LABELS.get(x, x))
        ax.set_ylabel(label)
        ax.set_title(key, fontsize=10)
        if note:
            ax.text(0.5, -0.3, note, transform=ax.transAxes, ha="center", va="top", fontsize=7, wrap=True)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return save_png(fig, out)


def save_png(fig: Figure, out: Path) -> Path:  # matplotlib is imported lazily
    """Write a figure atomically as PNG and close it."""
    import io

    import matplotlib.pyplot as plt

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(out, buffer.getvalue())
    return out
