"""The Python mirrors of the BPF headers agree with the BTF of the compiled objects.

Like Tetragon's alignchecker: every struct and constant enum of bpf/abi.h and bpf/enforce.h is
instantiated in its object (sw_abi_anchor, enf_abi_anchor), so it is in the object's BTF; we
read that BTF from the .o file (bpftool, no privileges needed) and compare sizes, field names,
offsets and sizes, reject padding the compiler inserted on its own, and compare every
constant's value with its Python mirror, both ways.  An object older than its sources would
make all of this vacuous, so that fails first.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from sysward.enforce import abi as enf_abi
from sysward.enforce.compiler import CGROUP_PROGRAMS, LSM_PROGRAMS, PROGRAMS
from sysward.enforce.prefilter import abi as pf_abi
from sysward.events import types as sw_types
from sysward.events.layout import AbiEnum, Layout

ROOT = Path(__file__).parents[2]
OBJ_DIR = ROOT / "src" / "sysward" / "bpf"
HEADERS = sorted((ROOT / "bpf").glob("*.h"))  # what the Makefile rebuilds every object on


@dataclass(frozen=True)
class Mirror:
    obj: str
    layouts: dict[str, Layout]
    enums: tuple[AbiEnum, ...]


MIRRORS = (
    Mirror("sysward.bpf.o", sw_types.LAYOUTS, sw_types.ENUMS),
    Mirror(enf_abi.OBJECT_NAME, enf_abi.LAYOUTS, enf_abi.ENUMS),
    Mirror("sysward.bpf.o", pf_abi.LAYOUTS, pf_abi.ENUMS),  # the prefilter's maps
)


def object_path(obj: str) -> Path:
    path = OBJ_DIR / obj
    if not path.exists():
        pytest.skip(f"{path.relative_to(ROOT)} is not built; run 'make build'")
    return path


@cache
def btf_types(obj: str) -> dict[int, dict[str, Any]]:
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool is not installed (Makefile DEB_PKGS installs it)")
    out = subprocess.run(["bpftool", "-j", "btf", "dump", "file", str(object_path(obj))],
                         check=True, capture_output=True, text=True).stdout
    return {t["id"]: t for t in json.loads(out)["types"]}


def by_name(obj: str, kind: str, name: str) -> dict[str, Any]:
    for t in btf_types(obj).values():
        if t["kind"] == kind and t.get("name") == name:
            return t
    raise AssertionError(f"{kind} {name} is not in the BTF of {obj}: is it in its anchor?")


def type_size(obj: str, type_id: int) -> int:
    t = btf_types(obj)[type_id]
    kind = t["kind"]
    if kind in ("INT", "STRUCT", "UNION", "ENUM", "ENUM64"):
        return int(t["size"])
    if kind in ("TYPEDEF", "CONST", "VOLATILE", "RESTRICT"):
        return type_size(obj, t["type_id"])
    if kind == "ARRAY":
        return int(t["nr_elems"]) * type_size(obj, t["type_id"])
    raise AssertionError(f"unexpected BTF kind {kind} in a wire struct of {obj}")


def funcs(obj: str) -> set[str]:
    return {t["name"] for t in btf_types(obj).values() if t["kind"] == "FUNC"}


# -- the objects are current -----------------------------------------------------------------


@pytest.mark.parametrize("obj", [m.obj for m in MIRRORS])
def test_object_is_newer_than_its_sources(obj: str) -> None:
    path = object_path(obj)
    sources = [ROOT / "bpf" / obj.replace(".o", ".c"), *HEADERS]
    newer = [s.relative_to(ROOT) for s in sources if s.stat().st_mtime > path.stat().st_mtime]
    assert not newer, (f"{path.relative_to(ROOT)} is older than {', '.join(map(str, newer))}: "
                       "the checks below would test a stale object; run 'make build'")


# -- structs ---------------------------------------------------------------------------------

STRUCTS = [(m.obj, name) for m in MIRRORS for name in sorted(m.layouts)]


@pytest.mark.parametrize(("obj", "name"), STRUCTS)
def test_struct_matches_btf(obj: str, name: str) -> None:
    layout = next(m.layouts[name] for m in MIRRORS if m.obj == obj and name in m.layouts)
    st = by_name(obj, "STRUCT", name)
    assert st["size"] == layout.size, f"{name}: C size {st['size']} != Python {layout.size}"
    assert all(m.get("bitfield_size", 0) == 0 for m in st["members"]), f"{name}: no bitfields"
    c_fields = [(m["name"], m["bits_offset"] // 8, type_size(obj, m["type_id"]))
                for m in st["members"]]
    py_fields = [(n, off, size) for n, (off, size) in layout.offsets().items()]
    assert c_fields == py_fields
    # no hidden padding: each field starts where the previous one ended, the last one ends
    # the struct
    end = 0
    for fname, off, size in c_fields:
        assert off == end, f"{name}.{fname}: {off - end} bytes of implicit padding before it"
        end = off + size
    assert end == st["size"], f"{name}: {st['size'] - end} bytes of implicit tail padding"


# -- constants -------------------------------------------------------------------------------

ENUMS = [(m.obj, e) for m in MIRRORS for e in m.enums]


@pytest.mark.parametrize(("obj", "enum"), ENUMS, ids=[e.c_name for _, e in ENUMS])
def test_enum_matches_btf(obj: str, enum: AbiEnum) -> None:
    c_values = {v["name"]: v["val"] for v in by_name(obj, "ENUM", enum.c_name)["values"]}
    assert c_values == enum.values()


def test_event_type_ids_match_enum() -> None:
    enum = by_name("sysward.bpf.o", "ENUM", "sw_event_type")
    c_values = {v["name"]: v["val"] for v in enum["values"]}
    assert c_values.pop("SW_EVT_NONE") == 0
    assert c_values.pop("SW_EVT_MAX") == sw_types.EVT_MAX
    assert c_values == {et.enum_name: et.id for et in sw_types.EVENT_TYPES}


def test_every_header_enum_is_mirrored() -> None:
    """A new enum in abi.h or enforce.h (anchored, so in BTF) needs its Python mirror."""
    mirrored = {e.c_name for m in MIRRORS for e in m.enums} | {"sw_event_type"}
    for m in MIRRORS:
        prefix = ("sw_", "pf_") if m.obj == "sysward.bpf.o" else ("enf_",)
        anchored = {t["name"] for t in btf_types(m.obj).values()
                    if t["kind"] == "ENUM" and t.get("name", "").startswith(prefix)
                    and not t["name"].startswith("sw_walk")}
        assert anchored <= mirrored, f"{m.obj}: no Python mirror for {anchored - mirrored}"


# -- programs --------------------------------------------------------------------------------


def test_every_type_has_its_programs() -> None:
    """Every program the table names exists in the object's BTF (as a FUNC)."""
    have = funcs("sysward.bpf.o")
    for et in sw_types.EVENT_TYPES:
        for prog in et.programs:
            assert prog in have, f"{et.name}: program {prog} is missing from the object"


