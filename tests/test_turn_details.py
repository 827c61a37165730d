"""Each turn's model and tool calls are recorded with timing and shown by the operator API."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pydantic_ai
import pytest
from pydantic_ai.exceptions import ModelRetry
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from sqlalchemy import select

from whatsagent import Agent, TurnContext, tracing
from whatsagent.agents.agent import as_responder
from whatsagent.agents.teams import Team
from whatsagent.messages import Text, User
from whatsagent.store.database import Database, SQLiteDatabase
from whatsagent.store.schema import turn_traces
from whatsagent.testing import BotHarness, scripted_model, tool_call
from whatsagent.tracing import TracedResponder, TraceExport, spans_by_turn, spans_of
from whatsagent.turn_details import run_capabilities

TOKEN = "operator-secret"


async def test_a_turn_records_its_model_calls_and_tool_calls_with_timing(tmp_path):
    def opening_hours(day: str) -> str:
        """Opening hours on a day."""
        return f"{day}: 9-17"

    agent = Agent(
        model=scripted_model(tool_call("opening_hours", day="monday"), "We open at 9."), tools=[opening_hours]
    )
    async with BotHarness(agent, tmp_path, api_token=TOKEN) as bot:
        ana = bot.user("15551234567", name="Ana")
        await ana.send_text("when do you open on monday?")
        await ana.wait_for_replies(1)
        await bot.idle()
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            async with http.get(bot.url + "/operator/conversations") as resp:
                [conversation] = (await resp.json())["conversations"]
            async with http.get(bot.url + f"/operator/conversations/{conversation['id']}") as resp:
                view = await resp.json()
    [turn] = view["turns"]
    names = [s["name"] for s in turn["spans"]]
    model_calls = [s for s in turn["spans"] if s["name"].startswith("chat ")]
    tools = [s for s in turn["spans"] if "opening_hours" in s["name"] or "opening_hours" in s["detail"]]
    assert len(model_calls) == 2, names  # asked for the tool, then answered
    assert tools, names
    for span in turn["spans"]:
        assert 0 <= span["start"] <= span["end"]
    assert "when do you open" not in str(turn["spans"])  # timing and names, never the content


async def test_turn_spans_go_to_a_tracing_backend_over_otlp_when_asked(tmp_path, monkeypatch):
    from aiohttp import web
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from whatsagent.testing import free_port

    # The export instruments pydantic-ai process-wide: undone after this test, for the tests after it.
    monkeypatch.setattr(pydantic_ai.Agent, "_instrument_default", pydantic_ai.Agent._instrument_default)
    monkeypatch.setattr(tracing, "_provider", None)
    monkeypatch.setattr(tracing, "_exporting", set())
    received: list[str] = []
    arrived = asyncio.Event()

    async def collect(request: web.Request) -> web.Response:
        batch = ExportTraceServiceRequest.FromString(await request.read())
        for resource in batch.resource_spans:
            for scope in resource.scope_spans:
                received.extend(span.name for span in scope.spans)
        if any(name.startswith("chat ") for name in received):
            arrived.set()
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", collect)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        agent = Agent(model=scripted_model("We open at 9."))
        export = TraceExport(otlp_endpoint=f"http://127.0.0.1:{port}/v1/traces")
        async with BotHarness(agent, tmp_path, trace_export=export) as bot:
            ana = bot.user("15551234567", name="Ana")
            await ana.send_text("when do you open?")
            await ana.wait_for_replies(1)
            await asyncio.wait_for(arrived.wait(), 120)  # the exporter sends in batches, every few seconds
            await bot.idle()
            assert bot.os is not None and bot.os.db is not None
            [(raw,)] = await bot.os.db.read(lambda conn: conn.execute(select(turn_traces.c.spans)).all())
        assert any(name.startswith("chat ") for name in received), received
        assert any(name.startswith("invoke_agent ") for name in received), received
        # The turn's own details are stored as without the export.
        assert [s["name"] for s in spans_of(raw)] == ["invoke_agent Assistant", "chat scripted"]
    finally:
        await runner.cleanup()


# The rows of one turn, recorded by `TracedResponder` around any responder and stored in a database.


def _turn(turn_id: int, text: str = "when do you open?") -> TurnContext:
    user = User(wa_id="15551234567", name="Ana")
    return TurnContext(
        conversation="c",
        channel="whatsapp",
        user=user,
        messages=[Text(id=f"wamid.{turn_id}", channel="whatsapp", account="1", user=user, body=text)],
        turn_id=turn_id,
        agent="Assistant",
    )


@pytest.fixture
async def db(tmp_path) -> AsyncIterator[Database]:
    database = SQLiteDatabase(tmp_path / "details.db")
    await database.start()
    try:
        yield database
    finally:
        await database.close()


async def _details(db: Database, agent: Any, *turns: TurnContext, **options: Any) -> dict[int, list[dict[str, Any]]]:
    """Each turn answered (concurrently) by `agent` with its details recorded; the rows stored per turn.
    A turn that fails still stores its details."""
    responder = TracedResponder(as_responder(agent), lambda: db, **options)
    await asyncio.gather(*(responder.respond(t) for t in turns), return_exceptions=True)
    return await db.read(lambda conn: spans_by_turn(conn, [t.turn_id for t in turns]))


def opening_hours(day: str) -> str:
    """Opening hours on a day."""
    return f"{day}: 9-17"


def _shape(rows: list[dict[str, Any]]) -> list[tuple[int, str, str | None]]:
    """Depth, name and error of each row, ids left out."""
    return [(r["depth"], r["name"], r["error"]) for r in rows]


async def test_a_tool_call_turn_has_a_row_per_run_model_request_and_tool_call_in_order(db):
    agent = Agent(
        model=scripted_model(tool_call("opening_hours", day="monday"), "We open at 9."), tools=[opening_hours]
    )
    rows = (await _details(db, agent, _turn(1)))[1]
    assert _shape(rows) == [
        (0, "invoke_agent Assistant", None),
        (1, "chat scripted", None),
        (1, "execute_tool opening_hours", None),
        (1, "chat scripted", None),
    ]
    run, ask, tool, answer = rows
    for request in (ask, answer):
        assert re.fullmatch(
            r"request\.model=scripted, response\.model=scripted, input_tokens=\d+, output_tokens=\d+", request["detail"]
        ), request
    assert re.fullmatch(r"tool\.name=opening_hours, call\.id=\S+", tool["detail"]), tool
    for row in rows:
        assert 0 <= row["start"] <= row["end"] <= run["end"]
    assert ask["end"] <= tool["start"] and tool["end"] <= answer["start"]
    assert "monday" not in str(rows) and "when do you open" not in str(rows)  # names and timing, never content


async def test_concurrent_turns_each_keep_only_their_own_rows(db):
    both_asking = asyncio.Event()
    asking = 0

    async def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        nonlocal asking
        last = messages[-1].parts[-1]
        if isinstance(last, ToolReturnPart):
            return ModelResponse(parts=[TextPart("done")])
        asking += 1
        if asking == 2:
            both_asking.set()
        await both_asking.wait()  # both turns are inside their model request at once
        text = str(last.content)  # type: ignore[union-attr]
        return ModelResponse(parts=[ToolCallPart("ana_tool" if "ana" in text else "bo_tool", {})])

    def ana_tool() -> str:
        """For Ana."""
        return "ok"

    def bo_tool() -> str:
        """For Bo."""
        return "ok"

    agent = Agent(model=FunctionModel(model, model_name="shared"), tools=[ana_tool, bo_tool])
    found = await _details(db, agent, _turn(1, "ana here"), _turn(2, "bo here"))
    assert both_asking.is_set()
    for turn_id, own, other in ((1, "ana_tool", "bo_tool"), (2, "bo_tool", "ana_tool")):
        assert _shape(found[turn_id]) == [
            (0, "invoke_agent Assistant", None),
            (1, "chat shared", None),
            (1, f"execute_tool {own}", None),
            (1, "chat shared", None),
        ]
        assert other not in str(found[turn_id])


async def test_a_failing_tool_and_a_tool_asking_for_a_retry_show_in_their_rows(db):
    def broken(day: str) -> str:
        """Broken."""
        raise RuntimeError("the calendar is down")

    def picky(day: str) -> str:
        """Picky."""
        raise ModelRetry("say the day in English")

    failing = Agent(model=scripted_model(tool_call("broken", day="monday"), "unreachable"), tools=[broken])
    retrying = Agent(model=scripted_model(tool_call("picky", day="lunes"), "We open at 9."), tools=[picky])
    found = await _details(db, failing, _turn(1))
    found.update(await _details(db, retrying, _turn(2)))
    assert _shape(found[1]) == [
        (0, "invoke_agent Assistant", "RuntimeError: the calendar is down"),  # the turn failed: its rows are kept
        (1, "chat scripted", None),
        (1, "execute_tool broken", "RuntimeError: the calendar is down"),
    ]
    assert _shape(found[2]) == [
        (0, "invoke_agent Assistant", None),
        (1, "chat scripted", None),
        (1, "execute_tool picky", "retry: say the day in English"),
        (1, "chat scripted", None),
    ]


async def test_a_tool_call_the_model_got_wrong_has_an_error_row_without_its_arguments(db):
    agent = Agent(
        model=scripted_model(tool_call("opening_hours", weekday="secret-value"), "We open at 9."), tools=[opening_hours]
    )
    rows = (await _details(db, agent, _turn(1)))[1]
    assert _shape(rows) == [
        (0, "invoke_agent Assistant", None),
        (1, "chat scripted", None),
        (1, "execute_tool opening_hours", "invalid arguments: 2 validation errors"),
        (1, "chat scripted", None),
    ]
    assert "secret-value" not in str(rows)


async def test_a_failing_model_request_shows_its_error(db):
    def down(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        raise RuntimeError("model down")

    rows = (await _details(db, Agent(model=scripted_model(down)), _turn(1)))[1]
    assert _shape(rows) == [
        (0, "invoke_agent Assistant", "RuntimeError: model down"),
        (1, "chat scripted", "RuntimeError: model down"),
    ]
    assert rows[1]["detail"] == "request.model=scripted"


async def test_a_team_members_run_nests_under_the_tool_that_asked_it(db):
    billing = Agent(name="Billing", model=scripted_model("Refunded."), description="refunds")
    team = Team(
        name="Desk", model=scripted_model(tool_call("ask_billing", task="refund order 7"), "Done."), members=[billing]
    )
    rows = (await _details(db, team, _turn(1)))[1]
    assert _shape(rows) == [
        (0, "invoke_agent Desk", None),
        (1, "chat scripted", None),
        (1, "execute_tool ask_billing", None),
        (2, "invoke_agent Billing", None),
        (3, "chat scripted", None),
        (1, "chat scripted", None),
    ]
    assert "refund order" not in str(rows)


async def test_a_users_own_pydantic_ai_agent_gets_details_too(db):
    agent = pydantic_ai.Agent(
        scripted_model(tool_call("opening_hours", day="monday"), "We open at 9."), name="mine", tools=[opening_hours]
    )
    rows = (await _details(db, agent, _turn(1)))[1]
    assert [r["name"] for r in rows] == [
        "invoke_agent mine",
        "chat scripted",
        "execute_tool opening_hours",
        "chat scripted",
    ]


async def test_an_agent_that_is_not_pydantic_ais_stores_no_details(db):
    async def plain(ctx: TurnContext) -> str:
        return "hello"

    assert await _details(db, plain, _turn(1)) == {}


async def test_the_applications_own_instrumentation_is_left_alone_and_turns_still_get_details(db, monkeypatch, caplog):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from pydantic_ai.models.instrumented import InstrumentationSettings

    theirs = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(theirs))
    settings = InstrumentationSettings(tracer_provider=provider)
    monkeypatch.setattr(pydantic_ai.Agent, "_instrument_default", settings)
    monkeypatch.setattr(tracing, "_provider", None)  # whatsagent has not instrumented pydantic-ai in this process

    agent = Agent(
        model=scripted_model(tool_call("opening_hours", day="monday"), "We open at 9."), tools=[opening_hours]
    )
    export = TraceExport(otlp_endpoint="http://127.0.0.1:9/v1/traces")  # asked for, but theirs wins
    rows = (await _details(db, agent, _turn(1), export=export))[1]

    assert pydantic_ai.Agent._instrument_default is settings
    assert tracing._provider is None
    assert "trace_export ignored" in caplog.text
    spans = [s.name for s in theirs.get_finished_spans()]
    assert "execute_tool opening_hours" in spans and "chat scripted" in spans, spans  # their spans, as before
    assert [r["name"] for r in rows] == [
        "invoke_agent Assistant",
        "chat scripted",
        "execute_tool opening_hours",
        "chat scripted",
    ]


async def test_details_off_records_nothing(tmp_path):
    agent = Agent(model=scripted_model("We open at 9."))
    async with BotHarness(agent, tmp_path, api_token=TOKEN, turn_details=False) as bot:
        ana = bot.user("15551234567", name="Ana")
        await ana.send_text("when do you open?")
        await ana.wait_for_replies(1)
        await bot.idle()
        assert bot.os is not None and bot.os.db is not None
        stored = await bot.os.db.read(lambda conn: conn.execute(select(turn_traces)).all())
    assert stored == []
    assert run_capabilities() is None  # outside a recorded turn, a run is given nothing
