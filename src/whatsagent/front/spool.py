"""The front's spool: webhooks' events, durable before the webhook is acknowledged, until the bot's
process confirms it stored them.

A SQLite file of its own beside the bot's database (``whatsagent.db`` → ``whatsagent.db-spool``), written
by the front alone through the store's writer thread (WAL, ``synchronous=FULL``, group commit), so
concurrent webhooks share one fsync. Ids only grow (``AUTOINCREMENT``): an id the bot's process
confirmed is never handed out again, even once the spool is empty.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from sqlalchemy import Connection, text

from whatsagent.errors import ConfigurationError
from whatsagent.store import sqlite_file
from whatsagent.store.database import SQLiteDatabase


def spool_path(database_url: str) -> str:
    """The spool of the bot whose SQLite database is at `database_url`."""
    database = sqlite_file(database_url)
    if not database_url.startswith("sqlite") or not database or database == ":memory:":
        raise ConfigurationError(f"the front keeps its spool beside a SQLite file; the database is {database_url!r}")
    return f"{os.path.abspath(database)}-spool"


def _schema(conn: Connection) -> None:
    conn.execute(
        text(
            "CREATE TABLE IF NOT EXISTS spool "
            "(id INTEGER PRIMARY KEY AUTOINCREMENT, spooled_at REAL NOT NULL, events BLOB NOT NULL)"
        )
    )
    conn.commit()


def _insert(spooled_at: float, blob: bytes) -> Callable[[Connection], int]:
    def op(conn: Connection) -> int:
        cursor = conn.connection.cursor()
        try:
            cursor.execute("INSERT INTO spool (spooled_at, events) VALUES (?, ?)", (spooled_at, blob))
            return int(cursor.lastrowid)
        finally:
            cursor.close()

    return op


def _forget(spool_ids: list[int]) -> Callable[[Connection], None]:
    def op(conn: Connection) -> None:
        cursor = conn.connection.cursor()
        try:
            cursor.executemany("DELETE FROM spool WHERE id = ?", [(i,) for i in spool_ids])
        finally:
            cursor.close()

    return op


Spooled = tuple[int, float, bytes]
"""A spooled webhook: its id, when it was spooled (Unix time), its events (`wire.dump_events`)."""


def _all(conn: Connection) -> list[Spooled]:
    rows = conn.exec_driver_sql("SELECT id, spooled_at, events FROM spool ORDER BY id")
    return [(int(i), float(at), bytes(b)) for i, at, b in rows]


class Spool:
    def __init__(self, path: str) -> None:
        self.db = SQLiteDatabase(path, readers=1, migrate=_schema)

    async def open(self) -> list[Spooled]:
        """Open the file (refused if another front holds it); what a previous run left unconfirmed."""
        await self.db.start()
        return await self.db.read(_all)

    async def add(self, blob: bytes) -> Spooled:
        """Store one webhook's events, once durable (`StoreUnavailable` if the commit failed)."""
        spooled_at = time.time()
        return (await self.db.write(_insert(spooled_at, blob), urgent=True), spooled_at, blob)

    async def forget(self, spool_ids: list[int]) -> None:
        """Drop what the bot's process confirmed."""
        await self.db.write(_forget(spool_ids))

    async def close(self) -> None:
        await self.db.close()
