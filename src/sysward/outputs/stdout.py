"""Alerts on standard output: Falco's text line, or one JSON object per line."""

from __future__ import annotations

import sys
from typing import BinaryIO

from sysward.alert import Alert
from sysward.outputs.base import QueuedOutput

FORMATS = ("text", "json")


class StdoutOutput(QueuedOutput):
    """Writes on a worker thread, so a slow terminal or a full pipe never stalls the pipeline."""

    def __init__(
        self, fmt: str = "text", stream: BinaryIO | None = None, queue_size: int = 10_000
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown stdout format {fmt!r} (expected text or json)")
        self._json = fmt == "json"
        self._stream: BinaryIO = stream if stream is not None else sys.stdout.buffer
        super().__init__("json" if self._json else "stdout", queue_size=queue_size)

    def _write_batch(self, batch: list[Alert]) -> int:
        if self._json:
            data = b"\n".join([alert.to_json() for alert in batch]) + b"\n"
        else:
            data = "".join(alert.text_line() + "\n" for alert in batch).encode(
                "utf-8", "backslashreplace"
            )
        self._stream.write(data)
        # Flush per batch: a reader of the pipe sees the alert now, not when a buffer fills.
        self._stream.flush()
        return len(batch)

    def _flush_sink(self) -> None:
        self._stream.flush()
