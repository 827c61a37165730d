"""AgentOS: agents, channels and a store, served as one ASGI app.

    os = AgentOS(agents=[assistant], channels=[CloudAPI(agent=assistant)])
    app = os.get_app()        # FastAPI
    os.serve()                # uvicorn (reload=True restarts it when your code changes)

In an app of your own, include the router: its lifespan starts and stops whatsagent with your app.

    app = FastAPI()
    app.include_router(os.get_router())       # webhooks, /health, /ready, /metrics, the operator API

(or, with your own lifespan, ``async with os.lifespan(app): ...`` inside it). `app.mount("/x", os.get_app())`
does not work: Starlette never runs a mounted app's lifespan, so whatsagent would never start.

Start-up validates every channel (a missing setting is an error naming it), opens the store, resumes
whatever a previous run left unfinished, then accepts webhooks. SIGTERM stops accepting, lets running
turns finish for `shutdown_grace` seconds, parks the rest (they resume at the next start) and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import aiohttp
from fastapi import APIRouter, FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from whatsagent import heap, metrics
from whatsagent.admission import LagGate
from whatsagent.agents.agent import as_responder
from whatsagent.agents.context import Responder
from whatsagent.agents.memory import MEMORY_TASK, MemoryCapture
from whatsagent.channels.base import Channel
from whatsagent.console import console_routes
from whatsagent.conversations import WAKE_TASK, conversation_key
from whatsagent.errors import ConfigurationError, StoreUnavailable
from whatsagent.events import EVERYTHING, Bus, PostgresRelay
from whatsagent.fence import Holder, holder_for
from whatsagent.handoff import Desk, HandingResponder, Handoff
from whatsagent.health import public_sending, store_state
from whatsagent.http_limits import BodyCap
from whatsagent.inbox import WINDOW_TASK, Inbox
from whatsagent.interrupts import Interrupts
from whatsagent.lanes import Lanes
from whatsagent.lifecycle import RetentionPolicy, retention_loop
from whatsagent.media.store import FileMediaStore, MediaStore
from whatsagent.messages import Event
from whatsagent.operator_api import operator_routes
from whatsagent.pacing import Pacing
from whatsagent.privacy import install_private_logs, protect_sqlite, redacted
from whatsagent.queue import Handler, WorkQueue
from whatsagent.roles import Role, resolve_role, start_work, work_queue
from whatsagent.sender import Sender, SendPolicy
from whatsagent.serving import server_options
from whatsagent.store import sqlite_file
from whatsagent.store.database import Database, open_database
from whatsagent.tracing import TracedResponder, TraceExport
from whatsagent.turn_thread import CrossingQueue, TurnThread, notifier, on_turn_loop
from whatsagent.turns import TurnPolicy, TurnRunner
from whatsagent.window import WindowPolicy

if TYPE_CHECKING:
    from whatsagent.front.link import Ingest
    from whatsagent.front.supervisor import Front, FrontProcess
    from whatsagent.queue.procrastinate import WorkerPolicy

log = logging.getLogger(__name__)

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
    `api_token`: bearer token of the operator API (``/memories/{agent}/{user}``, ``DELETE /users/{user}``;
    or ``WHATSAGENT_API_TOKEN``).
    `retention`: delete what users sent and what was answered after so many days (`RetentionPolicy`).
    `admission_lag`: start a new turn only while the event loop runs callbacks within this many seconds,
    so acknowledgements never queue behind agent work (`whatsagent.admission`); None turns it off.
    `handoff`: how conversations get to a person (`Handoff`: trigger words, the user's message, a
    notification URL); operators take over through the operator API and the console (``/console``).
    `console`: serve the console at ``/console`` (default: whenever an operator token is set).
    `turn_details`: record each turn's model and tool calls with timing (a pydantic-ai capability,
    `whatsagent.tracing`); `trace_export`: also send them over OTLP as pydantic-ai's OpenTelemetry spans
    (off by default).
    `turn_thread`: run turns (work queue, lanes, sender, the operator API) on an event loop of their own in
    a second thread, so webhook acknowledgements and ``/health`` never wait behind agent work
    (`whatsagent.turn_thread`; SQLite only). Default: ``WHATSAGENT_TURN_THREAD=1`` turns it on for SQLite.
    `gc_thresholds`: once ready, freeze what start-up loaded and collect garbage less often
    (`whatsagent.heap`: about a fifth less CPU per turn with pydantic-ai); ``"auto"`` reads
    ``WHATSAGENT_GC_THRESHOLDS``, else ``(20000, 50, 100)``; None leaves Python's collector alone.
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
        retention: RetentionPolicy | None = None,
        admission_lag: float | None = None,
        handoff: Handoff | None = None,
        console: bool | None = None,
        turn_details: bool = True,
        trace_export: TraceExport | None = None,
        turn_thread: bool | None = None,
        gc_thresholds: tuple[int, int, int] | Literal["auto"] | None = "auto",
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
        self.responders: dict[str, Responder] = {
            c.name: as_responder(c.agent, unsupported_reply=c.unsupported_reply) for c in self.channels
        }
        self.db: Database | None = None
        self.holder: Holder | None = None
        self.interrupts = Interrupts()
        self.queue: WorkQueue | None = None
        self.inbox: Inbox | None = None
        self.http: aiohttp.ClientSession | None = None
        self._app: FastAPI | None = None
        self._ready = False
        self._store_failing = False
        self.retention = retention
        self._retention_task: asyncio.Task[None] | None = None
        self._warm_up_task: asyncio.Task[None] | None = None
        self._warmed = asyncio.Event()
        self._warned: set[str] = set()
        self._never_started_logged = False
        self.handoff = handoff or Handoff()
        self.console = console
        self.turn_details = turn_details
        self.console_fills_token = False
        """The demo: the console page comes with the token filled in, for browsers on this machine only."""
        self.trace_export = trace_export
        self.bus = Bus()
        self.desk: Desk | None = None
        self._operator_holder: Holder | None = None
        self._relay: PostgresRelay | None = None
        if turn_thread is None:
            turn_thread = os.environ.get("WHATSAGENT_TURN_THREAD", "").lower() in ("1", "true", "yes", "on") and (
                self.database_url.startswith("sqlite")
            )
        self.turn_thread = turn_thread
        self._turns: TurnThread | None = None
        self.gc_thresholds = heap.configured(gc_thresholds)
        self._heap = heap.Tuning()
        self._front: FrontProcess | None = None
        self._front_link: str | None = None
        """Where the front hands over the webhooks it acknowledged (`serve(front=True)`)."""
        self._ingest: Ingest | None = None

    # -- lifecycle ----------------------------------------------------------------------------------

    def validate(self) -> None:
        """Checks before serving, each failure one line naming what to fix: channel settings, the agents'
        model keys and tools, a SQLite file that cannot be created. `serve()`, `whatsagent serve` and the
        app's start-up run them (`get_app()` checks only the channels, so importing an app never fails on
        a missing model key)."""
        errors = self._channel_problems()
        for responder in {id(r): r for r in self.responders.values()}.values():
            try:
                for warning in responder.check():
                    if warning not in self._warned:
                        self._warned.add(warning)
                        log.warning("%s", warning)
            except ConfigurationError as exc:
                errors.append(str(exc))
        database_problem = sqlite_problem(self.database_url)
        if database_problem:
            errors.append(database_problem)
        if errors:
            raise ConfigurationError("\n".join(errors))

    def _channel_problems(self) -> list[str]:
        errors = []
        for channel in self.channels:
            try:
                channel.validate()
            except ConfigurationError as exc:
                errors.append(str(exc))
        return errors

    def _validate_channels(self) -> None:
        errors = self._channel_problems()
        if errors:
            raise ConfigurationError("\n".join(errors))

    async def start(self) -> None:
        await self._start_here()
        if self._front_link is not None:
            from whatsagent.front.link import Ingest

            self._ingest = Ingest(self._front_link, self.accept)
            await self._ingest.start()

    async def _start_here(self) -> None:
        if not self.turn_thread:
            await self._start()
            return
        if not self.database_url.startswith("sqlite"):
            raise ConfigurationError(
                "turn_thread=True runs on SQLite only (the embedded work queue); on PostgreSQL scale out "
                "with --role web and --role worker processes instead"
            )
        turns = self._turns = TurnThread()
        turns.start()
        try:
            await turns.run(self._start())
        except BaseException:
            self._turns = None
            self.bus.home = None
            await turns.stop()
            raise

    async def _start(self) -> None:
        """Everything but the web server, on the loop turns run on (this one, or the turn thread's)."""
        install_private_logs()
        self._warmed = asyncio.Event()  # of this start's event loop
        self.validate()
        protect_sqlite(self.database_url)
        self.db = open_database(self.database_url)
        await self.db.start()
        if self.role.runs_jobs:
            self.holder = holder_for(self.db, self.database_url)
            await self.holder.start()
        self.queue = work_queue(
            self.db,
            self.database_url,
            self.role,
            concurrency=self.concurrency,
            policy=self.worker_policy,
            holder=self.holder,
        )
        # The inbox runs on the web loop: with a turn thread, what it hands turns crosses to their loop.
        inbox_queue: WorkQueue = self.queue
        on_stored: Callable[[list[str]], None] = self.interrupts.notify
        if self._turns is not None:
            inbox_queue = CrossingQueue(self.queue, self._turns)
            on_stored = notifier(self._turns, self.interrupts.notify)
            self.bus.home = asyncio.get_running_loop()
        self.inbox = Inbox(
            self.db,
            inbox_queue,
            merge_window=self.merge_window,
            clock=self.window.clock,
            on_stored=on_stored,
        )
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
            channel.use_media_store(self.media_store)
        if self.holder is None and self.api_token:
            # A web process runs no turns, but a takeover claims the lane like one: it needs a holder.
            self._operator_holder = holder_for(self.db, self.database_url)
            await self._operator_holder.start()
        if self.db.shared and self.api_token:
            # Consoles on any process see what every process does (turns run by workers, webhooks by webs).
            self._relay = PostgresRelay(self.database_url, self.bus)
            await self._relay.start()
        self.desk = Desk(
            self.db,
            holder=lambda: self.holder or self._operator_holder,
            queue=lambda: self.queue,
            sender=lambda: self.sender,
            channels={c.name: c for c in self.channels},
            policy=self.handoff,
            http=lambda: self.http,
            bus=self.bus,
            secret=self.api_token,
            available=bool(self.api_token),
        )
        runner = TurnRunner(
            self.db,
            sender,
            {c.name: c for c in self.channels},
            {name: HandingResponder(self._traced(r), lambda: self.desk) for name, r in self.responders.items()},
            self.turn_policy,
            media_store=self.media_store,
            queue=self.queue,
            interrupts=self.interrupts,
        )
        handlers: dict[str, Handler] = {}
        recover: Callable[[], Awaitable[object]] = _nothing_to_recover
        if self.holder is not None:
            lanes = Lanes(
                self.db,
                self.queue,
                self._published(runner.run),
                runner.history_turns,
                self.holder,
                one_per_turn=self.turn_policy.on_new_message == "queue",
            )
            wake = lanes.wake if self.admission_lag is None else LagGate(self.admission_lag).wrap(lanes.wake)
            handlers = {
                WAKE_TASK: self._after_warm_up(wake),
                MEMORY_TASK: self._after_warm_up(MemoryCapture(self.db, self.responders).run),
                WINDOW_TASK: sender.on_window_closed,
            }
            recover = lanes.recover
        await start_work(self.queue, self.role, self.db, handlers, recover=recover)
        if self.retention is not None and self.role.runs_jobs:
            self._retention_task = asyncio.create_task(retention_loop(self.db, self.retention, self.media_store))
        self._ready = True
        if self.role.runs_jobs:
            if self.gc_thresholds is not None:  # no collection while the warm-up loads (`whatsagent.heap`)
                self._heap.pause()
            self._warm_up_task = asyncio.create_task(self._warm_up(), name="warm-up")
        else:
            self._tune_heap()  # a web process loads no agent: what it needs is loaded now
        heap.end_start_up()  # `whatsagent serve` paused collection while it loaded the app: this server holds it now
        log.info(
            "whatsagent (%s) serving %s on %s",
            self.role.value,
            ", ".join(f"{c.name} at {c.prefix}/webhook" for c in self.channels),
            redacted(self.database_url),
        )

    async def _warm_up(self) -> None:
        """Load pydantic-ai and the models' SDKs in a thread, once the server is ready: loaded by the
        first turn instead, on the event loop, they would hold up every webhook for a second or more."""
        try:
            await asyncio.to_thread(_warm_up, list(self.responders.values()))
        finally:
            self._tune_heap()  # after the warm-up (failed or not): pydantic-ai and the models frozen with the rest
            self._warmed.set()

    def _tune_heap(self) -> None:
        # Not once stopping: `_stop` has restored the collector, or will (on this loop, so never between).
        if self.gc_thresholds is not None and self._ready:
            self._heap.tune(self.gc_thresholds)

    def _after_warm_up(self, handler: Handler) -> Handler:
        """`handler`, run once the warm-up is over (at once after that): turns wait for it rather than
        import the same modules on the event loop."""

        async def run(args: dict[str, Any]) -> None:
            if not self._warmed.is_set():
                await self._warmed.wait()
            await handler(args)

        return run

    async def stop(self) -> None:
        self._ready = False  # from now on a warm-up that ends tunes nothing (`_tune_heap`)
        if self._front is not None:
            # First, while this process still stores: the front stops taking webhooks and hands over
            # what it spooled.
            await asyncio.to_thread(self._front.stop)
        if self._ingest is not None:
            await self._ingest.stop()
            self._ingest = None
        if self.inbox is not None:
            await self.inbox.drain()  # on the web loop, where webhooks made them
        turns = self._turns
        if turns is None:
            await self._stop()
            return
        try:
            await turns.run(self._stop())
        finally:
            self._turns = None
            self.bus.home = None
            await turns.stop()

    async def _stop(self) -> None:
        if self._retention_task is not None:
            self._retention_task.cancel()
            self._retention_task = None
        if self.queue is not None:
            await self.queue.stop(self.shutdown_grace)
        if self.holder is not None:
            await self.holder.stop()
            self.holder = None
        if self._relay is not None:
            await self._relay.stop()
            self._relay = None
        if self._operator_holder is not None:
            await self._operator_holder.stop()
            self._operator_holder = None
        if self.http is not None:
            await self.http.close()
            self.http = None
        model_http = sys.modules.get("whatsagent.model_http")  # imported once a model was built
        if model_http is not None:
            await model_http.close_loop_pools()
        if self.db is not None:
            await self.db.close()
            self.db = None
        # On the loop the warm-up tunes it from: one cannot slip in after the other.
        self._heap.restore()

    async def accept(self, events: Sequence[Event]) -> None:
        if self.inbox is None:
            if not self._never_started_logged and self.db is None:
                self._never_started_logged = True
                log.error(
                    "a webhook arrived but whatsagent was never started: its lifespan did not run. In your own "
                    "FastAPI app use app.include_router(os.get_router()) (app.mount does not run lifespans)"
                )
            raise StoreUnavailable("whatsagent is not started")
        started = time.perf_counter()
        try:
            accepted = await self.inbox.accept(events)
        except StoreUnavailable:
            self._store_failing = True  # /health says so until a webhook is stored again
            raise
        self._store_failing = False
        for event in events:
            user = getattr(event, "user", None)
            recipient = user.key if user is not None else getattr(event, "recipient", None)
            self.bus.publish(conversation_key(event.channel, recipient) if recipient else EVERYTHING)
        metrics.webhook_store_seconds.observe(time.perf_counter() - started)
        if accepted.messages or accepted.duplicates:
            channel = events[0].channel
            if accepted.messages:
                metrics.inbound_by(channel, "stored").inc(accepted.messages)
            if accepted.duplicates:
                metrics.inbound_by(channel, "duplicate").inc(accepted.duplicates)

    def _traced(self, responder: Responder) -> Responder:
        if not self.turn_details:
            return responder
        return TracedResponder(responder, lambda: self.db, self.trace_export)

    def _published(
        self, run_turn: Callable[[Any, Any, Any], Awaitable[Any]]
    ) -> Callable[[Any, Any, Any], Awaitable[Any]]:
        """`run_turn`, telling the console when a turn starts and ends."""

        async def run(turn: Any, lease: Any, then: Any) -> Any:
            self.bus.publish(turn.conversation)
            try:
                return await run_turn(turn, lease, then)
            finally:
                self.bus.publish(turn.conversation)

        return run

    # -- ASGI ---------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Any = None) -> AsyncIterator[None]:
        """Start whatsagent for the life of an app: ``FastAPI(lifespan=os.lifespan)``, or entered inside
        a lifespan of your own (``async with os.lifespan(app):``)."""
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    def get_router(self) -> APIRouter:
        """Everything whatsagent serves, to include in a FastAPI app of your own with
        ``app.include_router(os.get_router())``; the router's lifespan starts and stops whatsagent."""
        self._validate_channels()
        router = APIRouter(lifespan=self.lifespan)
        self._add_routes(router)
        return router

    def get_app(self) -> FastAPI:
        """The ASGI app: channel webhooks, ``/health``, ``/ready``, ``/metrics`` and the operator API."""
        if self._app is not None:
            return self._app
        self._validate_channels()
        app = FastAPI(title="whatsagent", lifespan=self.lifespan, docs_url=None, redoc_url=None, openapi_url=None)
        # Operator bodies are capped here; channel webhooks read theirs within their own bounds.
        app.add_middleware(BodyCap, exempt=tuple(f"{c.prefix}/" for c in self.channels))
        self._add_routes(app.router)
        self._app = app
        return app

    def _add_routes(self, app: APIRouter) -> None:
        if self.role.receives_webhooks:
            for channel in self.channels:
                app.routes.extend(channel.routes(self.accept))

        # The operator API claims lanes and sends as turns do: with a turn thread, it runs on their loop.
        operator = operator_routes(
            db_of=lambda: self.db,
            desk_of=lambda: self.desk,
            sender_of=lambda: self.sender,
            media_of=lambda: self.media_store,
            bus=self.bus,
            token=self.api_token,
            channels=self.channels,
            agents_by_channel={c.name: self.responders[c.name].name for c in self.channels},
        )
        for route in operator:
            if isinstance(route, Route):
                route.app = on_turn_loop(route.app, lambda: self._turns)
        app.routes.extend(operator)
        app.routes.extend(console_routes(self.api_token, self.console, demo_token=self.console_fills_token))

        @app.get("/metrics", include_in_schema=False)
        async def metrics_endpoint() -> Response:
            if self.queue is not None:
                metrics.queue_depth.set(await self._queue_depth())
            return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)

        @app.get("/health", include_in_schema=False)
        async def health() -> Response:
            # A refused access token stops sending (see whatsagent.breaker): degraded, not dead — a
            # restart would not fix the token, and webhooks are still taken in and kept. A store that
            # cannot take a write (disk full, database down) is failing: webhooks get 503. Nothing
            # here says more than that: the reasons are in the logs, and /health answers anyone.
            sending = self.sender.sending_status() if self.sender is not None else {}
            public = {name: public_sending(state) for name, state in sending.items()}
            store = store_state(self.database_url, failing=self._store_failing)
            stopped = any(not s["sending"] for s in sending.values())
            status = "failing" if store != "ok" else "degraded" if stopped else "ok"
            body = {"status": status, "store": store, "sending": public}
            return JSONResponse(body, status_code=503 if status == "failing" else 200)

        @app.get("/ready", include_in_schema=False)
        async def ready(_request: Request) -> Response:
            if not self._ready or self.queue is None:
                return JSONResponse({"status": "starting"}, status_code=503)
            sending = self.sender.sending_status() if self.sender is not None else {}
            return JSONResponse({"status": "ready", "queue_depth": await self._queue_depth(), "sending": sending})

    async def _queue_depth(self) -> int:
        assert self.queue is not None
        turns = self._turns
        return await (turns.run(self.queue.depth()) if turns is not None else self.queue.depth())

    def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        reload: bool = False,
        front: bool | Front | None = None,
        **uvicorn_options: Any,
    ) -> None:
        """Serve with uvicorn (blocking), on loopback unless `host` says otherwise (``0.0.0.0`` in a
        container). Connections, header and body times are bounded (`whatsagent.serving`); any uvicorn
        option overrides. SIGTERM and Ctrl-C shut down gracefully. `reload=True` restarts the server when
        a Python file under the app's directory changes (for development).

        `front=True` (or ``WHATSAGENT_FRONT=1``; SQLite) acknowledges webhooks in a process of their own,
        so that turns keeping this one busy never delay an acknowledgement (`whatsagent.front`);
        ``whatsagent serve --front`` passes the `Front` it started while this process loaded the app."""
        import sys

        import uvicorn

        options = server_options(log_level="info", timeout_graceful_shutdown=self.shutdown_grace + 5)
        options.update(uvicorn_options)
        if front is None:
            from whatsagent.front import wanted

            front = wanted()
        try:
            self.validate()
            if front:
                self._check_front(reload)
        except ConfigurationError as exc:
            # `python myapp.py` with something missing: one line saying what, not a traceback.
            print(f"whatsagent: configuration: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        if front:
            self._serve_fronted(host, port, options, front if not isinstance(front, bool) else None)
            return
        if not reload:
            uvicorn.run(self.get_app(), host=host, port=port, **options)
            return
        target, directory = self._import_target()
        # uvicorn's reloader imports the app afresh in a child process, so it needs a name to import.
        os.environ[_RELOAD_TARGET] = target
        os.environ[_RELOAD_PATH] = directory
        options.setdefault("reload_dirs", [directory])
        uvicorn.run(f"{__name__}:app_from_environment", factory=True, host=host, port=port, reload=True, **options)

    def _check_front(self, reload: bool) -> None:
        if reload:
            raise ConfigurationError("the front and reload=True do not go together: use one or the other")
        if not self.database_url.startswith("sqlite") or self.role is not Role.ALL:
            raise ConfigurationError(
                "the front is for one machine on SQLite; on PostgreSQL run --role web processes for webhooks "
                "and --role worker processes for turns"
            )

    def _serve_fronted(self, host: str, port: int, options: dict[str, Any], front: Front | None) -> None:
        """The front on `host`:`port` (`front`, already started by ``whatsagent serve``, or started now),
        this process behind it on a private Unix socket."""
        import uvicorn

        from whatsagent.front.proxy import ClientFromFront
        from whatsagent.front.supervisor import Front

        if front is None:
            front = Front(host=host, port=port, log_level=str(options.get("log_level", "info")))
            front.start()
        front.configure(self.channels, self.database_url)
        self._front, self._front_link = front.process, front.link
        try:
            # Idle connections from the front are kept longer than the front keeps them (no request
            # is ever sent on a connection this side just closed).
            uvicorn.run(ClientFromFront(self.get_app()), uds=front.backend, **{**options, "timeout_keep_alive": 60})
        finally:
            front.stop()
            self._front = None
            self._front_link = None

    def _import_target(self) -> tuple[str, str]:
        """``module:attribute`` naming this AgentOS, and the directory to import the module from."""
        import sys

        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None)
            if not file or (name.startswith(("whatsagent", "_")) and name != "__main__"):
                continue
            attribute = next((a for a, v in list(vars(module).items()) if v is self), None)
            if attribute is None:
                continue
            directory = os.path.dirname(os.path.abspath(file))
            if name == "__main__":
                name = os.path.splitext(os.path.basename(file))[0]
            else:
                for _ in range(name.count(".")):
                    directory = os.path.dirname(directory)
                if os.path.basename(file) == "__init__.py":
                    directory = os.path.dirname(directory)
            return f"{name}:{attribute}", directory
        raise ConfigurationError("reload=True needs the AgentOS at module level (e.g. os = AgentOS(...) in myapp.py)")

    async def serve_async(self, host: str = "127.0.0.1", port: int = 8000, **uvicorn_options: Any) -> None:
        import uvicorn

        config = uvicorn.Config(self.get_app(), host=host, port=port, **server_options(**uvicorn_options))
        await uvicorn.Server(config).serve()


