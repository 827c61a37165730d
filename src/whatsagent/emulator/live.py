"""Live updates for the chat page: every change in the emulator, fanned out to open pages.

Publishing costs nothing when no page is open, so benchmarks do not pay for the UI.
"""

from __future__ import annotations

import asyncio
from typing import Any

Event = dict[str, Any]


class Hub:
    """Fan-out of JSON events to subscribers (one queue per open page); None tells them to leave."""

    def __init__(self, max_queue: int = 1000) -> None:
        self._subscribers: set[asyncio.Queue[Event | None]] = set()
        self._max_queue = max_queue

    @property
    def active(self) -> bool:
        return bool(self._subscribers)

    def publish(self, event: Event) -> None:
        for queue in self._subscribers:
            if queue.qsize() < self._max_queue:
                queue.put_nowait(event)

    def subscribe(self) -> asyncio.Queue[Event | None]:
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event | None]) -> None:
        self._subscribers.discard(queue)

    def close(self) -> None:
        """End every subscription (the server is stopping)."""
        for queue in self._subscribers:
            queue.put_nowait(None)
        self._subscribers.clear()
