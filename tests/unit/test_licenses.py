"""The licenses stated once (LICENSE) agree with every C file's SPDX line and with the
license string the BPF objects give the kernel."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
BPF_SPDX = "GPL-2.0-only OR BSD-2-Clause"
BPF_KERNEL_LICENSE = b"Dual BSD/GPL"  # what the kernel reads; GPL-compatible
OTHER_SPDX = "Apache-2.0"

BPF_SOURCES = sorted([*ROOT.glob("bpf/*.[ch]"), *ROOT.glob("tests/kernel/bpf/*.c")])
OTHER_C = sorted(ROOT.glob("src/sysward/bench/c/*.c"))
OBJECTS = sorted(ROOT.glob("src/sysward/bpf/*.bpf.o"))


def spdx_of(path: Path) -> str | None:
    for line in path.read_text().splitlines()[:3]:
        if "SPDX-License-Identifier:" in line:
            return line.split("SPDX-License-Identifier:", 1)[1].strip().rstrip("*/").strip()
    return None


def elf_section(path: Path, name: str) -> bytes:
    """The bytes of one section of a little-endian ELF64 file."""
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, f"{path}: not ELF64 LE"
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def header(i: int) -> tuple[int, int, int]:
        name_off, _type, _flags, _addr, off, size = struct.unpack_from(
            "<IIQQQQ", data, shoff + i * shentsize)
        return name_off, off, size

    _, str_off, _ = header(shstrndx)
    for i in range(shnum):
        name_off, off, size = header(i)
        end = data.index(b"\0", str_off + name_off)
        if data[str_off + name_off:end].decode() == name:
            return data[off:off + size]
    raise AssertionError(f"{path.name} has no section {name}")


def test_license_files_exist() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert BPF_SPDX in text and OTHER_SPDX in text and BPF_KERNEL_LICENSE.decode() in text
    readme = (ROOT / "README.md").read_text()
    assert BPF_SPDX in readme and OTHER_SPDX in readme
    for name, phrase in (("Apache-2.0", "Apache License"),
                         ("GPL-2.0-only", "GNU GENERAL PUBLIC LICENSE"),
                         ("BSD-2-Clause", "Redistribution and use in source and binary forms")):
        assert phrase in (ROOT / "LICENSES" / f"{name}.txt").read_text(), name


def test_pyproject_states_the_python_license() -> None:
    assert f'license = "{OTHER_SPDX}"' in (ROOT / "pyproject.toml").read_text()


@pytest.mark.parametrize("path", BPF_SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_bpf_sources_carry_the_bpf_license(path: Path) -> None:
    assert spdx_of(path) == BPF_SPDX


@pytest.mark.parametrize("path", OTHER_C, ids=lambda p: str(p.relative_to(ROOT)))
def test_user_space_c_carries_the_project_license(path: Path) -> None:
    assert spdx_of(path) == OTHER_SPDX


@pytest.mark.parametrize("path", [p for p in BPF_SOURCES if p.name.endswith(".bpf.c")],
                         ids=lambda p: p.name)
def test_bpf_programs_declare_the_kernel_license(path: Path) -> None:
    assert f'SEC("license") = "{BPF_KERNEL_LICENSE.decode()}"' in path.read_text()


def test_objects_declare_the_kernel_license() -> None:
    if not OBJECTS:
        pytest.skip("the BPF objects are not built; run 'make build'")
    for obj in OBJECTS:
        assert elf_section(obj, "license").rstrip(b"\0") == BPF_KERNEL_LICENSE, obj.name
