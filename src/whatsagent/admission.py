"""Admission of new turns by event-loop lag, so that acknowledgements never queue behind agent work.

A webhook is acknowledged after a few turns of the event loop; every turn in progress puts its own
callbacks in the same loop. When many turns start at once (a burst of users, a slow model releasing
hundreds of answers), each loop iteration runs all of them, and an acknowledgement waits that long at
every step. The gate measures the lag directly — how long a callback scheduled now waits before it runs
— and starts a new turn only while it is under `max_lag`; otherwise turns wait their turn in arrival
order, one admitted per check. Turns already running are never slowed; nothing is dropped. A turn that
has waited `max_wait` starts anyway (lag can come from a machine busy with other processes, which
holding turns back does not cure), so turns keep starting, one per check, whatever the lag.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable
from typing import Any


class LagGate:
    """``await gate.admit()`` returns once the event loop runs callbacks within `max_lag` seconds."""

    def __init__(self, max_lag: float = 0.02, max_wait: float = 1.0) -> None:
        self.max_lag = max_lag
        self.max_wait = max_wait
        self._waiting: collections.deque[tuple[float, asyncio.Future[None]]] = collections.deque()
        self._admitter: asyncio.Task[None] | None = None
        self.delayed = 0
        """Turns that had to wait for the loop to catch up (for the metrics and the benchmark)."""

    @staticmethod
    async def lag() -> float:
        """Seconds a callback scheduled now waits before it runs."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.sleep(0)
        return loop.time() - started

    async def admit(self) -> None:
        if not self._waiting and await self.lag() <= self.max_lag:
            return
        self.delayed += 1
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._waiting.append((loop.time(), future))
        if self._admitter is None or self._admitter.done():
            self._admitter = asyncio.get_running_loop().create_task(self._admit_in_order(), name="turn-admission")
        await future

    async def _admit_in_order(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            lag = await self.lag()
            since, future = self._waiting[0]
            if lag > self.max_lag and loop.time() - since < self.max_wait:
                await asyncio.sleep(min(lag, 0.1))
                continue
            self._waiting.popleft()
            if not future.done():
                future.set_result(None)

    def wrap(self, handler: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
        """`handler`, started only once admitted."""

        async def admitted(args: Any) -> None:
            await self.admit()
            await handler(args)

        return admitted
