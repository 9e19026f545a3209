"""The sensor: sysward's BPF object as one unit of load / attach / detach.

``Sensor`` opens src/sysward/bpf/sysward.bpf.o, sets its load-time globals (the agent's own
pid, the wakeup threshold), sizes the ring buffer, loads only the programs of the requested
event types (types whose tracepoints this kernel lacks are skipped and listed in
``missing``), attaches them, switches the types on in the ``enabled`` map and reads the
per-CPU counters.  ``close()`` detaches and unloads everything.  ``sysward events`` and
``sysward run`` both use it.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from sysward.enforce.prefilter.abi import DiscBound, Setting
from sysward.enforce.prefilter.tables import Tables
from sysward.enforce.prefilter.tables import fill as fill_prefilter
from sysward.errors import ConfigError, KernelError
from sysward.events.types import (
    BY_NAME,
    COMM_LEN,
    COUNTERS,
    EVENT_TYPES,
    EventType,
    FilterFlag,
    comm_ok,
    resolve_types,
)
from sysward.kernel.maps import ring_size_ok

BPF_OBJECT = Path(__file__).parent.parent / "bpf" / "sysward.bpf.o"
DEFAULT_RINGBUF_BYTES = 16 << 20
_U32 = struct.Struct("<I")

if TYPE_CHECKING:
    from sysward.kernel import BpfMap, BpfObject, RingBufferReader


@dataclass(slots=True)
class TypeCounters:
    """Kernel counters of one event type, summed over CPUs.
    seen = filtered + rejected + submitted + lost."""

    seen: int = 0
    filtered: int = 0
    submitted: int = 0
    lost: int = 0
    rejected: int = 0  # dropped by the prefilter: no loaded rule could match them
    discarded: int = 0  # of rejected: by a learned discarder (a path no rule can match)

    def __iadd__(self, other: TypeCounters) -> TypeCounters:
        self.seen += other.seen
        self.filtered += other.filtered
        self.submitted += other.submitted
        self.lost += other.lost
        self.rejected += other.rejected
        self.discarded += other.discarded
        return self


def _tracepoint_exists(tracefs: Path, tp: str) -> bool:
    return (tracefs / "events" / tp).is_dir()


def host_mount_ns() -> int:
    """Inode of the host's mount namespace: init's (with hostPID in Kubernetes too).

    Where /proc/1 is out of reach (a sandbox may refuse even root), the agent's own is
    taken: right for an agent running on the host, which is where that happens.
    """
    try:
        return os.stat("/proc/1/ns/mnt").st_ino
    except OSError:
        return os.stat("/proc/self/ns/mnt").st_ino


def check_ringbuf_bytes(n: int) -> int:
    if not ring_size_ok(n):
        raise ConfigError(
            f"ring buffer size {n} bytes is not a power of two of at least "
            f"{os.sysconf('SC_PAGE_SIZE')} bytes; use --ringbuf-mb 1, 2, 4, 8, 16, 32 ..."
        )
    return n


class Sensor:
    """Loads and attaches the programs for ``types``; use as a context manager."""

    def __init__(
        self,
        types: Iterable[EventType | str] | str = "all",
        ringbuf_bytes: int = DEFAULT_RINGBUF_BYTES,
        self_pid: int | None = None,
        obj_path: Path | str | None = None,
        wake_fraction: float = 0.5,
        ignore_comms: Iterable[str] = (),
        containers_only: bool = False,
        scope_cgroups: bool = False,
        capture_env: bool = True,
        prefilter: Tables | None = None,
        prefilter_setting: Setting | int = 1,
        discarders_max: int = int(DiscBound.DISC_MAX),
    ) -> None:
        if isinstance(types, str):
            self.types = resolve_types(types)
        else:
            self.types = [t if isinstance(t, EventType) else BY_NAME[t] for t in types]
        self.ringbuf_bytes = check_ringbuf_bytes(ringbuf_bytes)
        self.self_pid = os.getpid() if self_pid is None else self_pid
        self.obj_path = Path(obj_path) if obj_path else BPF_OBJECT
        self.wake_fraction = wake_fraction
        self.ignore_comms = sorted(set(ignore_comms))
        for comm in self.ignore_comms:
            if not comm_ok(comm):
                raise ConfigError(
                    f"filters.ignore_comms: {comm!r} cannot match a task name (1 to "
                    f"{COMM_LEN - 1} bytes, as the kernel truncates comm)."
                )
        self.containers_only = containers_only
        self.scope_cgroups = scope_cgroups  # check the scope_cgroups map (filters.namespaces)
        # the environment of execs: up to 2 KB per exec through the ring buffer and the
        # decoder, for nothing when no loaded rule reads proc.env
        self.capture_env = capture_env
        #: the approvers' kernel tables (None: no prefilter) and how they act (PF_ON/AUDIT)
        self.prefilter = prefilter
        self.prefilter_setting = int(prefilter_setting) if prefilter is not None else 0
        if discarders_max < 1:
            raise ConfigError(f"kernel.discarders_max: {discarders_max} must be at least 1.")
        #: entries of the kernel map of discarders (bpf/sw_discard.h)
        self.discarders_max = discarders_max
        self.missing: list[str] = []  # requested types whose tracepoints this kernel lacks
        self.active: list[EventType] = []
        self._obj: BpfObject | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> Sensor:
        from sysward.kernel import BpfObject, ensure_tracefs, require_privileges

        require_privileges()
        tracefs = ensure_tracefs()
        self.active = []
        self.missing = []
        for et in self.types:
            if all(_tracepoint_exists(tracefs, tp) for tp in et.tracepoints):
                self.active.append(et)
            else:
                self.missing.append(et.name)
        if not self.active:
            raise KernelError(
                "none of the requested event types has its tracepoints on this kernel "
                f"({', '.join(self.missing)}); choose others with --events."
            )
        wanted = {p for et in self.active for p in et.programs}
        obj = BpfObject.open(self.obj_path)
        try:
            obj.set_global("self_tgid", self.self_pid)
            obj.set_global("wake_bytes", int(self.ringbuf_bytes * self.wake_fraction))
            flags = 0
            if self.ignore_comms:
                flags |= FilterFlag.COMMS
            if self.containers_only:
                flags |= FilterFlag.HOST
                obj.set_global("host_mntns", host_mount_ns())
            if self.scope_cgroups:
                flags |= FilterFlag.CGROUPS
            obj.set_global("filter_flags", flags)
            obj.set_global("capture_env", 1 if self.capture_env else 0)
            obj.set_global("prefilter", self.prefilter_setting)
            obj.map("events").set_max_entries(self.ringbuf_bytes)
            obj.map("pf_discard").set_max_entries(self.discarders_max)
            for prog in obj.programs:
                prog.set_autoload(prog.name in wanted)
            obj.load()
            self._obj = obj
            comms = obj.map("ignore_comms")
            for comm in self.ignore_comms:
                comms.update(comm.encode().ljust(COMM_LEN, b"\0"), b"\1")
            if self.prefilter is not None:
                fill_prefilter(obj, self.prefilter)
            self.set_enabled(et.name for et in self.active)
            for name in sorted(wanted):
                obj.program(name).attach()
        except BaseException:
            obj.close()
            self._obj = None
            raise
        return self

    def close(self, hand_off: bool = False) -> None:
        """Detach every program and release the object (idempotent).

        ``hand_off``: let a child process wait for the kernel's release (BpfObject.close).
        """
        obj, self._obj = self._obj, None
        if obj is not None:
            obj.close(hand_off=hand_off)

    def __enter__(self) -> Sensor:
        return self.start() if self._obj is None else self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def obj(self) -> BpfObject:
        if self._obj is None:
            raise KernelError("the sensor is not started.")
        return self._obj

    # -- control -------------------------------------------------------------------------
    def set_enabled(self, names: Iterable[str], on: bool = True, only: bool = True) -> None:
        """Switch types on (or off) in the kernel without reloading.

        With ``only`` (the default when switching on) every other type is switched off.
        """
        chosen = {BY_NAME[n].id for n in names}
        emap = self.obj.map("enabled")
        for et in EVENT_TYPES:
            if et.id in chosen:
                emap.update(_U32.pack(et.id), _U32.pack(1 if on else 0))
            elif only and on:
                emap.update(_U32.pack(et.id), _U32.pack(0))

    def set_prefilter(self, tables: Tables) -> None:
        """Replace the approvers (a reload whose event types are attached already)."""
        if self.prefilter is None:
            return  # started without the prefilter: the kernel setting is off
        fill_prefilter(self.obj, tables, old=self.prefilter)
        self.prefilter = tables

    def ring_buffer(self, on_batch: Callable[[list[bytes]], None]) -> RingBufferReader:
        """A RingBufferReader on the events map (the caller closes it before the sensor)."""
        from sysward.kernel import RingBufferReader

        return RingBufferReader(self.obj.map("events"), on_batch=on_batch)

    def discarder_maps(self) -> tuple[BpfMap, BpfMap]:
        """The discarders' key map and per-type switch (bpf/sw_discard.h)."""
        return self.obj.map("pf_discard"), self.obj.map("pf_disc_on")

    def scope_map(self) -> BpfMap:
        """The map of out-of-scope cgroup ids (filters.namespaces / filters.labels)."""
        return self.obj.map("scope_cgroups")

    def counters(self) -> dict[str, TypeCounters]:
        """Per-type kernel counters of the active types, summed over CPUs."""
        cmap = self.obj.map("counters")
        unpack = COUNTERS.struct.unpack_from
        out: dict[str, TypeCounters] = {}
        for et in self.active:
            total = TypeCounters()
            for raw in cmap.lookup_percpu(_U32.pack(et.id)):
                total += TypeCounters(*unpack(raw, 0))
            out[et.name] = total
        return out

    def program_ids(self) -> list[int]:
        """Kernel ids of our loaded programs (to check that none remain after close)."""
        return [p.id for p in self.obj.programs if p.autoload]


