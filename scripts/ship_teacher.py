"""Ship the SAC teacher of a finished collect run inside the package (a maintainers' step).

    python scripts/ship_teacher.py WORKSPACE COLLECT_RUN

writes pdiff/teachers/weights/<family>/ (expert and medium actors, provenance.json) from the run's teacher;
`pdiff collect --set teacher_source=shipped` then collects with it. Commit the directory with the run's
figures.
"""

from __future__ import annotations

import sys

from pdiff.errors import PdiffError
from pdiff.teachers.shipped import ship_teacher
from pdiff.workspace.root import Workspace
from pdiff.workspace.runs import find_run, require_finished


def main(workspace: str, run_ref: str) -> None:
    try:
        run = require_finished(find_run(Workspace.open(workspace), run_ref, "collect"))
        target = ship_teacher(run)
    except PdiffError as error:
        sys.exit(f"error: {error}")
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    print(f"shipped {target} ({size / 1e6:.2f} MB)")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(*sys.argv[1:])
