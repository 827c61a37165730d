"""Where whatsagent keeps everything (`whatsagent.store.database`)."""

from __future__ import annotations

import fcntl
from typing import IO


def own_file(path: str, refused: str) -> IO[str]:
    """Take the lock that says one process owns the SQLite file at `path` (``<path>.lock``, held while the
    returned file stays open); `ConfigurationError` with `refused` when another process holds it."""
    from whatsagent.errors import ConfigurationError

    lock = open(f"{path}.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise ConfigurationError(refused) from None
    return lock


def sqlite_file(database_url: str) -> str:
    """The file a ``sqlite:///path?options`` URL names (``:memory:`` as written); "" when it names none."""
    return database_url.split("///", 1)[1].split("?", 1)[0] if "///" in database_url else ""
