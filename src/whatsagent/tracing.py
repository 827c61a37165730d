"""What happened inside a turn: the model calls and tool calls, with timing, stored with the turn.

pydantic-ai's OpenTelemetry instrumentation (`InstrumentationSettings`) is pointed at a tracer provider of
whatsagent's own; each agent run happens inside a ``turn`` span, and a span processor keeps the spans of
that trace in memory until the run ends. They are then stored in `turn_traces` (names, timing, the model,
token counts, tool names: never the messages' content), where the console and the operator API show them.

`TraceExport(otlp_endpoint=...)` also sends the spans to a tracing backend over OTLP/HTTP (off by
default; needs ``pip install whatsagent[otlp]``). Agents whose pydantic-ai instrumentation is already set
up by the application (``Agent.instrument_all(...)``, logfire) keep it, and their turns show no details.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import SpanProcessor
from sqlalchemy import Connection, bindparam, delete, insert, select

from whatsagent.agents.context import DelegatingResponder
from whatsagent.store.database import Database, Prepared
from whatsagent.store.schema import turn_traces

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

    from whatsagent.agents.context import Reply, Responder, TurnContext

log = logging.getLogger(__name__)

DETAIL_ATTRIBUTES = (
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.tool.name",
    "gen_ai.tool.call.id",
)
MAX_SPANS = 200


@dataclass(frozen=True)
class TraceExport:
    """Send turn spans to a tracing backend: `otlp_endpoint` e.g. ``http://localhost:4318/v1/traces``."""

    otlp_endpoint: str | None = None


class _Collector(SpanProcessor):
    """A span processor keeping, per watched trace, its ended spans."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._traces: dict[int, list[ReadableSpan]] = {}

    def watch(self, trace_id: int) -> None:
        with self._lock:
            self._traces[trace_id] = []

    def take(self, trace_id: int) -> list[ReadableSpan]:
        with self._lock:
            return self._traces.pop(trace_id, [])

    def on_end(self, span: ReadableSpan) -> None:
        context = span.get_span_context()
        if context is None:
            return
        with self._lock:
            found = self._traces.get(context.trace_id)
            if found is not None and len(found) < MAX_SPANS:
                found.append(span)


_provider: TracerProvider | None = None
_collector = _Collector()
_exporting: set[str] = set()


def _setup(export: TraceExport | None) -> TracerProvider | None:
    """The process's provider, with pydantic-ai instrumented through it (once; None when the application
    instrumented pydantic-ai itself)."""
    global _provider
    import pydantic_ai
    from pydantic_ai.models.instrumented import InstrumentationSettings

    if _provider is None:
        if pydantic_ai.Agent._instrument_default is not False:
            return None  # the application's own instrumentation wins
        from opentelemetry.sdk.trace import TracerProvider

        _provider = TracerProvider()
        _provider.add_span_processor(_collector)
        pydantic_ai.Agent.instrument_all(
            InstrumentationSettings(tracer_provider=_provider, include_content=False, include_binary_content=False)
        )
    if export is not None and export.otlp_endpoint and export.otlp_endpoint not in _exporting:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # type: ignore[import-not-found]
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=export.otlp_endpoint)))
        _exporting.add(export.otlp_endpoint)
    return _provider


def _flatten(spans: list[ReadableSpan], root: ReadableSpan | None) -> list[dict[str, Any]]:
    """Spans as rows: name, start and end in seconds from the turn's start, depth, and a short detail."""
    if not spans:
        return []
    by_id = {s.get_span_context().span_id: s for s in spans if s.get_span_context() is not None}  # type: ignore[union-attr]
    origin = min(s.start_time or 0 for s in spans)

    def depth(span: ReadableSpan) -> int:
        n, parent = 0, span.parent
        while parent is not None and parent.span_id in by_id and n < 20:
            n += 1
            parent = by_id[parent.span_id].parent
        return n

    rows = []
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        if span is root:
            continue
        attributes = dict(span.attributes or {})
        detail = ", ".join(f"{k.rpartition('.')[2]}={attributes[k]}" for k in DETAIL_ATTRIBUTES if k in attributes)
        rows.append(
            {
                "name": span.name,
                "start": ((span.start_time or origin) - origin) / 1e9,
                "end": ((span.end_time or span.start_time or origin) - origin) / 1e9,
                "depth": max(0, depth(span) - 1),
                "detail": detail,
                "error": span.status.description if not span.status.is_ok else None,
            }
        )
    return rows


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
    """A responder whose runs are recorded, span by span, with their turn."""

    def __init__(self, inner: Responder, db: Callable[[], Database | None], export: TraceExport | None = None) -> None:
        super().__init__(inner)
        self.db = db
        self._export = export
        self._provider: TracerProvider | None = None
        self._set_up = False  # on the first turn: pydantic-ai is not loaded before the server is ready

    async def respond(self, ctx: TurnContext) -> Reply:
        if not self._set_up:
            self._provider, self._set_up = _setup(self._export), True
        if self._provider is None or not ctx.turn_id:
            return await self.inner.respond(ctx)
        from opentelemetry import trace

        tracer = self._provider.get_tracer("whatsagent")
        root = tracer.start_span(f"turn {ctx.turn_id}", attributes={"whatsagent.agents.agent": ctx.agent})
        trace_id = root.get_span_context().trace_id
        _collector.watch(trace_id)
        try:
            with trace.use_span(root, end_on_exit=False):
                return await self.inner.respond(ctx)
        finally:
            root.end()
            await self._keep(ctx.turn_id, trace_id)

    async def _keep(self, turn_id: int, trace_id: int) -> None:
        spans = _collector.take(trace_id)
        root = next((s for s in spans if s.parent is None), None)
        db = self.db()
        if db is None or len(spans) <= (root is not None):
            return  # an agent that is not pydantic-ai's made no spans
        try:
            await db.write(_store(turn_id, _flatten(spans, root)))
        except Exception as exc:  # the details of a turn must never cost its answer
            log.warning("details of turn %d not stored: %r", turn_id, exc)
