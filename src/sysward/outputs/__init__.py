"""Alert outputs: stdout, file, syslog, HTTP webhook, the sqlite store; rate limit; dispatcher.

The pipeline hands each alert to ``Dispatcher.emit``; ``build_outputs(config)`` builds one
from the configuration.  See docs/outputs.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sysward.outputs.base import Output, QueuedOutput
from sysward.outputs.dispatcher import DEFAULT_CLOSE_TIMEOUT_S, Dispatcher
from sysward.outputs.factory import build_outputs, reusable_outputs
from sysward.outputs.file import FileOutput
from sysward.outputs.ratelimit import TokenBucket
from sysward.outputs.sqlite_store import AlertStore, SqliteOutput, StoredAlert, apply_retention
from sysward.outputs.stdout import StdoutOutput
from sysward.outputs.syslog import SyslogOutput, format_message, parse_address

if TYPE_CHECKING:
    from sysward.outputs.http import HttpOutput

__all__ = [
    "DEFAULT_CLOSE_TIMEOUT_S",
    "AlertStore",
    "Dispatcher",
    "FileOutput",
    "HttpOutput",
    "Output",
    "QueuedOutput",
    "SqliteOutput",
    "StdoutOutput",
    "StoredAlert",
    "SyslogOutput",
    "TokenBucket",
    "apply_retention",
    "build_outputs",
    "format_message",
    "parse_address",
    "reusable_outputs",
]


def __getattr__(name: str) -> Any:
    # The webhook output is imported when it is used: http.client pulls in ssl and email,
    # ~4 MB of RSS an agent without a webhook need not carry.
    if name == "HttpOutput":
        from sysward.outputs.http import HttpOutput

        return HttpOutput
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
