"""The minimum kernel: where a helper sysward's programs call is missing, nothing loads, and
the user gets one sentence naming the helper and the kernel version to move to.

These tests run on every kernel: on a supported one they check that doctor's verdict matches
what really loads; on an older one (``make test-kernels`` boots Debian 11's 5.10) they check
the refusal.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sysward.enforce import lsm_available
from sysward.kernel import BpfObject
from sysward.kernel.probe import MINIMUM_KERNEL, missing_helpers

OBJECTS = Path(__file__).parents[2] / "src" / "sysward" / "bpf"


def _doctor() -> dict[str, dict[str, object]]:
    proc = subprocess.run([sys.executable, "-m", "sysward", "doctor", "--json"],
                          capture_output=True, text=True, timeout=60)
    assert "Traceback" not in proc.stderr
    return {c["name"]: c for c in json.loads(proc.stdout)["capabilities"]}


def _loads(name: str) -> bool:
    """Whether every program of object ``name`` passes this kernel's verifier (the LSM ones
    where the kernel runs LSM programs)."""
    from sysward.kernel import BpfError

    lsm = lsm_available()
    with BpfObject.open(OBJECTS / name) as obj:
        for prog in obj.programs:
            prog.set_autoload(lsm or not prog.name.startswith("enf_lsm_"))
        try:
            obj.load()
        except BpfError:
            return False
    return True


def test_doctor_helpers_line_matches_what_loads() -> None:
    missing = missing_helpers()
    helpers = _doctor()["helpers"]
    assert helpers["required"] is True
    assert helpers["ok"] is (not missing)
    loads = [_loads("sysward.bpf.o"), _loads("enforce.bpf.o")]
    if missing:
        assert loads == [False, False]  # nothing sysward ships loads without them
        for name, since in missing:
            assert f"{name} (Linux {since})" in str(helpers["detail"])
        assert f"needs Linux {MINIMUM_KERNEL} or newer" in str(helpers["detail"])
    else:
        assert loads == [True, True]


def test_run_below_the_minimum_is_one_sentence(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "sysward", "run", "--duration", "1",
                           "--no-server", "--set", f"outputs.sqlite.path={tmp_path / 'a.db'}"],
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr
    if missing_helpers():
        assert proc.returncode == 2, proc.stderr
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and f"needs Linux {MINIMUM_KERNEL} or newer" in lines[0], lines
    else:
        assert proc.returncode == 0, proc.stderr
