"""The layer contract of pyproject.toml ([tool.importlinter]): imports point down the layers
(the data path one way), and no package has an import cycle among its modules."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[2]
PACKAGE = ROOT / "src" / "sysward"


def _contracts() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def test_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--no-cache", "--config", str(ROOT / "pyproject.toml")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_every_top_level_module_has_a_layer() -> None:
    """A new top-level module or package must say where it sits, or the contract ignores it."""
    top = next(c for c in _contracts() if c.get("containers") == ["sysward"])
    layers = top["layers"]
    assert isinstance(layers, list)
    named = {name.strip() for layer in layers for name in str(layer).split("|")}
    present = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    present |= {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert present - named == set(), f"add these to the layers of pyproject.toml: {present - named}"
    assert named - present == set()


def test_cycles_contract_covers_the_whole_package() -> None:
    cycles = [c for c in _contracts() if c.get("type") == "acyclic_siblings"]
    assert cycles and cycles[0]["ancestors"] == ["sysward"]
