"""Security events: the model shared by every stage, and the decoder from kernel bytes."""

from __future__ import annotations

from sysward.events.model import Event, Process

__all__ = ["Event", "Process"]
