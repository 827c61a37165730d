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
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from whatsagent.agent import Responder, as_responder
from whatsagent.channels.base import Channel
from whatsagent.errors import ConfigurationError
from whatsagent.inbox import WAKE_TASK, Inbox
from whatsagent.lanes import Lanes
from whatsagent.messages import Event
from whatsagent.roles import Role, resolve_role, start_work, work_queue
from whatsagent.sender import Sender, SendPolicy
from whatsagent.store.database import Database, open_database
from whatsagent.turns import TurnPolicy, TurnRunner
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
        self.inbox = Inbox(self.db, self.queue, merge_window=self.merge_window)
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.http_connections, ttl_dns_cache=300),
            json_serialize=None,  # type: ignore[arg-type]
        )
        for channel in self.channels:
            await channel.open(self.http)
        sender = Sender(self.db, self.send_policy)
        runner = TurnRunner(self.db, sender, {c.name: c for c in self.channels}, self.responders, self.turn_policy)
        lanes = Lanes(self.db, self.queue, runner.run, runner.history_turns)
        await start_work(self.queue, self.role, self.db, {WAKE_TASK: lanes.wake}, recover=lanes.recover)
        self._ready = True
        log.info(
            "whatsagent (%s) serving %s on %s",
            self.role.value,
            ", ".join(f"{c.name} at {c.prefix}/webhook" for c in self.channels),
            _redact(self.database_url),
        )

    async def stop(self) -> None:
        self._ready = False
        if self.queue is not None:
            await self.queue.stop(self.shutdown_grace)
        if self.http is not None:
            await self.http.close()
            self.http = None
        if self.db is not None:
            await self.db.close()
            self.db = None

    async def accept(self, events: Sequence[Event]) -> None:
        if self.inbox is None:
            from whatsagent.errors import StoreUnavailable

            raise StoreUnavailable("whatsagent is not started")
        await self.inbox.accept(events)

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

        @app.get("/health", include_in_schema=False)
        async def health() -> Response:
            return JSONResponse({"status": "ok"})

        @app.get("/ready", include_in_schema=False)
        async def ready(_request: Request) -> Response:
            if not self._ready or self.queue is None:
                return JSONResponse({"status": "starting"}, status_code=503)
            return JSONResponse({"status": "ready", "queue_depth": await self.queue.depth()})

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


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
