"""Enrichment: the process table (seeded from /proc, kept current from events), container
identity from cgroups, and user/group names.  ``Enricher`` is the stage's facade."""

from __future__ import annotations

from sysward.enrich.containers import (
    HOST,
    CgroupResolver,
    ContainerMetadata,
    ContainerRef,
    container_id,
    find_cgroup2_mount,
    parse_cgroup_path,
)
from sysward.enrich.enricher import Enricher
from sysward.enrich.procfs import ProcReader
from sysward.enrich.proctable import ProcessTable
from sysward.enrich.users import UserDb

__all__ = [
    "HOST",
    "CgroupResolver",
    "ContainerMetadata",
    "ContainerRef",
    "Enricher",
    "ProcReader",
    "ProcessTable",
    "UserDb",
    "container_id",
    "find_cgroup2_mount",
    "parse_cgroup_path",
]
