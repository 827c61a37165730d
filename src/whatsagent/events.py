"""An in-process event bus: which conversations changed, for the console's live view.

The inbox (a message or status stored), the lanes (a turn started or finished) and the operator's desk
publish the key of the conversation that changed; each console viewer subscribes and fetches what it
shows once per change, so viewers never poll the database. A viewer that falls behind loses the oldest
events, never blocks a publisher: it is told to refresh everything.

Scope: one process. With separate web and worker processes (PostgreSQL), a web process sees what its
own webhooks and operators change at once, and turns run by workers when the next event arrives for
the conversation (see docs/operator-api.md, "Live updates").
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

EVERYTHING = "*"
"""Published instead of a key when a viewer must refresh all it shows."""


class Bus:
    def __init__(self, backlog: int = 256) -> None:
        self.backlog = backlog
        self._subscribers: set[asyncio.Queue[str]] = set()

    def publish(self, conversation: str) -> None:
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
