"""Test gating: tests under tests/kernel need root and a BPF-capable kernel.

Where the kernel cannot run them they skip with the reason; with SYSWARD_REQUIRE_KERNEL=1
(set by .ci/run) a skip of a kernel test becomes a failure, so CI really runs them.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import pytest

KERNEL_DIR = Path(__file__).parent / "kernel"
BPF_OBJECT = Path(__file__).parents[1] / "src" / "sysward" / "bpf" / "sysward.bpf.o"


@cache
def kernel_unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "kernel tests need root"
    if not Path("/sys/kernel/btf/vmlinux").exists():
        return "kernel has no BTF (/sys/kernel/btf/vmlinux missing)"
    if not BPF_OBJECT.exists():
        return f"BPF object not built ({BPF_OBJECT}); run 'make build'"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if KERNEL_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.kernel)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("kernel") is None:
        return
    reason = kernel_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("SYSWARD_REQUIRE_KERNEL") == "1":
        pytest.fail(f"SYSWARD_REQUIRE_KERNEL=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """With SYSWARD_REQUIRE_KERNEL=1 a kernel test that skips itself fails, except the tests
    marked ``lsm``: BPF LSM is refused on the project's VMs, so those skip with the reason."""
    outcome = yield
    rep = outcome.get_result()
    if (rep.skipped and call.when in ("setup", "call")
            and os.environ.get("SYSWARD_REQUIRE_KERNEL") == "1"
            and item.get_closest_marker("kernel") is not None
            and item.get_closest_marker("lsm") is None):
        rep.outcome = "failed"
        rep.longrepr = f"SYSWARD_REQUIRE_KERNEL=1 but the kernel test skipped: {rep.longrepr}"
