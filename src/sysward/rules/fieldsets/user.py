"""``user.*`` and ``group.*``: who the process runs as.

``user.uid`` / ``group.gid`` are the *effective* ids after the syscall, from the event header
(Falco's driver reports the effective ids too).  Names come from enrichment (Process.user,
.group, .loginname); for host processes that enrichment did not name, this host's passwd and
group databases are asked (cached).  ``user.loginuid`` is -1 for a process that never logged
in, as Falco prints it.
"""

from __future__ import annotations

from sysward.events.model import NO_LOGINUID, Event
from sysward.rules.fieldsets._names import group_name, user_entry, user_name
from sysward.rules.fieldtypes import Extractor, FieldDef, FieldType, simple

S, N = FieldType.STRING, FieldType.INT


def _host(e: Event) -> bool:
    return e.proc is None or e.proc.container_id == "host"


def _user_name(e: Event) -> str | None:
    p = e.proc
    if p is not None and p.user:
        return p.user
    return user_name(e.euid) if _host(e) else None


def _loginuid(e: Event) -> int:
    return -1 if e.loginuid == NO_LOGINUID else e.loginuid


def _loginname(e: Event) -> str | None:
    if e.loginuid == NO_LOGINUID:
        return None
    p = e.proc
    if p is not None and p.loginname:
        return p.loginname
    return user_name(e.loginuid) if _host(e) else None


def _group_name(e: Event) -> str | None:
    p = e.proc
    if p is not None and p.group:
        return p.group
    return group_name(e.egid) if _host(e) else None


def _entry(index: int) -> Extractor:
    def extract(e: Event) -> str | None:
        if not _host(e):
            return None
        entry = user_entry(e.euid)
        return entry[index] if entry is not None else None

    return extract



_H = "event header"
_N = "enrichment; this host's passwd/group for host processes"

FIELDS: list[FieldDef] = [
    FieldDef("user.uid", N, "Effective user id.", simple(lambda e: e.euid), availability=_H),
    FieldDef("user.name", S, "Name of the effective user.", simple(_user_name),
             availability=_N),
    FieldDef("user.loginuid", N, "Audit login uid; -1 when the process never logged in.",
             simple(_loginuid), availability=_H),
    FieldDef("user.loginname", S, "Name of the login user.", simple(_loginname),
             availability=_N),
    FieldDef("user.homedir", S, "Home directory of the user.", simple(_entry(0)),
             availability="this host's passwd, host processes only"),
    FieldDef("user.shell", S, "Login shell of the user.", simple(_entry(1)),
             availability="this host's passwd, host processes only"),
    FieldDef("group.gid", N, "Effective group id.", simple(lambda e: e.egid),
             availability=_H),
    FieldDef("group.name", S, "Name of the effective group.", simple(_group_name),
             availability=_N),
]
