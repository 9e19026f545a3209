"""Text from the kernel: bytes that are not UTF-8 are kept, and made printable at the edge.

Paths, argv and comms are bytes in the kernel, and an attacker chooses them.  Decoding with
``surrogateescape`` keeps each invalid byte as a lone surrogate (0xff becomes U+DCFF), so a
rule value written ``"\\xff"`` (which the condition parser decodes the same way) matches the
raw byte, as it does in Falco.  Such strings cannot be encoded as UTF-8 as they are, so
whatever leaves the process (alerts, captures) goes through ``printable`` first, which turns
each kept byte into U+FFFD, what the decoder used to produce everywhere.
"""

from __future__ import annotations

from typing import Any

#: the codec error handler for every string decoded from the kernel
KERNEL_TEXT_ERRORS = "surrogateescape"


def printable(text: str) -> str:
    """``text`` with each kept invalid byte replaced by U+FFFD (valid UTF-8 from then on)."""
    if text.isascii():
        return text
    return text.encode("utf-8", KERNEL_TEXT_ERRORS).decode("utf-8", "replace")


def printable_tree(value: Any) -> Any:
    """``printable`` applied to every string inside dicts, lists and tuples."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        # the common case, once per alert: nothing to change, nothing copied (one plain loop:
        # generator expressions cost microseconds here)
        for v in value.values():
            kind = type(v)
            if kind is str:
                if not v.isascii():
                    break
            elif kind is dict or kind is list or kind is tuple:
                break
        else:
            return value
        return {printable_tree(k): printable_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [printable_tree(v) for v in value]
    return value
