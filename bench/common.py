"""What every benchmark shares: a figure (ours vs a reference, measured in one run), the machine line, the
table, and the `--json FILE` hand-off that bench/run_all.py reads."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from pdiff.compute import cpu_bf16_features, cpu_model


@dataclass
class Figure:
    """One measured figure. `ratio` = ours / reference (higher is better); `target` is its minimum."""

    name: str
    ours: float
    unit: str
    reference: float | None = None
    reference_name: str = ""
    target: float | None = None

    @property
    def ratio(self) -> float | None:
        return None if self.reference in (None, 0) else self.ours / self.reference

    @property
    def verdict(self) -> str:
        if self.target is None or self.ratio is None:
            return "report"
        return "pass" if self.ratio >= self.target else "MISS"


def machine_line() -> str:
    return (
        f"machine: {cpu_model()} (native bf16: {', '.join(cpu_bf16_features()) or 'none'}), "
        f"{os.cpu_count()} cores, python {platform.python_version()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} torch threads, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def table(figures: list[Figure]) -> str:
    header = ("figure", "ours", "reference", "ratio", "target", "verdict")
    rows = [header]
    for f in figures:
        reference = f"{_number(f.reference)} ({f.reference_name})" if f.reference is not None else "-"
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else "-"
        target = f">= {f.target:g}x" if f.target is not None else "-"
        rows.append((f.name, f"{_number(f.ours)} {f.unit}", reference, ratio, target, f.verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_json(path: str | None, figures: list[Figure]) -> None:
    if path:
        Path(path).write_text(json.dumps([asdict(f) for f in figures]))


def read_json(path: Path) -> list[Figure]:
    return [Figure(**row) for row in json.loads(path.read_text())]


def peak_rss_mib() -> float:
    """This process's peak resident set size (Linux reports ru_maxrss in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
