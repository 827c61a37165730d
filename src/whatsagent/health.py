"""What ``/health`` says, which anyone can read: whether the store takes writes and whether each
channel is sending, and no more (not why a token was refused, not a path or a host)."""

from __future__ import annotations

import os
import shutil
from typing import Any

from whatsagent.store import sqlite_file

MIN_FREE_BYTES = 16 * 1024 * 1024
"""Below this much free disk beside an SQLite database, the store is reported full: SQLite needs room
for its WAL and checkpoints before a write fails."""


def store_state(database_url: str, *, failing: bool) -> str:
    """``ok``, ``not writable`` (the last webhook could not be stored) or ``disk full`` (SQLite)."""
    if failing:
        return "not writable"
    if database_url.startswith("sqlite") and "///" in database_url:
        directory = os.path.dirname(sqlite_file(database_url)) or "."
        try:
            if shutil.disk_usage(directory).free < MIN_FREE_BYTES:
                return "disk full"
            if not os.access(directory, os.W_OK):
                return "not writable"
        except OSError:
            return "not writable"
    return "ok"


def public_sending(state: dict[str, Any]) -> dict[str, Any]:
    """A channel's sending state without the provider's error text."""
    if state.get("sending", True):
        return {"sending": True}
    public = {"sending": False, "reason": "access token refused"}
    for key in ("stopped_since", "next_probe_in"):
        if key in state:
            public[key] = state[key]
    return public
