"""PyYAML errors in one sentence, for rule files and the config file alike."""

from __future__ import annotations

import yaml


def yaml_error_position(exc: yaml.MarkedYAMLError) -> tuple[int, int, str]:
    """(line, column, message) of a PyYAML error, pointing where the problem starts.

    PyYAML marks the place it noticed the problem (``problem_mark``: for an unclosed quote,
    the end of the file) and, when it knows it, where the construct began (``context_mark``:
    the opening quote).  The start is where a person must look; both marks stay in the
    message in PyYAML's own words.
    """
    start = exc.context_mark or exc.problem_mark
    line, col = (start.line + 1, start.column + 1) if start is not None else (1, 1)
    parts = []
    if exc.context:
        where = exc.context_mark
        parts.append(exc.context + (f" (line {where.line + 1}, column {where.column + 1})"
                                    if where is not None else ""))
    if exc.problem:
        where = exc.problem_mark
        parts.append(exc.problem + (f" (line {where.line + 1}, column {where.column + 1})"
                                    if where is not None else ""))
    return line, col, ", ".join(parts) or "invalid YAML"
