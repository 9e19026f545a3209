"""Names for the agent's threads as the kernel shows them (``top -H``, ``ps -L``, ``/proc/<pid>/
task/<tid>/comm``).

Python 3.11 leaves every thread with the process's name, so per-thread CPU (reader, worker,
each output) cannot be told apart from the outside; ``prctl(PR_SET_NAME)`` names the calling
thread.  The main thread is never renamed: its name is the process's (``pgrep sysward``).
"""

from __future__ import annotations

import ctypes
import threading

PR_SET_NAME = 15
#: the kernel keeps 15 bytes of a task's name (TASK_COMM_LEN 16 with the NUL)
MAX_NAME_BYTES = 15

_libc = ctypes.CDLL(None, use_errno=True)


def name_os_thread(name: str) -> bool:
    """Name the calling thread (cut to 15 bytes); False when it is the main thread or the
    kernel refused (the name is a help to operators, never a reason to fail)."""
    if threading.current_thread() is threading.main_thread():
        return False
    raw = name.encode("utf-8", "replace")[:MAX_NAME_BYTES]
    return bool(_libc.prctl(PR_SET_NAME, ctypes.c_char_p(raw), 0, 0, 0) == 0)
