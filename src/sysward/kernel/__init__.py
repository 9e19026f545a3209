"""The kernel side of the agent in user space: a ctypes binding over libbpf.

Open and load BPF objects, set their load-time globals, attach and detach programs, read and
write maps, consume ring buffers, make sure tracefs is there, and probe what this kernel
allows.  Everything that holds a kernel resource releases it on ``close()`` and on context
exit.
"""

from __future__ import annotations

from sysward.kernel.libbpf import BpfError
from sysward.kernel.maps import BpfMap, possible_cpus
from sysward.kernel.object import BpfObject, BpfProgram, Link
from sysward.kernel.probe import require_privileges
from sysward.kernel.ringbuf import RingBufferReader
from sysward.kernel.tracefs import ensure_tracefs

__all__ = [
    "BpfError",
    "BpfMap",
    "BpfObject",
    "BpfProgram",
    "Link",
    "RingBufferReader",
    "ensure_tracefs",
    "possible_cpus",
    "require_privileges",
]