def _warm_up(responders: Sequence[Any]) -> None:
    """Load what the responders' first turns need (`whatsagent.agents.models.warm_up`)."""
    from whatsagent.agents.models import ResolvedModel, warm_up

    models = []
    for responder in responders:
        for agent in (responder, *getattr(responder, "members", ())):
            resolved = getattr(agent, "resolved", None)
            if isinstance(resolved, ResolvedModel):
                models.append(resolved)
    warm_up(models)


async def _nothing_to_recover() -> None:
    """A web process runs no turns, so it resumes none."""


_RELOAD_TARGET = "WHATSAGENT_RELOAD_TARGET"
_RELOAD_PATH = "WHATSAGENT_RELOAD_PATH"


def app_from_environment() -> FastAPI:
    """The app `serve(reload=True)` runs in uvicorn's reloading child: the AgentOS imported afresh."""
    import importlib
    import sys

    target, directory = os.environ[_RELOAD_TARGET], os.environ.get(_RELOAD_PATH, os.getcwd())
    if directory not in sys.path:
        sys.path.insert(0, directory)
    module_name, _, attribute = target.partition(":")
    agent_os = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(agent_os, AgentOS):
        raise ConfigurationError(f"{target} is not an AgentOS")
    return agent_os.get_app()


def sqlite_problem(database_url: str) -> str | None:
    """Why a SQLite database cannot be opened or created at all, in one line, or None. (A missing
    directory is not a problem: it is created.)"""
    if not database_url.startswith("sqlite"):
        return None
    path = sqlite_file(database_url)
    if not path or path == ":memory:":
        return f"database {database_url}: whatsagent needs a file, e.g. sqlite:///whatsagent.db"
    target = os.path.abspath(path)
    if os.path.isdir(target):
        return f"database {database_url}: {target} is a directory; name a file in it, e.g. {target}/whatsagent.db"
    existing = os.path.dirname(target)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        return f"database {database_url}: {existing} is a file, so {os.path.dirname(target)} cannot be created"
    if not os.access(existing, os.W_OK) or (os.path.exists(target) and not os.access(target, os.W_OK)):
        return f"database {database_url}: {existing} is not writable by this user"
    return None


def _media_directory(database_url: str) -> str:
    """Media files beside the SQLite file; else ``WHATSAGENT_MEDIA_DIR`` or ``./whatsagent-media``."""
    configured = os.environ.get("WHATSAGENT_MEDIA_DIR")
    if configured:
        return configured
    if database_url.startswith("sqlite") and "///" in database_url:
        return os.path.join(os.path.dirname(database_url.split("///", 1)[1]) or ".", "whatsagent-media")
    return "whatsagent-media"
