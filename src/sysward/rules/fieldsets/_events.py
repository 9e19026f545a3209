"""Event-type groups the field sets dispatch on, derived from the event table
(sysward.events.types; names as in docs/events.md)."""

from __future__ import annotations

from sysward.events.types import EVENT_TYPES, GROUPS

OPEN_TYPES = frozenset(GROUPS["open"])
EXEC_TYPES = frozenset(GROUPS["exec"])
CLONE_TYPES = frozenset(GROUPS["fork"])
ACCEPT_TYPES = frozenset(GROUPS["accept"])
DUP_TYPES = frozenset(GROUPS["dup"])
# events whose args describe a socket address (family/addr/port[/saddr/sport])
SOCKADDR_TYPES = frozenset(t.name for t in EVENT_TYPES if t.sockaddr)
# events whose result is a new file descriptor
RES_FD_TYPES = frozenset(t.name for t in EVENT_TYPES if t.res_fd)
# events that name an existing descriptor in args["fd"]
ARG_FD_TYPES = frozenset(t.name for t in EVENT_TYPES if t.arg_fd)
