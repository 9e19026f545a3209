"""Process trees: which alerts and correlation steps belong to "the same process tree".

A tree is named by its *root*, a (pid, start time) pair so that a reused pid is another
tree.  The root of a process's tree is its parent (the shell or program that started it, so
that siblings started by one shell share a tree); a parent that is only a forked copy of its
own parent (a subshell: same comm and executable) hands the role up; pid 1 and unknown
parents never root a tree (every daemon would share one), the process itself does.  An event
belongs to an existing tree when that tree's root is the process or one of its ancestors.
"""

from __future__ import annotations

from sysward.events.model import Event, Process

#: ancestors looked at, the process itself included (the enrichment's chains are bounded too)
CHAIN_DEPTH = 12

TreeKey = tuple[int, int]


def _key(p: Process) -> TreeKey:
    return (p.pid, p.start_time)


def chain(event: Event) -> list[TreeKey]:
    """The event's process and its known ancestors, nearest first."""
    out: list[TreeKey] = []
    p = event.proc
    if p is None:
        return [(event.pid, event.start_time)]
    while p is not None and len(out) < CHAIN_DEPTH:
        out.append(_key(p))
        p = p.parent
    return out


def root(event: Event) -> TreeKey:
    """The root a new tree gets when ``event`` is the first of it."""
    p = event.proc
    if p is None:
        return (event.pid, event.start_time)
    parent = p.parent
    if parent is None or parent.pid <= 1:
        return _key(p)
    while (parent.parent is not None and parent.parent.pid > 1
           and parent.comm == parent.parent.comm and parent.exepath == parent.parent.exepath):
        parent = parent.parent
    return _key(parent)
