"""Alerts as JSON lines in a file, rotated by size (path, path.1 ... path.N)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import BinaryIO

from sysward.alert import Alert
from sysward.errors import SyswardError
from sysward.outputs.base import QueuedOutput
from sysward.private_files import open_private, warn_if_shared


class FileOutput(QueuedOutput):
    """``max_bytes`` bounds each file; ``backups`` old files are kept (0: truncate in place)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        max_bytes: int = 100 * 1024 * 1024,
        backups: int = 5,
        queue_size: int = 10_000,
        batch_size: int = 2048,
    ) -> None:
        self.path = Path(path)
        self._max_bytes = max(1, max_bytes)
        self._backups = max(0, backups)
        self.rotations = 0
        try:
            existed = self.path.exists()
            # Opened here, not on the worker, so a bad path is reported at start-up.
            self._fh: BinaryIO | None = open_private(self.path, unbuffered=True)
            if existed:
                warn_if_shared(self.path, "the alert file")
        except OSError as exc:
            raise SyswardError(
                f"cannot open the alert file {self.path}: {exc.strerror}; "
                "choose a writable path (-o file:PATH or outputs.file.path)."
            ) from None
        self._size = self._fh.tell()
        # Large batches: one write(2) per batch is one GIL hand-off per batch (see _write_batch).
        super().__init__("file", queue_size=queue_size, batch_size=batch_size)

    def _rotate(self) -> None:
        assert self._fh is not None
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self._fh = None
        if self._backups > 0:
            for i in range(self._backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{i}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{self.path.name}.{i + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
            self._fh = open_private(self.path, unbuffered=True)
        else:
            self._fh = open_private(self.path, truncate=True, unbuffered=True)
        self._size = 0
        self.rotations += 1

    def _write_batch(self, batch: list[Alert]) -> int:
        if self._fh is None:
            self._fh = open_private(self.path, unbuffered=True)  # reopen after a failed rotation
            self._size = self._fh.tell()
        # Lines are gathered and written in one call per file: every write(2) releases the
        # GIL, and next to a CPU-bound rule worker each re-acquisition can wait a whole switch
        # interval, so a write per 8 KiB buffer capped this output at a few thousand alerts/s.
        lines = [alert.to_json() for alert in batch]
        size = sum(map(len, lines)) + len(lines)
        if self._size + size <= self._max_bytes:  # the common case: no rotation in the batch
            self._write_out([b"\n".join([*lines, b""])])  # one copy: the line ends included
            return len(lines)
        written = 0
        pending: list[bytes] = []
        pending_size = 0
        for json_line in lines:
            line = json_line + b"\n"
            # Rotate before a line would cross the bound; a file never ends mid-line.
            if self._size + pending_size and \
                    self._size + pending_size + len(line) > self._max_bytes:
                self._write_out(pending)
                written += len(pending)
                pending, pending_size = [], 0
                self._rotate()
            pending.append(line)
            pending_size += len(line)
        self._write_out(pending)
        return written + len(pending)

    def _write_out(self, lines: list[bytes]) -> None:
        if not lines:
            return
        assert self._fh is not None
        data = memoryview(b"".join(lines))
        fd = self._fh.fileno()
        done = 0
        try:
            while done < len(data):
                done += os.write(fd, data[done:])
        except OSError:
            # A full disk took part of the batch: cut it off again, so the file never ends
            # in half a line and nothing is written twice (the batch counts as failed).
            if done:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, self._size)
            raise
        self._size += len(data)

    def _flush_sink(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def _close_sink(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None
