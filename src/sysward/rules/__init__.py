"""Falco-compatible rules (being assembled; the public API lands here)."""
