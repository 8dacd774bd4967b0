"""`make bench`: every benchmark in its own process, then one table of all figures and the machine.

Each benchmark also runs alone (see its docstring); here they run with sizes that keep the whole suite to a
few minutes on 2 cores. Ratios are measured within one process run, so machine load mostly cancels in them;
absolute figures move with the load.

    python bench/run_all.py [--only train_step precision eval diffusion collect memory] [--json all.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from common import machine_line, read_json, table

HERE = Path(__file__).resolve().parent
SUITE = {
    "train_step": ["bench_train_step.py", "--steps", "40"],
    "precision": ["bench_precision.py", "--steps", "12"],
    "eval": [
        "bench_eval.py",
        "--env",
        "metaworld-reach",
        "--episodes",
        "10",
        "--horizon",
        "100",
        "--rounds",
        "2",
    ],
    "diffusion": ["bench_diffusion.py", "--iterations", "20"],
    "collect": ["bench_collect.py", "--tasks", "10", "--episodes", "5", "--horizon", "100"],
    "memory": ["bench_memory.py"],
    "reproduce_jobs": ["bench_reproduce_jobs.py"],
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="+", choices=list(SUITE), default=list(SUITE))
    parser.add_argument("--json", help="write every figure to this file")
    args = parser.parse_args()
    figures, failed = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            out = Path(tmp) / f"{name}.json"
            start = time.perf_counter()
            print(f"== {name}: {' '.join(SUITE[name])}", flush=True)
            done = subprocess.run(
                [sys.executable, str(HERE / SUITE[name][0]), *SUITE[name][1:], "--json", str(out)]
            )
            print(f"   ({time.perf_counter() - start:.0f} s)", flush=True)
            if done.returncode != 0 or not out.exists():
                failed.append(name)
                continue
            figures += read_json(out)
    print()
    print(machine_line())
    print(table(figures))
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(f) for f in figures], indent=1))
    if failed:
        raise SystemExit(f"benchmarks that failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
