"""Live updates for the chat page: every change in the emulator, fanned out to open pages.

Publishing costs nothing when no page is open, so benchmarks do not pay for the UI.
"""

from __future__ import annotations

import asyncio
from typing import Any


class Hub:
    """Fan-out of JSON events to subscribers (one queue per open page)."""

    def __init__(self, max_queue: int = 1000) -> None:
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._max_queue = max_queue

    @property
    def active(self) -> bool:
        return bool(self._subscribers)

    def publish(self, event: dict[str, Any]) -> None:
        for queue in self._subscribers:
            if queue.qsize() < self._max_queue:
                queue.put_nowait(event)

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._subscribers.discard(queue)
