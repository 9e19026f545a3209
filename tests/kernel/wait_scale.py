"""How much longer the kernel tests wait for something to happen.

1 on a real machine.  Under software emulation (``make test-kernels`` boots kernels under
qemu's TCG, where everything runs many times slower) the guest sets SYSWARD_TEST_WAIT_SCALE.
Only the time a test is willing to wait scales, never a bound that a test asserts.
"""

from __future__ import annotations

import os

WAIT_SCALE = float(os.environ.get("SYSWARD_TEST_WAIT_SCALE") or 1)
