"""Where the rules sysward ships live: ``sysward/rules.d`` inside the installed package.

The one definition of that place: the agent loads it by default (``rules_defaults``),
``replay`` and ``rules check`` fall back to it, and ``sysward rules path`` prints it, so the
set is found the same way from a source tree, an editable install or a wheel.
"""

from __future__ import annotations

from pathlib import Path

PACKAGED_RULES_DIR = Path(__file__).resolve().parent.parent / "rules.d"
