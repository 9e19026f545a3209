"""A socket and namespace workload for ``sysward bench kfilter``: ordinary traffic that the
default rules do not alert on (a process named like a service talking to DNS, HTTPS and
loopback peers, unix sockets, a UTS namespace per round), so the share of those events the
kernel passes can be measured.

Run as ``python -m sysward.bench.netload N`` (N rounds); no packet needs to leave the host
(UDP connects send nothing; TCP goes over loopback).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import sys

CLONE_NEWUTS = 0x4000000
#: the UDP peers of each round: DNS and HTTPS-like ports on local and remote addresses
UDP_PEERS = ((socket.AF_INET, "127.0.0.53", 53), (socket.AF_INET, "10.1.2.3", 443),
             (socket.AF_INET, "8.8.8.8", 53), (socket.AF_INET6, "::1", 53))
UNIX_PATH = b"/run/sysward-bench-none.sock"


def run(rounds: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    # a name no default rule singles out (a shell, an interpreter or a transfer tool would)
    libc.prctl(15, b"bench-netload", 0, 0, 0)
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    port = srv.getsockname()[1]
    uts = os.open("/proc/self/ns/uts", os.O_RDONLY)
    for i in range(rounds):
        for fam, addr, p in UDP_PEERS:
            s = socket.socket(fam, socket.SOCK_DGRAM)
            with contextlib.suppress(OSError):
                s.connect((addr, p))
            s.close()
        if i % 4 == 0:
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.connect(("127.0.0.1", port))
            conn, _ = srv.accept()
            conn.close()
            c.close()
            u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            with contextlib.suppress(OSError):
                u.connect(UNIX_PATH)
            u.close()
        if i % 10 == 0:
            libc.unshare(CLONE_NEWUTS)
            libc.setns(uts, CLONE_NEWUTS)
    os.close(uts)
    srv.close()


if __name__ == "__main__":
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
