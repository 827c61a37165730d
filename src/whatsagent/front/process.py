"""The front's process: ``python -m whatsagent.front``, started by the bot's process (`supervisor`).

It loads only what taking webhooks needs (not the app, its agents or their SDKs: it is ready in about
half the time the app takes to load, while the bot's process loads it). Its channels come from the bot's
process on stdin, pickled (`Channel.for_front`: settings, no agent), with where the spool is. It opens
the spool, serves the channels' webhook routes on the public address with every bound
`whatsagent.serving` sets, passes every other request to the bot's process, and ends when the bot's
process does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount

from whatsagent.errors import StoreUnavailable
from whatsagent.front import wire
from whatsagent.front.link import Courier
from whatsagent.front.proxy import Forward
from whatsagent.front.spool import Spool
from whatsagent.messages import Event

log = logging.getLogger("whatsagent.front")

DRAIN = 5.0
"""Seconds the front waits at shutdown for the bot's process to confirm what it spooled (the rest goes
at the next start)."""


def front_app(channels: Sequence[Any], *, backend: str, link: str, spool_path: str) -> Starlette:
    """The front's ASGI app: `channels`' webhooks spooled (those `Front.configure` chose), everything else
    passed to `backend`."""
    spool = Spool(spool_path)
    forward = Forward(backend)
    state: dict[str, Courier] = {}

    async def accept(events: Sequence[Event]) -> None:
        courier = state.get("courier")
        if courier is None:
            raise StoreUnavailable("the front is not started")
        if courier.full:
            raise StoreUnavailable(f"the bot's process is behind: {courier.unconfirmed} webhooks wait for it")
        courier.add(await spool.add(wire.dump_events(events)))

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        left = await spool.open()
        if left:
            log.info("%d webhooks spooled by the previous run go to the bot's process first", len(left))
        courier = state["courier"] = Courier(link, spool, left)
        running = asyncio.create_task(courier.run(), name="front-link")
        try:
            yield
        finally:
            if courier.connected.is_set() and not await courier.drain(DRAIN):
                log.warning("%d spooled webhooks go to the bot's process at the next start", courier.unconfirmed)
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
            await forward.close()
            await spool.close()

    routes: list[BaseRoute] = []
    for channel in channels:
        routes.extend(channel.webhook_routes(accept))
    routes.append(Mount("/", app=forward))
    return Starlette(routes=routes, lifespan=lifespan)


def _end_with_parent(parent: int) -> None:
    """Be sent SIGTERM when the bot's process ends, even by kill -9 (Linux)."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it ended before the line above
        raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m whatsagent.front", description=__doc__)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backend", required=True, help="the bot's Unix socket for HTTP")
    parser.add_argument("--link", required=True, help="the bot's Unix socket for spooled webhooks")
    parser.add_argument("--parent", type=int, required=True, help="the bot's process id")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    _end_with_parent(args.parent)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s (front): %(message)s",
    )

    import pickle

    import uvicorn

    from whatsagent import heap
    from whatsagent.privacy import install_private_logs, protect_sqlite
    from whatsagent.serving import server_options

    with heap.start_up():  # no collection while it loads ...
        # What to serve arrives once the bot's process has loaded the app (`FrontProcess.configure`).
        settings = pickle.load(sys.stdin.buffer)
        install_private_logs()
        protect_sqlite(f"sqlite:///{settings['spool']}")  # what users wrote, as private as the bot's database
        app = front_app(settings["channels"], backend=args.backend, link=args.link, spool_path=settings["spool"])
    thresholds = heap.configured()
    if thresholds is not None:
        # ... and then what it loaded is frozen: the front's collections walk only what webhooks make.
        heap.Tuning().tune(thresholds)
    options = server_options(log_level=args.log_level, timeout_graceful_shutdown=DRAIN + 5)
    uvicorn.run(app, host=args.host, port=args.port, **options)


if __name__ == "__main__":
    main()
