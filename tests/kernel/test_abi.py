"""The wire format: the Python decoder's table must agree with the compiled object's BTF.

Like Tetragon's alignchecker: every struct of bpf/abi.h is instantiated in the object, so it
is in its BTF; we compare sizes, field names and offsets, and the event type ids with
``sysward.events.types``, and reject padding the compiler inserted on its own.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from functools import cache
from typing import Any

import pytest

from sysward.agent.sensors import BPF_OBJECT
from sysward.events.types import EVENT_TYPES, EVT_MAX, LAYOUTS


@cache
def btf_types() -> dict[int, dict[str, Any]]:
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool is not installed")
    out = subprocess.run(
        ["bpftool", "btf", "dump", "file", str(BPF_OBJECT), "-j"],
        check=True, capture_output=True, text=True,
    ).stdout
    return {t["id"]: t for t in json.loads(out)["types"]}


def by_name(kind: str, name: str) -> dict[str, Any]:
    for t in btf_types().values():
        if t["kind"] == kind and t.get("name") == name:
            return t
    raise AssertionError(f"{kind} {name} is not in the BTF of {BPF_OBJECT.name}")


def type_size(type_id: int) -> int:
    t = btf_types()[type_id]
    kind = t["kind"]
    if kind in ("INT", "STRUCT", "UNION", "ENUM", "ENUM64"):
        return int(t["size"])
    if kind in ("TYPEDEF", "CONST", "VOLATILE", "RESTRICT"):
        return type_size(t["type_id"])
    if kind == "ARRAY":
        return int(t["nr_elems"]) * type_size(t["type_id"])
    if kind == "PTR":
        return 8
    raise AssertionError(f"unexpected BTF kind {kind} in a wire struct")


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_struct_matches_btf(name: str) -> None:
    layout = LAYOUTS[name]
    st = by_name("STRUCT", name)
    assert st["size"] == layout.size, f"{name}: C size {st['size']} != Python {layout.size}"
    c_fields = [(m["name"], m["bits_offset"] // 8, type_size(m["type_id"]))
                for m in st["members"]]
    py_fields = [(n, off, size) for n, (off, size) in layout.offsets().items()]
    assert c_fields == py_fields
    # no hidden padding: each field starts where the previous one ended, the last one ends
    # the struct
    end = 0
    for fname, off, size in c_fields:
        assert off == end, f"{name}.{fname}: {off - end} bytes of implicit padding before it"
        assert all(m.get("bitfield_size", 0) == 0 for m in st["members"]), "no bitfields"
        end = off + size
    assert end == st["size"], f"{name}: {st['size'] - end} bytes of implicit tail padding"


def test_event_type_ids_match_enum() -> None:
    enum = by_name("ENUM", "sw_event_type")
    c_values = {v["name"]: v["val"] for v in enum["values"]}
    assert c_values.pop("SW_EVT_NONE") == 0
    assert c_values.pop("SW_EVT_MAX") == EVT_MAX
    py_values = {et.enum_name: et.id for et in EVENT_TYPES}
    assert c_values == py_values


def test_every_type_has_its_programs() -> None:
    """Every program the table names exists in the object's BTF (as a FUNC)."""
    funcs = {t["name"] for t in btf_types().values() if t["kind"] == "FUNC"}
    for et in EVENT_TYPES:
        for prog in et.programs:
            assert prog in funcs, f"{et.name}: program {prog} is missing from the object"


def test_entry_programs_only_where_needed() -> None:
    """Only exec keeps a sys_enter program (the others read their arguments at exit from the
    saved user registers); every program of the object belongs to some event type."""
    funcs = {t["name"] for t in btf_types().values() if t["kind"] == "FUNC"}
    named = {p for et in EVENT_TYPES for p in et.programs}
    entries = {f for f in funcs if f.startswith("sw_enter_")}
    assert entries == {"sw_enter_execve", "sw_enter_execveat"}
    progs = {f for f in funcs if f.startswith(("sw_enter_", "sw_exit_", "sw_sched_"))}
    assert progs == named