#: nice value for the thread that drains the ring buffer (see raise_reader_priority)
READER_NICE = -10


def raise_reader_priority(nice: int = READER_NICE) -> bool:
    """Give the calling thread (the ring-buffer reader) a higher CPU priority.

    The monitored processes produce events on every CPU while the reader is one thread: on a
    saturated machine the scheduler gives it one fair share, and a burst from busy processes
    then outruns it and fills the ring (measured on the project's 2-CPU VM: 2 workers issuing
    1M setuid calls lost thousands of events with the reader at nice 0, none at nice -10).
    A higher weight lets the reader take the CPU it needs only while there are events to
    drain.  Returns False when the process may not raise priorities (not root): the reader
    then runs at its normal priority.
    """
    import threading

    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except OSError:
        return False
    return True


def format_counters(counters: dict[str, TypeCounters]) -> str:
    """A small table of the kernel counters, for stderr."""
    lines = [f"{'type':<18} {'seen':>10} {'filtered':>10} {'rejected':>10} {'submitted':>10} "
             f"{'lost':>8}"]
    tot = TypeCounters()
    for name, c in counters.items():
        if c.seen == 0:
            continue
        tot += c
        lines.append(f"{name:<18} {c.seen:>10} {c.filtered:>10} {c.rejected:>10} "
                     f"{c.submitted:>10} {c.lost:>8}")
    lines.append(f"{'total':<18} {tot.seen:>10} {tot.filtered:>10} {tot.rejected:>10} "
                 f"{tot.submitted:>10} {tot.lost:>8}")
    return "\n".join(lines)
