"""``load_rules``: files -> read -> collect -> compile -> a RuleSet, with every problem reported.

Loading never raises for a problem inside the rules: each one is a Diagnostic (with its code,
file, line, column and the offending text) and the rule it concerns is left out, so that one
typo does not hide every other rule.  Only unreadable paths raise ``RulesError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sysward.alert import Priority
from sysward.rules.codegen import Registry
from sysward.rules.collector import collect
from sysward.rules.compiler import SUPPORTED_SOURCES, Compiler, LoadResult
from sysward.rules.diagnostics import Diagnostic, RulesError
from sysward.rules.reader import Item, read_text

__all__ = ["SUPPORTED_SOURCES", "LoadResult", "load_rules", "load_rules_text", "load_texts",
           "rule_files"]


def _default_registry() -> Registry:
    from sysward.rules import fields

    return fields  # the module itself provides resolve()


def rule_files(paths: Sequence[str | Path]) -> list[Path]:
    """Expand directories into their *.yaml / *.yml files (sorted); RulesError when unreadable."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            try:
                found = sorted(c for c in p.iterdir()
                               if c.suffix in (".yaml", ".yml") and c.is_file())
            except OSError as exc:
                raise RulesError(f"cannot list rules directory {p}: {exc.strerror}; "
                                 "check the path and its permissions.") from None
            out.extend(found)
        elif p.exists():
            out.append(p)
        else:
            raise RulesError(f"rules file {p} does not exist; check the path.")
    return out


def load_rules(paths: Sequence[str | Path], *, min_priority: Priority | None = None,
               registry: Registry | None = None) -> LoadResult:
    """Load rule files and directories (in the order given; later files amend earlier ones)."""
    texts: list[tuple[str, str]] = []
    for path in rule_files(paths):
        try:
            texts.append((path.read_text(encoding="utf-8"), str(path)))
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise RulesError(f"cannot read rules file {path}: {reason}; check the path and "
                             "its permissions.") from None
    return load_texts(texts, min_priority=min_priority, registry=registry)


def load_rules_text(text: str, name: str = "<string>", *, min_priority: Priority | None = None,
                    registry: Registry | None = None) -> LoadResult:
    """Load rules from a string (tests, embedded rules)."""
    return load_texts([(text, name)], min_priority=min_priority, registry=registry)


def load_texts(texts: Sequence[tuple[str, str]], *, min_priority: Priority | None = None,
               registry: Registry | None = None) -> LoadResult:
    diags: list[Diagnostic] = []
    per_file: list[list[Item]] = []
    for text, name in texts:
        items, d = read_text(text, name)
        per_file.append(items)
        diags.extend(d)
    col, d = collect(per_file)
    diags.extend(d)
    return Compiler(col, registry or _default_registry(), min_priority, diags,
                    [n for _, n in texts]).run()
