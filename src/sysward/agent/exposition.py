"""Samples -> Prometheus' text exposition format (version 0.0.4).

The format (prometheus.io/docs/instrumenting/exposition_formats): per metric family one
``# HELP`` and one ``# TYPE`` line, then its samples, ``name{label="value",...} value``, one a
line; a counter's family is named with its ``_total`` suffix in both comment lines, as
Prometheus' own clients write it.  Label values escape backslash, double quote and newline;
help texts escape backslash and newline.  ``tests/unit/test_telemetry.py`` parses what this
writes with prometheus-client's parser.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from sysward.metrics import Sample

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _label_value(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


def render(samples: Iterable[Sample], on_clash: Callable[[Sample], None] | None = None) -> bytes:
    """The exposition of ``samples``, grouped by family in the order families first appear.

    A sample whose name was seen before with another kind is left out (``on_clash`` is told):
    one family cannot be two types.
    """
    families: dict[str, tuple[Sample, list[str]]] = {}
    for s in samples:
        fam = families.get(s.name)
        if fam is None:
            fam = families[s.name] = (s, [])
        elif fam[0].kind != s.kind:
            if on_clash is not None:
                on_clash(s)
            continue
        if s.labels:
            inner = ",".join(f'{k}="{_label_value(str(s.labels[k]))}"' for k in sorted(s.labels))
            fam[1].append(f"{s.name}{{{inner}}} {_number(s.value)}\n")
        else:
            fam[1].append(f"{s.name} {_number(s.value)}\n")
    out: list[str] = []
    for name, (first, lines) in families.items():
        doc = first.help.replace("\\", "\\\\").replace("\n", "\\n")
        out.append(f"# HELP {name} {doc}\n# TYPE {name} {first.kind}\n")
        out.extend(lines)
    return "".join(out).encode("utf-8")
