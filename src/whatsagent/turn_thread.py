"""Turns on an event loop of their own, in a second thread (`AgentOS(turn_thread=True)`).

The HTTP server's loop (the "web loop") then only acknowledges webhooks and answers ``/health``: a
webhook's few steps (parse, verify, one commit through the SQLite writer thread) no longer wait behind
whole iterations of hundreds of turn callbacks. CPython hands the interpreter to the other thread at
least every `sys.getswitchinterval()` (5 ms), so a busy turn loop delays a step by that much at most,
not by an iteration.

Everything that runs turns lives on the turn loop: the work queue and its workers, lanes, the fence
holder, turns, the sender, the channels' HTTP session, the console's bus and the operator API (whose
routes are forwarded to it whole, since they claim lanes and send like turns). What the web loop still
does crosses over here, thread-safely:

- the inbox's wake-ups (`CrossingQueue.defer_many`: run on the turn loop with
  `asyncio.run_coroutine_threadsafe`, after the webhook is acknowledged, as before);
- the inbox's "new messages" notice to thinking turns (`call_soon_threadsafe`, `whatsagent.interrupts`);
- the console's events published by the webhook path (`whatsagent.events.Bus` hands them to its loop);
- the queue depth of ``/ready`` and ``/metrics``.

Both threads share the GIL. A thread that waits on I/O (the web loop in `select`, a socket) gives the
interpreter up and waits for it again when it wakes: up to the switch interval while the other thread
computes, once per step of an acknowledgement (CPython's "convoy effect"). So while the turn thread
runs, the switch interval is lowered from 5 ms to `SWITCH_INTERVAL` (process-wide; restored at stop):
measured, this is what takes acknowledgements from waiting on the turn loop to waiting 0.5 ms per step.

The SQLite store is safe from both loops as it is: its writer thread settles each write's future on the
loop that made it, and reads run in its own thread pool.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from whatsagent.queue.base import Handler, JobSpec, Wanted, WorkQueue

log = logging.getLogger(__name__)

T = TypeVar("T")

SWITCH_INTERVAL = 0.0005
"""Seconds a thread computes before the interpreter is handed to a waiting one, while turns run on their
own thread (CPython's default is 0.005; see the module docstring)."""


def _loop_like_this_one() -> asyncio.AbstractEventLoop:
    """A new loop of the kind running here: uvloop's when uvicorn picked it (it runs callbacks in about half
    the CPU of asyncio's own loop, and turns are the busiest work a loop of ours has)."""
    try:
        kind = type(asyncio.get_running_loop())
    except RuntimeError:
        return asyncio.new_event_loop()
    try:
        return kind()
    except TypeError:  # a loop class wanting arguments: the default kind
        return asyncio.new_event_loop()


class TurnThread:
    """An event loop running in a daemon thread, and the ways to hand it work from another loop."""

    def __init__(self, name: str = "whatsagent-turns") -> None:
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._switch_interval: float | None = None

    def start(self) -> None:
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, SWITCH_INTERVAL))
        loop = self.loop = _loop_like_this_one()
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(started.set)
            try:
                loop.run_forever()
            finally:
                try:
                    loop.run_until_complete(loop.shutdown_asyncgens())
                    loop.run_until_complete(loop.shutdown_default_executor())
                finally:
                    loop.close()

        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()
        started.wait()

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the turn loop and wait for it here; cancelling the wait cancels it there."""
        assert self.loop is not None, "the turn thread is not started"
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def call(self, fn: Callable[..., object], *args: Any) -> None:
        """Call `fn(*args)` on the turn loop, soon (from any thread)."""
        assert self.loop is not None, "the turn thread is not started"
        self.loop.call_soon_threadsafe(fn, *args)

    async def stop(self) -> None:
        """Stop the loop (whatever was started on it has been stopped) and wait for the thread to end."""
        if self.loop is None or self._thread is None:
            return
        # What is left (a typing indicator's task, the warm-up) ends as `asyncio.run` would end it.
        await self.run(_cancel_the_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        await asyncio.to_thread(self._thread.join, 30)
        if self._thread.is_alive():
            log.warning("the turn thread did not end within 30 s of shutdown")
        self._thread = None
        self.loop = None
        if self._switch_interval is not None:
            sys.setswitchinterval(self._switch_interval)
            self._switch_interval = None


class CrossingQueue(WorkQueue):
    """A work queue living on the turn loop, as the web loop's inbox uses it: each call runs there."""

    def __init__(self, queue: WorkQueue, turns: TurnThread) -> None:
        self.queue = queue
        self.turns = turns

    async def start(self, handlers: Mapping[str, Handler], *, wanted: Wanted | None = None) -> None:
        await self.turns.run(self.queue.start(handlers, wanted=wanted))

    async def defer_many(self, specs: Sequence[JobSpec]) -> int:
        return await self.turns.run(self.queue.defer_many(specs))

    async def sweep(self, wanted: Sequence[JobSpec]) -> int:
        return await self.turns.run(self.queue.sweep(wanted))

    async def stop(self, grace: float = 10.0) -> None:
        await self.turns.run(self.queue.stop(grace))

    async def depth(self) -> int:
        return await self.turns.run(self.queue.depth())


def notifier(turns: TurnThread, notify: Callable[[list[str]], None]) -> Callable[[Iterable[str]], None]:
    """`notify`, called on the turn loop whatever thread calls the result (`Interrupts.notify`: its
    events belong to the turns waiting on them)."""

    def cross(conversations: Iterable[str]) -> None:
        turns.call(notify, list(conversations))

    return cross


def on_turn_loop(app: ASGIApp, turns: Callable[[], TurnThread | None]) -> ASGIApp:
    """An ASGI app (a route's) run on the turn loop while there is one: its requests and responses
    cross back to the server's loop message by message."""

    async def forwarded(scope: Scope, receive: Receive, send: Send) -> None:
        thread = turns()
        if thread is None or thread.loop is None:
            await app(scope, receive, send)
            return
        web = asyncio.get_running_loop()

        async def on_web(coro: Awaitable[T]) -> T:
            return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_awaited(coro), web))

        async def receive_there() -> Message:
            return await on_web(receive())

        async def send_there(message: Message) -> None:
            await on_web(send(message))

        await thread.run(_awaited(app(scope, receive_there, send_there)))

    return forwarded


async def _cancel_the_rest() -> None:
    me = asyncio.current_task()
    rest = [task for task in asyncio.all_tasks() if task is not me]
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable
