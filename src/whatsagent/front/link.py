"""The link between the front and the bot's process: a Unix socket carrying spooled webhooks one way
and "stored through" confirmations the other.

`Ingest` runs in the bot's process: it reads frames in spool order, stores their events through
`AgentOS.accept` (the inbox, deduped as any webhook), then confirms the last frame of each batch.
`Courier` runs in the front: it sends what the spool holds in id order and forgets what is confirmed.
A frame sent but not confirmed when the link breaks is sent again on the next connection; a second
delivery of a stored webhook changes nothing (the inbox dedups on the provider's message id, statuses on
(message id, status)), so a break at any moment loses nothing and answers nothing twice.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence

from whatsagent import metrics
from whatsagent.errors import StoreUnavailable
from whatsagent.front import wire
from whatsagent.front.spool import Spool, Spooled
from whatsagent.messages import Event

log = logging.getLogger(__name__)

MAX_BATCH = 256
"""Frames stored in one go by the bot's process (one inbox commit per channel)."""

MAX_PENDING = 20_000
"""Webhooks the front holds unconfirmed before it answers 503 (the bot's process is down or far
behind): Meta and Twilio deliver them again later."""
MAX_PENDING_BYTES = 256 * 1024 * 1024
"""The same bound in bytes of events held (in memory as well as in the spool)."""

STORE_RETRY = 0.5
"""Seconds between attempts while the bot's store cannot commit (the front keeps the webhooks)."""


class Ingest:
    """In the bot's process: the front's webhooks, stored through `accept` in the order it spooled them."""

    def __init__(self, path: str, accept: Callable[[Sequence[Event]], Awaitable[None]]) -> None:
        self.path = path
        self.accept = accept
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self._server = await asyncio.start_unix_server(self._serve, path=self.path)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        frames: asyncio.Queue[Spooled | None] = asyncio.Queue()

        async def receive() -> None:
            try:
                while True:
                    frames.put_nowait(await wire.read_frame(reader))
            except (asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
                if not isinstance(exc, asyncio.IncompleteReadError):
                    log.error("link from the front broken: %s", exc)
            finally:
                frames.put_nowait(None)

        receiving = asyncio.create_task(receive())
        try:
            while True:
                first = await frames.get()
                if first is None:
                    return
                batch = [first]
                while len(batch) < MAX_BATCH and not frames.empty():
                    item = frames.get_nowait()
                    if item is None:
                        frames.put_nowait(None)  # seen after this batch is stored
                        break
                    batch.append(item)
                await self._store(batch)
                stored = time.time()
                for _, spooled_at, _ in batch:
                    metrics.front_handover_seconds.observe(max(0.0, stored - spooled_at))
                writer.write(wire.ack(batch[-1][0]))
                await writer.drain()
        except ConnectionError:
            pass  # the front went away: it sends the unconfirmed frames again when it is back
        except asyncio.CancelledError:
            # `stop`: what was not confirmed is sent again at the next start. Ending here (rather than
            # cancelled) keeps asyncio's stream server from reporting the cancellation as an error.
            return
        finally:
            receiving.cancel()
            writer.close()
            self._connections.discard(task)

    async def _store(self, batch: list[Spooled]) -> None:
        try:
            await self._store_events([e for _, _, blob in batch for e in wire.load_events(blob)])
            return
        except (_Bug, ValueError):  # ValueError: events that do not load (pydantic's ValidationError is one)
            pass
        for spool_id, _, blob in batch:  # find the one that cannot be stored; the others are
            try:
                await self._store_events(wire.load_events(blob))
            except Exception:
                log.exception("webhook %d from the front cannot be stored (a bug): it is dropped", spool_id)

    async def _store_events(self, events: list[Event]) -> None:
        """Store, one commit per channel, retrying while the store is unavailable; raises `_Bug`."""
        for _channel, group in itertools.groupby(events, key=lambda e: e.channel):
            of_channel = list(group)
            while True:
                try:
                    await self.accept(of_channel)
                    break
                except StoreUnavailable as exc:
                    log.warning("webhooks from the front not stored yet, trying again: %s", exc)
                    await asyncio.sleep(STORE_RETRY)
                except Exception as exc:
                    raise _Bug() from exc


class _Bug(Exception):
    """Storing failed for a reason other than the store: retrying the same events would fail again."""


class Courier:
    """In the front: spooled webhooks to the bot's process in id order; confirmed ones forgotten."""

    def __init__(self, path: str, spool: Spool, left: Sequence[Spooled] = ()) -> None:
        self.path = path
        self.spool = spool
        self._pending: dict[int, Spooled] = {spooled[0]: spooled for spooled in left}
        self._bytes = sum(len(spooled[2]) for spooled in left)
        self._unsent: collections.deque[int] = collections.deque(sorted(self._pending))
        self._in_flight: collections.deque[int] = collections.deque()
        self._more = asyncio.Event()
        self.connected = asyncio.Event()
        self._forgetting: set[asyncio.Task[None]] = set()
        self._all_confirmed = asyncio.Event()
        if not self._pending:
            self._all_confirmed.set()

    @property
    def full(self) -> bool:
        return len(self._pending) >= MAX_PENDING or self._bytes >= MAX_PENDING_BYTES

    @property
    def unconfirmed(self) -> int:
        return len(self._pending)

    def add(self, spooled: Spooled) -> None:
        self._pending[spooled[0]] = spooled
        self._bytes += len(spooled[2])
        self._all_confirmed.clear()
        self._unsent.append(spooled[0])
        self._more.set()

    async def run(self) -> None:
        """Keep the link up for as long as the front runs, reconnecting when it breaks."""
        delay = 0.05
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(self.path)
            except OSError:
                await asyncio.sleep(delay)  # the bot's process is starting (or restarting)
                delay = min(delay * 2, 1.0)
                continue
            delay = 0.05
            self.connected.set()
            try:
                await self._exchange(reader, writer)
            finally:
                self.connected.clear()
                writer.close()
                self._unsent = collections.deque(sorted(self._pending))  # all again, in order
                self._in_flight.clear()
            log.warning("link to the bot's process lost; %d webhooks to send again", len(self._pending))

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sending = asyncio.create_task(self._send(writer))
        try:
            while True:
                through = await wire.read_ack(reader)
                self._confirmed(through)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            sending.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await sending

    async def _send(self, writer: asyncio.StreamWriter) -> None:
        while True:
            if not self._unsent:
                self._more.clear()
                await self._more.wait()
                continue
            while self._unsent:
                spooled = self._pending.get(self._unsent.popleft())
                if spooled is not None:
                    writer.write(wire.frame(*spooled))
                    self._in_flight.append(spooled[0])
            await writer.drain()

    def _confirmed(self, through: int) -> None:
        done: list[int] = []
        while self._in_flight:
            spool_id = self._in_flight.popleft()
            done.append(spool_id)
            confirmed = self._pending.pop(spool_id, None)
            if confirmed is not None:
                self._bytes -= len(confirmed[2])
            if spool_id == through:
                break
        if not self._pending:
            self._all_confirmed.set()
        if done:
            task = asyncio.get_running_loop().create_task(self._forget(done))
            self._forgetting.add(task)
            task.add_done_callback(self._forgetting.discard)

    async def _forget(self, spool_ids: list[int]) -> None:
        # Should a row survive (a failed delete, a crash before it), the next start sends it again: deduped.
        try:
            await self.spool.forget(spool_ids)
        except Exception as exc:
            log.warning(
                "could not clear confirmed webhooks from the spool (they are sent again at the next start): %s", exc
            )

    async def drain(self, timeout: float) -> bool:
        """Wait until everything spooled is confirmed (at shutdown); False if `timeout` passed first."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._all_confirmed.wait()
        if self._forgetting:
            await asyncio.gather(*self._forgetting, return_exceptions=True)
        return not self._pending
