"""Errors a user can cause, each carrying one sentence that names the problem and the fix.

The CLI prints ``sysward: error: <message>`` and exits with ``exit_code``; it never shows a
Python traceback for these.  Programming errors stay ordinary exceptions.
"""

from __future__ import annotations


class SyswardError(Exception):
    """A problem the user can fix (bad input, missing privilege or kernel feature)."""

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class ConfigError(SyswardError):
    """A broken configuration file or flag."""


class KernelError(SyswardError):
    """The kernel refused something, or lacks a feature sysward needs."""


class PrivilegeError(KernelError):
    """sysward was started without the privileges it needs (root / CAP_BPF)."""
