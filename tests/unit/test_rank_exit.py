"""How a torchrun rank leaves: with its exit code and its output flushed, but without the interpreter's
finalization (where leftover gloo threads can abort it)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Output to a pipe stays block-buffered, so a lost flush shows; no torchrun variables unless a test sets them.
ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONUNBUFFERED", "WORLD_SIZE", "RANK")}


def run_python(program: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env={**ENV, **env})


@pytest.mark.parametrize(("code", "returncode"), [("3", 3), ("None", 0), ("'gave up'", 1)])
def test_exit_rank_flushes_and_keeps_the_exit_code(code, returncode):
    done = run_python(
        "import atexit\n"
        "from pdiff.distributed import exit_rank\n"
        "atexit.register(print, 'finalized')\n"
        "print('saved', end='')\n"
        f"exit_rank({code})\n"
    )
    assert done.returncode == returncode, done.stderr
    assert done.stdout == "saved"  # flushed, and no finalization ran
    assert ("gave up" in done.stderr) == (returncode == 1)


@pytest.mark.parametrize(("world_size", "finalized"), [("2", False), ("1", True)])
def test_main_leaves_through_exit_rank_under_torchrun_only(world_size, finalized):
    done = run_python(
        "import atexit, sys\n"
        "import pdiff.cli\n"
        "atexit.register(print, 'finalized')\n"
        "pdiff.cli.app = lambda: sys.exit(3)\n"
        "pdiff.cli.main()\n",
        WORLD_SIZE=world_size,
    )
    assert done.returncode == 3, done.stderr
    assert ("finalized" in done.stdout) == finalized
