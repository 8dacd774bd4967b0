"""Atomic writes leave the old file or the new one, never a torn one, even under SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from pdiff.workspace.atomic import atomic_write_bytes, atomic_write_json, sha256_file, sha256_json

WRITER = """
import sys
from pdiff.workspace.atomic import atomic_write_bytes
path = sys.argv[1]
blocks = [bytes([65]) * 4_000_000, bytes([66]) * 6_000_000]
i = 0
print("ready", flush=True)
while True:
    atomic_write_bytes(path, blocks[i % 2])
    i += 1
"""


def test_atomic_write_roundtrip(tmp_path):
    target = tmp_path / "sub" / "file.json"
    atomic_write_json(target, {"b": 1, "a": [1, 2]})
    assert json.loads(target.read_text()) == {"a": [1, 2], "b": 1}
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == ["file.json"]  # no temp file left behind


def test_sigkill_mid_write_leaves_a_whole_file(tmp_path):
    target = tmp_path / "big.bin"
    atomic_write_bytes(target, b"A" * 4_000_000)
    whole = {b"A" * 4_000_000, b"B" * 6_000_000}
    for kill_after in (0.05, 0.13, 0.21, 0.34, 0.55):
        child = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE)
        assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
        time.sleep(kill_after)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        assert target.read_bytes() in whole, f"torn file after a kill at {kill_after}s"


def test_hashes_are_stable(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"abc")
    assert sha256_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert sha256_json({"b": 1, "a": 2}) == sha256_json({"a": 2, "b": 1})