def test_entry_programs_only_where_needed() -> None:
    """Only exec, and ioctl (the attribute flags before the call), keep a sys_enter program
    (the others read their arguments at exit from the saved user registers); every program
    of the object belongs to some event type."""
    have = funcs("sysward.bpf.o")
    named = {p for et in sw_types.EVENT_TYPES for p in et.programs}
    entries = {f for f in have if f.startswith("sw_enter_")}
    assert entries == {"sw_enter_execve", "sw_enter_execveat", "sw_enter_ioctl"}
    assert {et.name for et in sw_types.EVENT_TYPES if et.entry} == {"ioctl"}
    progs = {f for f in have if f.startswith(("sw_enter_", "sw_exit_", "sw_sched_"))}
    assert progs == named


def test_enforcement_programs_match_the_table() -> None:
    """The hook programs derived from the event table are exactly those of enforce.bpf.o."""
    have = funcs(enf_abi.OBJECT_NAME)
    named = {p for progs in PROGRAMS.values() for p in progs}
    named |= set(CGROUP_PROGRAMS) | set(LSM_PROGRAMS.values())
    assert named <= have, f"missing from {enf_abi.OBJECT_NAME}: {named - have}"
    hooks = {f for f in have if f.startswith(("enf_enter_", "enf_exit_", "enf_lsm_",
                                              "enf_connect", "enf_sendmsg")) or f == "enf_exec"}
    assert hooks == named, f"programs no event type asks for: {hooks - named}"
