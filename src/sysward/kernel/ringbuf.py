"""Reading a BPF ring buffer directly from Python, without a per-record C callback.

The kernel lets user space mmap a ring buffer map: page 0 holds ``consumer_pos`` (writable by
us), page 1 ``producer_pos`` (read-only), and from page 2 on the data area (which the kernel
would let us map twice in a row; we map it once and copy the rare payload that wraps around
the end in two pieces, so the agent's RSS counts the ring once).  Each record starts with
an 8-byte header: a u32 length carrying BUSY (still being written) and DISCARD flags, and a
u32 page offset the kernel uses internally; the payload follows and records are 8-byte
aligned.  We walk the records up to the producer position, copy each payload, publish the new
consumer position once per batch, and hand the batch to the callback.

Payloads are handed over as ``bytes`` copied straight out of the mapping.  Measured on the
project's 2-core VM draining a full 16 MiB ring of 64-byte records: 3.2-3.5 M records/s to a
no-op callback (2.4-2.6 M/s when the callback struct-unpacks each record), against
1.6-1.9 M/s for libbpf's ring_buffer__consume with a ctypes per-record callback.  Zero-copy
memoryview slices were slower (a memoryview object costs more to create than a small bytes
copy) and would have tied the payloads' lifetime to the batch.  Callers may keep the copies.
"""

from __future__ import annotations

import mmap
import select
import struct
from collections.abc import Callable

from sysward.errors import SyswardError
from sysward.kernel.libbpf import BPF_MAP_TYPE_RINGBUF, BpfError, errno_text
from sysward.kernel.maps import BpfMap

BPF_RINGBUF_BUSY_BIT = 1 << 31
BPF_RINGBUF_DISCARD_BIT = 1 << 30
BPF_RINGBUF_HDR_SZ = 8
_LEN_MASK = BPF_RINGBUF_DISCARD_BIT - 1
_FLAGS = BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT

OnBatch = Callable[[list[bytes]], None]


class RingBufferReader:
    """Consumes one ring buffer map; ``poll`` for a timed drain, ``drain`` for what is there."""

    def __init__(self, bpf_map: BpfMap, on_batch: OnBatch, max_batch: int = 16384) -> None:
        if bpf_map.type != BPF_MAP_TYPE_RINGBUF:
            raise SyswardError(f"map '{bpf_map.name}' is not a ring buffer.")
        self.map = bpf_map
        self._on_batch = on_batch
        self._fd = bpf_map.fd
        self._size = bpf_map.max_entries
        self._mask = self._size - 1
        page = mmap.PAGESIZE
        self._page = page
        cons_map: mmap.mmap | None = None
        try:
            cons_map = mmap.mmap(
                self._fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0
            )
            # The kernel lets us map the data area twice in a row so records never wrap;
            # we map it once: every page of the second copy would count again in the
            # agent's RSS (16 MB more for the default ring), and wrapping is rare and cheap.
            prod_map = mmap.mmap(
                self._fd, page + self._size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page
            )
        except OSError as exc:
            if cons_map is not None:
                cons_map.close()
            raise BpfError(
                f"mapping ring buffer '{bpf_map.name}' failed: {errno_text(exc.errno or 22)}",
                errno=exc.errno or 22,
            ) from None
        self._cons_map, self._prod_map = cons_map, prod_map
        self._closed = False
        self.max_batch = max_batch  # bounds the memory one on_batch call holds
        # native formats: one 8-byte (4-byte) load per position (header), never byte by byte
        self._u64 = struct.Struct("Q")
        self._u32 = struct.Struct("I")
        # consumer_pos is published with ONE aligned 8-byte store: struct.pack_into zeroes its
        # target before writing, and a producer that reads consumer_pos == 0 in that instant
        # sees a full ring and drops its record.
        self._cons_pos = memoryview(cons_map).cast("Q")
        self._cons = self._cons_pos[0]
        # poll(2), not epoll: epoll only re-checks a file after a wakeup, and producers that
        # submit with BPF_RB_NO_WAKEUP never send one; poll asks the map every time.
        self._poller: select.poll | None = select.poll()
        self._poller.register(self._fd, select.POLLIN)
        self.records = 0  # payloads handed to on_batch
        self.discarded = 0  # records the kernel discarded (bpf_ringbuf_discard)
        self.batches = 0

    def fileno(self) -> int:
        """The map fd, readable while records are pending.  Watch it with select/poll: epoll
        only notices it after a kernel wakeup, which BPF_RB_NO_WAKEUP producers never send."""
        return self._fd

    def drain(self) -> int:
        """Consume every record committed now; never blocks.  Returns records delivered.

        Only what was committed when the call began is consumed: under a flood the producers
        can outpace us, and a drain chasing the producer position would never return (the
        caller could then neither stop nor report progress).
        """
        mm = self._prod_map
        if self._closed:
            raise SyswardError(f"ring buffer reader of '{self.map.name}' is closed.")
        u32 = self._u32.unpack_from
        max_batch = self.max_batch
        total = 0
        prod = self._u64.unpack_from(mm, 0)[0]
        page = self._page
        size = self._size
        data_end = page + size
        while True:
            cons = self._cons
            if cons >= prod:
                return total
            off = page + (cons & self._mask)
            todo = prod - cons  # bytes of records to walk
            walked = 0
            batch: list[bytes] = []
            append = batch.append
            discarded = 0
            while walked < todo:
                # headers are 8-byte aligned and the data area is page aligned: a header never
                # straddles the end, only a payload can
                hdr = u32(mm, off)[0]
                if hdr & _FLAGS:
                    if hdr & BPF_RINGBUF_BUSY_BIT:
                        break  # not committed yet; everything after it waits too
                    hdr &= _LEN_MASK
                    discarded += 1
                else:
                    start_ = off + BPF_RINGBUF_HDR_SZ
                    stop = start_ + hdr
                    if stop <= data_end:
                        append(mm[start_:stop])
                    else:
                        append(mm[start_:data_end] + mm[page : page + stop - data_end])
                step = (hdr + BPF_RINGBUF_HDR_SZ + 7) & ~7
                walked += step
                off += step
                if off >= data_end:
                    off -= size
                if len(batch) >= max_batch:
                    break
            if walked == 0:
                return total  # only a busy record ahead
            # The payloads are copies: hand the space back to the kernel before the callback
            # runs, so producers can go on while we decode.
            cons += walked
            self._cons_pos[0] = cons
            self._cons = cons
            self.discarded += discarded
            if batch:
                self.records += len(batch)
                self.batches += 1
                total += len(batch)
                self._on_batch(batch)

    def poll(self, timeout_ms: int) -> int:
        """Wait up to ``timeout_ms`` for data, then drain everything; returns records delivered.

        Returns at once when records are pending.  Data that arrives during the wait ends it
        only when the producer wakes us; with BPF_RB_NO_WAKEUP it is picked up at the end of
        the timeout, so calling poll(10) in a loop is a drain every 10 ms.
        """
        if self._poller is None:
            raise SyswardError(f"ring buffer reader of '{self.map.name}' is closed.")
        self._poller.poll(max(timeout_ms, 0))
        return self.drain()

    def close(self) -> None:
        if self._closed:
            return
        self._poller = None
        self._closed = True
        self._cons_pos.release()  # the mapping cannot close while a view exports it
        for mm in (self._cons_map, self._prod_map):
            mm.close()

    def __enter__(self) -> RingBufferReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
