"""``sysward rules``: check rule files (``check``) and list the field registry (``fields``)."""

from __future__ import annotations

import click


@click.group(name="rules")
def rules() -> None:
    """Check rule files and list fields."""
