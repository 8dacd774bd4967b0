"""How a torchrun rank leaves: with its exit code and its output flushed, but without the interpreter's
finalization (where torch's leftover gloo threads can abort it)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(("code", "returncode"), [("3", 3), ("None", 0), ("'gave up'", 1)])
def test_exit_rank_flushes_and_keeps_the_exit_code(code, returncode):
    program = (
        "import atexit\n"
        "from pdiff.distributed import exit_rank\n"
        "atexit.register(print, 'finalized')\n"  # skipped: no finalization
        "print('saved', end='')\n"  # still buffered: a pipe is block-buffered
        f"exit_rank({code})\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert done.returncode == returncode, done.stderr
    assert done.stdout == "saved"
    assert ("gave up" in done.stderr) == (returncode == 1)
