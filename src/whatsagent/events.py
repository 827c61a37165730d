"""An in-process event bus: which conversations changed, for the console's live view.

The inbox (a message or status stored), the lanes (a turn started or finished) and the operator's desk
publish the key of the conversation that changed; each console viewer subscribes and fetches what it
shows once per change, so viewers never poll the database. A viewer that falls behind loses the oldest
events, never blocks a publisher: it is told to refresh everything.

On PostgreSQL the processes share their events through LISTEN/NOTIFY (`PostgresRelay`): each process
NOTIFYs what changed in it and LISTENs for the others, so a console served by a web process sees the
turns its workers run. A relay that lost its connection reconnects, and tells its viewers to refresh
everything (events may have been missed meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

log = logging.getLogger(__name__)

EVERYTHING = "*"
"""Published instead of a key when a viewer must refresh all it shows."""


class Bus:
    def __init__(self, backlog: int = 256) -> None:
        self.backlog = backlog
        self._subscribers: set[asyncio.Queue[str]] = set()
        self.relay: Callable[[str], None] | None = None
        """Also called with what this process publishes (the PostgreSQL relay)."""
        self.home: asyncio.AbstractEventLoop | None = None
        """The loop its viewers and relay live on, when others publish from another thread (the web loop
        of `AgentOS(turn_thread=True)`): their events are handed over to it. None: one loop."""

    def publish(self, conversation: str) -> None:
        home = self.home
        if home is not None and _running_loop() is not home:
            with contextlib.suppress(RuntimeError):  # its loop has closed: nobody is watching any more
                home.call_soon_threadsafe(self._publish, conversation)
            return
        self._publish(conversation)

    def _publish(self, conversation: str) -> None:
        if self.relay is not None:
            self.relay(conversation)
        self.deliver(conversation)

    def deliver(self, conversation: str) -> None:
        """To this process's viewers only."""
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(conversation)
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    while True:
                        queue.get_nowait()
                queue.put_nowait(EVERYTHING)

    @property
    def viewers(self) -> int:
        return len(self._subscribers)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[str]]:
        queue: asyncio.Queue[str] = asyncio.Queue(self.backlog)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


CHANNEL = "whatsagent_events"
PAYLOAD_MAX = 7000  # NOTIFY payloads are limited to 8000 bytes


class PostgresRelay:
    """The bus across processes: NOTIFY what this process publishes, LISTEN for the others'."""

    def __init__(self, url: str, bus: Bus) -> None:
        self.url = url
        self.bus = bus
        self.me = f"{os.getpid()}:{id(self)}"
        self._outgoing: asyncio.Queue[str] = asyncio.Queue(1024)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.bus.relay = self._enqueue
        self._tasks = [
            asyncio.create_task(self._listen(), name="whatsagent events: listen"),
            asyncio.create_task(self._notify(), name="whatsagent events: notify"),
        ]

    async def stop(self) -> None:
        self.bus.relay = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    def _enqueue(self, conversation: str) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # viewers elsewhere refresh at the next event
            self._outgoing.put_nowait(conversation)

    async def _connect(self) -> Any:
        import psycopg

        from whatsagent.queue.procrastinate import conninfo

        return await psycopg.AsyncConnection.connect(
            conninfo(self.url), autocommit=True, connect_timeout=5, application_name="whatsagent-events"
        )

    async def _listen(self) -> None:
        delay = 0.5
        while True:
            try:
                conn = await self._connect()
                try:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.bus.deliver(EVERYTHING)  # whatever was missed while not listening
                    delay = 0.5
                    async for note in conn.notifies():
                        sender, _, conversation = note.payload.partition("|")
                        if sender != self.me:
                            self.bus.deliver(conversation)
                finally:
                    with contextlib.suppress(Exception):
                        await conn.close()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("console events from other processes paused: %r", exc)
                await asyncio.sleep(delay)
                delay = min(10.0, delay * 2)

    async def _notify(self) -> None:
        conn: Any = None
        while True:
            conversation = await self._outgoing.get()
            try:
                if conn is None:
                    conn = await self._connect()
                payload = f"{self.me}|{conversation}"[:PAYLOAD_MAX]
                await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("console event not relayed: %r", exc)
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
                conn = None
                await asyncio.sleep(0.5)
