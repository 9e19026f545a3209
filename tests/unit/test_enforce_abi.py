"""The Python mirror of bpf/enforce.h agrees with the compiled object's BTF."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sysward.enforce import abi

OBJ = Path(__file__).parents[2] / "src" / "sysward" / "bpf" / abi.OBJECT_NAME


@pytest.fixture(scope="module")
def btf() -> dict[str, dict[str, Any]]:
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool is not installed")
    if not OBJ.exists():
        pytest.skip(f"{OBJ} is not built; run 'make build'")
    out = subprocess.run(["bpftool", "-j", "btf", "dump", "file", str(OBJ)], check=True,
                         capture_output=True, text=True).stdout
    types = json.loads(out)["types"]
    return {t["name"]: t for t in types if t.get("kind") in ("STRUCT", "ENUM") and t.get("name")}


def test_report_layout(btf: dict[str, dict[str, Any]]) -> None:
    st = btf["enf_report"]
    assert st["size"] == abi.REPORT.size
    got = [(m["name"], m["bits_offset"] // 8) for m in st["members"]]
    assert got == [(n, off) for n, off, _ in abi.REPORT_FIELDS]


@pytest.mark.parametrize(("name", "fmt"), [
    ("enf_cfg", abi.CFG), ("enf_bits", abi.BITS), ("enf_path_key", abi.PATH_KEY),
    ("enf_addr_key", abi.ADDR_KEY), ("enf_comm_key", abi.COMM_KEY),
])
def test_struct_sizes(btf: dict[str, dict[str, Any]], name: str, fmt: Any) -> None:
    assert btf[name]["size"] == fmt.size


@pytest.mark.parametrize(("name", "enum", "prefix"), [
    ("enf_type", abi.EnfType, "ENF_T_"), ("enf_kind", abi.Kind, "ENF_K_"),
    ("enf_act", abi.Act, "ENF_ACT_"), ("enf_protect", abi.Protect, "ENF_PROT_"),
    ("enf_counter", abi.Counter, "ENF_C_"),
])
def test_enums(btf: dict[str, dict[str, Any]], name: str, enum: Any, prefix: str) -> None:
    values = {v["name"][len(prefix):]: v["val"] for v in btf[name]["values"]}
    limit = values.pop("MAX", None)
    assert values == {e.name: e.value for e in enum}
    if name == "enf_type":
        assert limit == abi.ENF_T_MAX
    if name == "enf_kind":
        assert limit == abi.ENF_K_MAX
    if name == "enf_counter":
        assert limit == abi.ENF_C_MAX
