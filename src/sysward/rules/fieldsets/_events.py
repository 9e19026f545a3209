"""Event-type groups the field sets dispatch on (names as in docs/events.md)."""

from __future__ import annotations

OPEN_TYPES = frozenset({"open", "openat", "openat2", "creat"})
EXEC_TYPES = frozenset({"execve", "execveat"})
CLONE_TYPES = frozenset({"clone", "clone3", "fork", "vfork"})
ACCEPT_TYPES = frozenset({"accept", "accept4"})
DUP_TYPES = frozenset({"dup", "dup2", "dup3"})
# events whose args describe a socket address (family/addr/port[/saddr/sport])
SOCKADDR_TYPES = frozenset({"connect", "bind", "listen"}) | ACCEPT_TYPES | DUP_TYPES
# events whose result is a new file descriptor
RES_FD_TYPES = OPEN_TYPES | ACCEPT_TYPES | DUP_TYPES | frozenset({"socket", "memfd_create"})
# events that name an existing descriptor in args["fd"]
ARG_FD_TYPES = frozenset({"connect", "bind", "listen", "fchmod", "setns", "finit_module",
                          "fchdir"})
