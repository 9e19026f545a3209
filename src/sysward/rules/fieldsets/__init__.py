"""Field classes of the registry, one module per Falco field class.

Each module exposes ``FIELDS: list[FieldDef]``; ``sysward.rules.fields`` collects them.  The
modules build their entries from ``sysward.rules.fieldtypes`` only, so the registry imports
them and never the other way round.
"""

from __future__ import annotations

from sysward.rules.fieldsets import container, evt, fd, fspath, proc, stdio, user
from sysward.rules.fieldtypes import FieldDef


def all_field_defs() -> list[FieldDef]:
    return [*evt.FIELDS, *proc.FIELDS, *stdio.FIELDS, *fd.FIELDS, *fspath.FIELDS, *user.FIELDS,
            *container.FIELDS]
