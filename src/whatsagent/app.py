"""AgentOS: agents, channels and a store, served as one ASGI app.

    os = AgentOS(agents=[assistant], channels=[CloudAPI(agent=assistant)])
    app = os.get_app()        # FastAPI
    os.serve()                # uvicorn

Start-up validates every channel (a missing setting is an error naming it), opens the store, resumes
whatever a previous run left unfinished, then accepts webhooks. SIGTERM stops accepting, lets running
turns finish for `shutdown_grace` seconds, parks the rest (they resume at the next start) and exits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from whatsagent import metrics
from whatsagent.admission import LagGate
from whatsagent.agent import Responder, as_responder
from whatsagent.channels.base import Channel
from whatsagent.deliveries import delivery_routes
from whatsagent.errors import ConfigurationError
from whatsagent.inbox import WAKE_TASK, WINDOW_TASK, Inbox
from whatsagent.lanes import Lanes
from whatsagent.media.store import FileMediaStore, MediaStore
from whatsagent.memory import MEMORY_TASK, MemoryCapture, memory_routes
from whatsagent.messages import Event
from whatsagent.pacing import Pacing
from whatsagent.privacy import redacted
from whatsagent.proactive import proactive_routes
from whatsagent.roles import Role, resolve_role, start_work, work_queue
from whatsagent.sender import Sender, SendPolicy
from whatsagent.store.database import Database, open_database
from whatsagent.turns import TurnPolicy, TurnRunner
from whatsagent.window import WindowPolicy
from whatsagent.workqueue import WorkQueue

if TYPE_CHECKING:
    from whatsagent.store.procrastinate_queue import WorkerPolicy

log = logging.getLogger("whatsagent")

DEFAULT_DATABASE = "sqlite:///whatsagent.db"


class AgentOS:
    """Serves agents on WhatsApp channels.

    `database`: ``sqlite:///file.db`` (default, or ``WHATSAGENT_DATABASE_URL``) or a PostgreSQL URL.
    `merge_window`: seconds to wait after a user's first message before answering, so that a burst of
    messages ("hi" / "I need help" / "with my order") becomes one turn.
    `concurrency`: conversations answered at the same time.
    `role`: ``web``, ``worker`` or ``all`` (default, or ``WHATSAGENT_ROLE``); see `whatsagent.roles`.
    `worker_policy`: how workers take and watch jobs on PostgreSQL (`WorkerPolicy`).
    `media_store`: where media bytes live (default files beside the SQLite file, or ``WHATSAGENT_MEDIA_DIR``;
    with several worker machines, give them one shared store).
    `pacing`: send rates per number and per user (`Pacing`; default 80 messages/s, Meta's default tier).
    `window`: the 24-hour window's fallback template per channel (`WindowPolicy`; default: park and report).
    `api_token`: bearer token of the operator API (``/memories/{agent}/{user}``; or ``WHATSAGENT_API_TOKEN``).
    `admission_lag`: start a new turn only while the event loop runs callbacks within this many seconds,
    so acknowledgements never queue behind agent work (`whatsagent.admission`); None turns it off.
    """

    def __init__(
        self,
        *,
        channels: Sequence[Channel],
        agents: Sequence[Any] = (),
        database: str | None = None,
        merge_window: float = 0.3,
        concurrency: int = 256,
        send_policy: SendPolicy | None = None,
        turn_policy: TurnPolicy | None = None,
        shutdown_grace: float = 10.0,
        http_connections: int = 100,
        role: str | Role | None = None,
        worker_policy: WorkerPolicy | None = None,
        media_store: MediaStore | None = None,
        api_token: str | None = None,
        pacing: Pacing | None = None,
        window: WindowPolicy | None = None,
        admission_lag: float | None = None,
    ) -> None:
        if not channels:
            raise ConfigurationError("AgentOS needs at least one channel, e.g. channels=[CloudAPI(agent=assistant)]")
        names = [c.name for c in channels]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise ConfigurationError(f"channel names must be unique, {sorted(duplicates)} repeat: pass name=...")
        for channel in channels:
            if channel.agent is None:
                if len(agents) != 1:
                    raise ConfigurationError(f"channel {channel.name!r} has no agent: pass CloudAPI(agent=...)")
                channel.agent = agents[0]
        self.channels = list(channels)
        self.agents = list(agents)
        self.database_url = database or os.environ.get("WHATSAGENT_DATABASE_URL") or DEFAULT_DATABASE
        self.merge_window = merge_window
        self.concurrency = concurrency
        self.send_policy = send_policy or SendPolicy()
        self.turn_policy = turn_policy or TurnPolicy()
        self.shutdown_grace = shutdown_grace
        self.http_connections = http_connections
        self.role = resolve_role(role, self.database_url)
        self.worker_policy = worker_policy
        self.media_store = media_store or FileMediaStore(_media_directory(self.database_url))
        self.api_token = api_token or os.environ.get("WHATSAGENT_API_TOKEN")
        self.pacing = pacing or Pacing()
        self.window = window or WindowPolicy()
        self.admission_lag = admission_lag
        self.sender: Sender | None = None
        self.responders: dict[str, Responder] = {c.name: as_responder(c.agent) for c in self.channels}
        self.db: Database | None = None
        self.queue: WorkQueue | None = None
        self.inbox: Inbox | None = None
        self.http: aiohttp.ClientSession | None = None
        self._app: FastAPI | None = None
        self._ready = False

    # -- lifecycle ----------------------------------------------------------------------------------

    def validate(self) -> None:
        errors = []
        for channel in self.channels:
            try:
                channel.validate()
            except ConfigurationError as exc:
                errors.append(str(exc))
        if errors:
            raise ConfigurationError("\n".join(errors))

    async def start(self) -> None:
        self.validate()
        self.db = open_database(self.database_url)
        await self.db.start()
        self.queue = work_queue(
            self.db, self.database_url, self.role, concurrency=self.concurrency, policy=self.worker_policy
        )
        self.inbox = Inbox(self.db, self.queue, merge_window=self.merge_window, clock=self.window.clock)
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.http_connections, ttl_dns_cache=300),
            json_serialize=None,  # type: ignore[arg-type]
        )
        for channel in self.channels:
            await channel.open(self.http)
        sender = self.sender = Sender(
            self.db,
            self.send_policy,
            pacing=self.pacing,
            window=self.window,
            channels={c.name: c for c in self.channels},
        )
        for channel in self.channels:
            use_media_store = getattr(channel, "use_media_store", None)
            if use_media_store is not None:
                use_media_store(self.media_store)
        runner = TurnRunner(
            self.db,
            sender,
            {c.name: c for c in self.channels},
            self.responders,
            self.turn_policy,
            media_store=self.media_store,
            queue=self.queue,
        )
        lanes = Lanes(self.db, self.queue, runner.run, runner.history_turns)
        wake = lanes.wake if self.admission_lag is None else LagGate(self.admission_lag).wrap(lanes.wake)
        await start_work(
            self.queue,
            self.role,
            self.db,
            {
                WAKE_TASK: wake,
                MEMORY_TASK: MemoryCapture(self.db, self.responders).run,
                WINDOW_TASK: sender.on_window_closed,
            },
            recover=lanes.recover,
        )
        self._ready = True
        log.info(
            "whatsagent (%s) serving %s on %s",
            self.role.value,
            ", ".join(f"{c.name} at {c.prefix}/webhook" for c in self.channels),
            redacted(self.database_url),
        )

    async def stop(self) -> None:
        self._ready = False
        if self.inbox is not None:
            await self.inbox.drain()
        if self.queue is not None:
            await self.queue.stop(self.shutdown_grace)
        if self.http is not None:
            await self.http.close()
            self.http = None
        model_http = sys.modules.get("whatsagent.model_http")  # imported once a model was built
        if model_http is not None:
            await model_http.close_loop_pools()
        if self.db is not None:
            await self.db.close()
            self.db = None

    async def accept(self, events: Sequence[Event]) -> None:
        if self.inbox is None:
            from whatsagent.errors import StoreUnavailable

            raise StoreUnavailable("whatsagent is not started")
        started = time.perf_counter()
        accepted = await self.inbox.accept(events)
        metrics.webhook_store_seconds.observe(time.perf_counter() - started)
        if accepted.messages or accepted.duplicates:
            channel = events[0].channel
            if accepted.messages:
                metrics.inbound.labels(channel=channel, result="stored").inc(accepted.messages)
            if accepted.duplicates:
                metrics.inbound.labels(channel=channel, result="duplicate").inc(accepted.duplicates)

    # -- ASGI ---------------------------------------------------------------------------------------

    def get_app(self) -> FastAPI:
        """The ASGI app: channel webhooks, ``/health`` and ``/ready``."""
        if self._app is not None:
            return self._app
        self.validate()

        @contextlib.asynccontextmanager
        async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
            await self.start()
            try:
                yield
            finally:
                await self.stop()

        app = FastAPI(title="whatsagent", lifespan=lifespan, docs_url=None, redoc_url=None)
        if self.role.receives_webhooks:
            for channel in self.channels:
                app.router.routes.extend(channel.routes(self.accept))

        app.router.routes.extend(memory_routes(lambda: self.db, self.api_token))
        app.router.routes.extend(proactive_routes(lambda: self.sender, self.channels, self.api_token))
        app.router.routes.extend(delivery_routes(lambda: self.db, self.api_token))

        @app.get("/metrics", include_in_schema=False)
        async def metrics_endpoint() -> Response:
            if self.queue is not None:
                metrics.queue_depth.set(await self.queue.depth())
            return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)

        @app.get("/health", include_in_schema=False)
        async def health() -> Response:
            # A refused access token stops sending (see whatsagent.breaker): degraded, not dead — a
            # restart would not fix the token, and webhooks are still taken in and kept.
            sending = self.sender.sending_status() if self.sender is not None else {}
            stopped = any(not s["sending"] for s in sending.values())
            return JSONResponse({"status": "degraded" if stopped else "ok", "sending": sending})

        @app.get("/ready", include_in_schema=False)
        async def ready(_request: Request) -> Response:
            if not self._ready or self.queue is None:
                return JSONResponse({"status": "starting"}, status_code=503)
            sending = self.sender.sending_status() if self.sender is not None else {}
            return JSONResponse({"status": "ready", "queue_depth": await self.queue.depth(), "sending": sending})

        self._app = app
        return app

    def serve(self, host: str = "0.0.0.0", port: int = 8000, **uvicorn_options: Any) -> None:
        """Serve with uvicorn (blocking). SIGTERM and Ctrl-C shut down gracefully."""
        import uvicorn

        options: dict[str, Any] = {"log_level": "info", "timeout_graceful_shutdown": self.shutdown_grace + 5}
        options.update(uvicorn_options)
        uvicorn.run(self.get_app(), host=host, port=port, **options)

    async def serve_async(self, host: str = "127.0.0.1", port: int = 8000, **uvicorn_options: Any) -> None:
        import uvicorn

        config = uvicorn.Config(self.get_app(), host=host, port=port, **uvicorn_options)
        await uvicorn.Server(config).serve()


def _media_directory(database_url: str) -> str:
    """Media files beside the SQLite file; else ``WHATSAGENT_MEDIA_DIR`` or ``./whatsagent-media``."""
    configured = os.environ.get("WHATSAGENT_MEDIA_DIR")
    if configured:
        return configured
    if database_url.startswith("sqlite") and "///" in database_url:
        return os.path.join(os.path.dirname(database_url.split("///", 1)[1]) or ".", "whatsagent-media")
    return "whatsagent-media"
