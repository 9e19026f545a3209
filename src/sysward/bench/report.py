"""Bench reports: one output directory per run with ``result.json``, ``report.md`` (Markdown
tables) and PNG plots (matplotlib, Agg backend: no display needed).

Default directory: ``./bench-out/<name>-<YYYYmmdd-HHMMSS>/``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table as RichTable

from sysward.errors import SyswardError

Cell = str | int | float | None


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    note: str = ""

    def add(self, *cells: Cell) -> None:
        self.rows.append(list(cells))


def fmt(v: Cell) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if v != v:  # NaN
            return "-"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        if abs(v) >= 100:
            return f"{v:.0f}"
        return f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def markdown(table: Table) -> str:
    lines = [f"### {table.title}", ""]
    lines.append("| " + " | ".join(table.headers) + " |")
    lines.append("|" + "|".join("---" for _ in table.headers) + "|")
    for row in table.rows:
        lines.append("| " + " | ".join(fmt(c).replace("|", "\\|") for c in row) + " |")
    if table.note:
        lines += ["", table.note]
    return "\n".join(lines) + "\n"


def print_table(console: Console, table: Table) -> None:
    t = RichTable(title=table.title, title_justify="left")
    for i, h in enumerate(table.headers):
        t.add_column(h, justify="left" if i == 0 else "right")
    for row in table.rows:
        t.add_row(*(fmt(c) for c in row))
    console.print(t)
    if table.note:
        console.print(table.note, style="dim")


def bench_console() -> Console:
    """Progress and tables go to stderr; wide enough for the tables when not a terminal."""
    c = Console(stderr=True)
    return c if c.is_terminal else Console(stderr=True, width=160)


def check_writable_file(path: Path, flag: str) -> None:
    """SyswardError now, not after the bench, when ``path`` cannot be written later."""
    if path.is_dir():
        raise SyswardError(f"{flag} {path}: is a directory; give a file name.")
    parent = path.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise SyswardError(f"{flag} {path}: directory {parent} does not exist or is not "
                           "writable; give a path in a directory you can write.")


def default_outdir(name: str) -> Path:
    return Path("bench-out") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def plot(path: Path, title: str, xlabel: str, ylabel: str,
         series: dict[str, tuple[Sequence[float], Sequence[float]]], *,
         logx: bool = False, marker: str = "o") -> Path:
    """One line plot with a series per label, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    for label, (xs, ys) in series.items():
        ax.plot(list(xs), list(ys), marker=marker, markersize=3, label=label)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logx:
        ax.set_xscale("log")
    ax.grid(True, alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


class Report:
    """Collects tables, data and plots of one bench run, then writes them out."""

    def __init__(self, name: str, outdir: Path | None, console: Console | None = None) -> None:
        self.name = name
        self.outdir = outdir or default_outdir(name)
        try:  # at the start: a bad --out must not cost a whole bench run
            self.outdir.mkdir(parents=True, exist_ok=True)
            probe = self.outdir / ".sysward-write-probe"
            probe.touch()
            probe.unlink()
        except OSError as exc:
            raise SyswardError(f"--out {self.outdir}: cannot write the report there "
                               f"({exc.strerror}); give a directory you can write.") from None
        self.console = console or bench_console()
        self.tables: list[Table] = []
        self.plots: list[Path] = []
        self.data: dict[str, Any] = {"bench": name, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        self.summary: list[str] = []

    def table(self, table: Table, *, show: bool = True) -> None:
        self.tables.append(table)
        if show:
            print_table(self.console, table)

    def plot(self, filename: str, title: str, xlabel: str, ylabel: str,
             series: dict[str, tuple[Sequence[float], Sequence[float]]], **kw: Any) -> None:
        if not any(len(xs) for xs, _ in series.values()):
            return
        self.plots.append(plot(self.outdir / filename, title, xlabel, ylabel, series, **kw))

    def say(self, line: str) -> None:
        self.summary.append(line)
        self.console.print(line)

    def write(self) -> Path:
        self.data["tables"] = [
            {"title": t.title, "headers": t.headers, "rows": t.rows, "note": t.note}
            for t in self.tables
        ]
        self.data["summary"] = self.summary
        self.data["plots"] = [p.name for p in self.plots]
        (self.outdir / "result.json").write_bytes(
            orjson.dumps(self.data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY
                         | orjson.OPT_NON_STR_KEYS, default=str)
        )
        md = [f"# sysward bench {self.name}", "", f"Run: {self.data['time']}", ""]
        md += [f"- {s}" for s in self.summary]
        md.append("")
        md += [markdown(t) for t in self.tables]
        md += [f"![{p.stem}]({p.name})\n" for p in self.plots]
        (self.outdir / "report.md").write_text("\n".join(md))
        self.console.print(f"report written to {self.outdir}/ (result.json, report.md"
                           + (", plots" if self.plots else "") + ")")
        return self.outdir
