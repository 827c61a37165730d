"""What happened inside a turn: the model calls and tool calls, with timing, stored with the turn.

`TracedResponder` opens a `TurnRecorder` for each turn, in a context variable (so concurrent turns never
mix); `whatsagent.turn_details.TurnDetails`, a pydantic-ai capability every pydantic-ai run of the turn
is given (`whatsagent.agents.agent`), adds a row per agent run, model request and tool call. When the
turn ends the rows are stored in `turn_traces` (names, timing, the model, token counts, tool names:
never the messages' content), where the console and the operator API show them. It costs a few
dictionaries per turn: no OpenTelemetry is involved.

`TraceExport(otlp_endpoint=...)` also sends the turn as OpenTelemetry spans (pydantic-ai's GenAI
instrumentation, under a ``turn`` span) to a tracing backend over OTLP/HTTP (off by default; needs
``pip install whatsagent[otlp]``); that instrumentation costs a few milliseconds of CPU per turn. When
the application set up pydantic-ai's instrumentation itself (``Agent.instrument_all(...)``, logfire) it
is left as it is, and its turns still get their details.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, delete, insert, select

from whatsagent.agents.context import DelegatingResponder
from whatsagent.store.database import Database, Prepared
from whatsagent.store.schema import turn_traces

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from whatsagent.agents.context import Reply, Responder, TurnContext

log = logging.getLogger(__name__)

MAX_SPANS = 200
"""Rows kept per turn (a runaway tool loop records its first ones)."""


class TurnRecorder:
    """The rows of one turn, in the order their steps started: `origin` is the turn's start
    (`time.perf_counter`), rows are dictionaries with name, start, end (seconds from the origin), depth,
    detail and error."""

    __slots__ = ("origin", "rows")

    def __init__(self) -> None:
        self.origin = time.perf_counter()
        self.rows: list[dict[str, Any]] = []


RECORDER: ContextVar[TurnRecorder | None] = ContextVar("whatsagent_turn_recorder", default=None)
"""The recorder of the turn this code runs for, or None outside a recorded turn."""


@dataclass(frozen=True)
class TraceExport:
    """Send turn spans to a tracing backend: `otlp_endpoint` e.g. ``http://localhost:4318/v1/traces``."""

    otlp_endpoint: str | None = None


_provider: TracerProvider | None = None
_exporting: set[str] = set()


def _setup_export(export: TraceExport | None) -> TracerProvider | None:
    """The process's tracer provider exporting to `export`'s endpoint, with pydantic-ai instrumented
    through it (once); None without an endpoint, or when the application instrumented pydantic-ai
    itself (its instrumentation is left alone)."""
    global _provider
    if export is None or not export.otlp_endpoint:
        return None
    import pydantic_ai
    from pydantic_ai.models.instrumented import InstrumentationSettings

    if _provider is None:
        if pydantic_ai.Agent._instrument_default is not False:
            log.warning(
                "trace_export ignored: pydantic-ai's instrumentation was set up by the application "
                "(Agent.instrument_all, logfire), which keeps sending its own spans"
            )
            return None
        from opentelemetry.sdk.trace import TracerProvider

        _provider = TracerProvider()
        pydantic_ai.Agent.instrument_all(
            InstrumentationSettings(tracer_provider=_provider, include_content=False, include_binary_content=False)
        )
    if export.otlp_endpoint not in _exporting:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # type: ignore[import-not-found]
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=export.otlp_endpoint)))
        _exporting.add(export.otlp_endpoint)
    return _provider


_DELETE = Prepared(delete(turn_traces).where(turn_traces.c.turn_id == bindparam("turn")))
_INSERT = Prepared(
    insert(turn_traces).values(turn_id=bindparam("turn"), spans=bindparam("spans"), created_at=bindparam("now"))
)


def _store(turn_id: int, rows: list[dict[str, Any]]) -> Callable[[Connection], None]:
    def op(conn: Connection) -> None:
        _DELETE.all(conn, turn=turn_id)  # a turn run again keeps its last run's details
        _INSERT.all(conn, turn=turn_id, spans=json.dumps(rows), now=time.time())

    return op


def spans_of(raw: str | None) -> list[dict[str, Any]]:
    return json.loads(raw) if raw else []


def spans_by_turn(conn: Connection, turn_ids: Collection[int]) -> dict[int, list[dict[str, Any]]]:
    """The stored spans of these turns (a turn without details is missing)."""
    if not turn_ids:
        return {}
    rows = conn.execute(select(turn_traces.c.turn_id, turn_traces.c.spans).where(turn_traces.c.turn_id.in_(turn_ids)))
    return {turn_id: spans_of(raw) for turn_id, raw in rows}


def erase(conn: Connection, turn_ids: Collection[int]) -> int:
    """Delete the details of these turns (`whatsagent.lifecycle`)."""
    if not turn_ids:
        return 0
    return int(conn.execute(delete(turn_traces).where(turn_traces.c.turn_id.in_(turn_ids))).rowcount)


class TracedResponder(DelegatingResponder):
    """A responder whose runs are recorded, step by step, with their turn."""

    def __init__(self, inner: Responder, db: Callable[[], Database | None], export: TraceExport | None = None) -> None:
        super().__init__(inner)
        self.db = db
        self._export = export
        self._provider: TracerProvider | None = None
        self._set_up = False  # on the first turn: pydantic-ai is not loaded before the server is ready

    async def respond(self, ctx: TurnContext) -> Reply:
        if not self._set_up:
            self._provider, self._set_up = _setup_export(self._export), True
        if not ctx.turn_id:
            return await self.inner.respond(ctx)
        recorder = TurnRecorder()
        token = RECORDER.set(recorder)
        try:
            if self._provider is None:
                return await self.inner.respond(ctx)
            return await self._exported(ctx, self._provider)
        finally:
            RECORDER.reset(token)
            await self._keep(ctx.turn_id, recorder)

    async def _exported(self, ctx: TurnContext, provider: TracerProvider) -> Reply:
        """The turn under a ``turn`` span, so the backend groups its pydantic-ai spans."""
        from opentelemetry import trace

        root = provider.get_tracer("whatsagent").start_span(
            f"turn {ctx.turn_id}", attributes={"whatsagent.agents.agent": ctx.agent}
        )
        try:
            with trace.use_span(root, end_on_exit=False):
                return await self.inner.respond(ctx)
        finally:
            root.end()

    async def _keep(self, turn_id: int, recorder: TurnRecorder) -> None:
        db = self.db()
        if db is None or not recorder.rows:
            return  # an agent that is not pydantic-ai's recorded nothing
        end = time.perf_counter() - recorder.origin
        for row in recorder.rows:
            if row["end"] is None:  # a step still running when the turn ended (a task it left behind)
                row["end"] = end
            row["start"], row["end"] = round(row["start"], 6), round(row["end"], 6)
        try:
            await db.write(_store(turn_id, recorder.rows))
        except Exception as exc:  # the details of a turn must never cost its answer
            log.warning("details of turn %d not stored: %r", turn_id, exc)
