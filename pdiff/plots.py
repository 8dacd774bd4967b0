"""Learning curves from metrics.jsonl (matplotlib, headless)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from pdiff.workspace.atomic import atomic_write_bytes


def read_metrics(path: Path) -> list[dict]:
    """Every complete JSON line (a torn last line from a kill is skipped)."""
    rows = []
    if not path.is_file():
        return rows
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


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
    fig, axes = plt.subplots(1, len(present), figsize=(4.5 * len(present), 3.2), squeeze=False)
    for ax, key in zip(axes[0], present, strict=True):
        points = [(r[x], r[key]) for r in rows if key in r and x in r and r[key] is not None]
        ax.plot([p[0] for p in points], [p[1] for p in points], lw=1.2)
        ax.set_xlabel(x)
        ax.set_title(key)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return save_png(fig, out)


def save_png(fig, out: Path) -> Path:  # noqa: ANN001 - a matplotlib Figure (imported lazily)
    """Write a figure atomically as PNG and close it."""
    import io

    import matplotlib.pyplot as plt

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(out, buffer.getvalue())
    return out
