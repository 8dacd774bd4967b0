"""Read pytest's JUnit XML reports of a CI run: fail on an unexpected skip (or xfail), on no test run at all.

Every skip is a guarantee not checked, so CI allows only the skips listed in .ci/allowed-skips.txt (one line:
a test id prefix, ` | `, the reason; `#` starts a comment). Prints the totals as one closing line.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ALLOWED = Path(__file__).with_name("allowed-skips.txt")


def allowed_skips() -> dict[str, str]:
    rows = (
        [line.split("#", 1)[0].strip() for line in ALLOWED.read_text().splitlines()]
        if ALLOWED.is_file()
        else []
    )
    return dict(tuple(part.strip() for part in row.split("|", 1)) for row in rows if row)  # type: ignore[misc]


def test_id(case: ET.Element) -> str:
    path = case.get("classname", "").replace(".", "/")
    return f"{path}.py::{case.get('name')}"


def main(reports: list[str]) -> int:
    allowed = allowed_skips()
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    unexpected: list[str] = []
    for report in reports:
        for case in ET.parse(report).getroot().iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                counts["failed"] += 1
            elif (skipped := case.find("skipped")) is not None:
                counts["skipped"] += 1
                name = test_id(case)
                if not any(name.startswith(prefix) for prefix in allowed):
                    unexpected.append(f"{name}: {skipped.get('message', '')}")
            else:
                counts["passed"] += 1
    for line in unexpected:
        print(f"unexpected skip (a guarantee left unchecked): {line}")
    print(f"total: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
    if counts["passed"] == 0:
        print("no test ran")
        return 1
    return 1 if unexpected or counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
