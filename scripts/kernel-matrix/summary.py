"""Inside the guest: the outcome of the kernel tests as one machine-readable line.

Reads pytest's JUnit XML and prints ``KMATRIX-RESULT {json}``, which the host's runner turns
into the line ``kernel <uname -r>: N passed, M failed, K skipped (bpf lsm: yes|no)``.
"""

from __future__ import annotations

import json
import platform
import sys
import xml.etree.ElementTree as ET


def counts(junit: str) -> dict[str, object]:
    passed = failed = skipped = 0
    failures: list[str] = []
    try:
        cases = ET.parse(junit).getroot().iter("testcase")
    except (OSError, ET.ParseError) as exc:
        return {"passed": 0, "failed": 1, "skipped": 0, "failures": [f"no test report: {exc}"]}
    for case in cases:
        name = f"{case.get('classname')}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
            failures.append(name)
        elif case.find("skipped") is not None:
            skipped += 1
        else:
            passed += 1
    return {"passed": passed, "failed": failed, "skipped": skipped, "failures": failures}


def main() -> None:
    from sysward.enforce import lsm_available

    result = counts(sys.argv[1])
    result["uname"] = platform.release()
    result["bpf_lsm"] = lsm_available()
    print("KMATRIX-RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
