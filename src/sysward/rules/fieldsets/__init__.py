"""Field classes of the registry, one module per Falco field class.

Each module exposes ``FIELDS: list[FieldDef]``; ``sysward.rules.fields`` collects them.
"""

from __future__ import annotations

from sysward.rules.fields import FieldDef


def all_field_defs() -> list[FieldDef]:
    from sysward.rules.fieldsets import container, evt, fd, proc, user

    return [*evt.FIELDS, *proc.FIELDS, *fd.FIELDS, *user.FIELDS, *container.FIELDS]
