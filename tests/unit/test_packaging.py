"""pyproject lists packages and package data by hand (workspace_template is mapped into the wheel): none may
be forgotten, and the shipped teachers travel in the wheel."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "pdiff").rglob("__init__.py")
    } | {"pdiff.workspace_template"}
    assert found == listed, f"missing from pyproject: {found - listed}; stale there: {listed - found}"


def test_every_file_a_shipped_teacher_has_is_package_data():
    import fnmatch

    from pdiff.teachers.shipped import INFERENCE_FILES, PROVENANCE_FILE

    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    written = [f"weights/ant-dir/{PROVENANCE_FILE}"]  # what ship_teacher writes, relative to pdiff/teachers
    written += [f"weights/ant-dir/{role}/{name}" for role in ("expert", "medium") for name in INFERENCE_FILES]
    for path in written:
        assert any(fnmatch.fnmatch(path, glob) for glob in globs["pdiff.teachers"]), path


def test_the_template_holds_the_presets():
    text = (ROOT / "workspace_template" / "config.yaml").read_text()
    for preset in ("smoke:", "quick:", "study:", "paper:"):
        assert preset in text


def test_a_built_wheel_ships_the_template_and_init_uses_it(tmp_path):
    import importlib.util
    import subprocess
    import sys
    import zipfile

    # Without build isolation when this venv has setuptools (the dev extra installs it: fast, offline); a
    # Python >= 3.12 venv without it builds in an isolated environment that pip fills from the index.
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        str(ROOT),
        "--no-deps",
        *isolation,
        "-q",
        "-w",
        str(tmp_path),
    ]
    build = subprocess.run(command, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next(tmp_path.glob("pdiff-*.whl"))
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    assert (unpacked / "pdiff" / "workspace_template" / "config.yaml").is_file()
    shipped = ROOT / "pdiff" / "teachers" / "weights"  # every shipped teacher file travels in the wheel
    for path in (p for p in shipped.rglob("*") if p.is_file()):
        assert (unpacked / path.relative_to(ROOT)).read_bytes() == path.read_bytes(), path
    code = (
        "import sys, pdiff; from pdiff.workspace.root import Workspace, template_dir; "
        "print(pdiff.__file__, template_dir(), Workspace.init(sys.argv[1])[1])"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "ws")],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(unpacked), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.startswith(str(unpacked))  # the wheel's copy, not the source checkout
    assert f"{unpacked}/pdiff/workspace_template" in run.stdout
    assert "config.yaml" in run.stdout and (tmp_path / "ws" / "config.yaml").read_text().count("preset") >= 1
