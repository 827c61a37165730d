"""Each turn's model and tool calls are recorded with timing and shown by the operator API."""

from __future__ import annotations

import asyncio

import aiohttp

from whatsagent import Agent
from whatsagent.testing import BotHarness, scripted_model, tool_call

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


async def test_turn_spans_go_to_a_tracing_backend_over_otlp_when_asked(tmp_path):
    from aiohttp import web
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from whatsagent.testing import free_port
    from whatsagent.tracing import TraceExport

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
        assert any(name.startswith("chat ") for name in received), received
    finally:
        await runner.cleanup()
