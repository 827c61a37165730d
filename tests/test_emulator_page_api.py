"""The chat page's JSON API, which scripts can drive too, and `run_emulator` for the CLI."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from whatsagent.emulator import Emulator, run_emulator


@pytest.fixture
async def webhooks() -> AsyncIterator[tuple[str, list[dict[str, object]]]]:
    received: list[dict[str, object]] = []

    async def handle(request: web.Request) -> web.Response:
        received.append(json.loads(await request.read()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook", received
    await runner.cleanup()


async def test_the_page_api_creates_users_sends_and_switches_faults(
    webhooks: tuple[str, list[dict[str, object]]],
) -> None:
    url, received = webhooks
    async with Emulator(webhook_url=url) as emu, aiohttp.ClientSession(emu.base_url) as http:
        async with http.get("/") as resp:
            assert resp.status == 200 and "WhatsApp emulator" in await resp.text()
        for name in ("app.js", "style.css", "favicon.svg"):
            async with http.get(f"/static/{name}") as resp:
                assert resp.status == 200
        async with http.post("/api/users", json={"name": "Ana", "wa_id": "+1 5551234567"}) as resp:
            assert (await resp.json())["key"] == "15551234567"
        async with http.post("/api/users/15551234567/messages", json={"type": "text", "text": "hi"}) as resp:
            sent = await resp.json()
        assert sent["status"] == 200
        form = aiohttp.FormData()
        form.add_field("kind", "image")
        form.add_field("caption", "look")
        form.add_field("file", b"\x89PNG\r\n\x1a\n", filename="a.png", content_type="image/png")
        async with http.post("/api/users/15551234567/messages", data=form) as resp:
            assert (await resp.json())["status"] == 200
        kinds = [m["type"] for b in received for e in b["entry"] for c in e["changes"] for m in c["value"]["messages"]]  # type: ignore[index, union-attr, attr-defined]
        assert kinds == ["text", "image"]
        media_id = emu.user("15551234567").sent[1].message["image"]["id"]
        async with http.get(f"/api/media/{media_id}") as resp:
            assert resp.status == 200 and resp.content_type == "image/png"

        body = {"probability": 1, "errors": [[429, 130429]], "duration": 30}
        async with http.post("/api/faults/fail_sends", json=body) as resp:
            assert (await resp.json())["fail_sends"]["errors"] == [[429, 130429]]
        async with http.post("/api/faults/explode", json={}) as resp:
            assert resp.status == 400
        async with http.post("/api/faults/clear", json={}) as resp:
            assert (await resp.json())["fail_sends"] is None
        async with http.post("/api/redeliver", json={"message_id": sent["message_id"]}) as resp:
            assert (await resp.json())["status"] == 200
        assert len(received) == 3
        async with http.post("/api/users/15551234567/window", json={"open": False}) as resp:
            assert (await resp.json())["window_open"] is False
        async with http.post("/api/statuses", json={"until": "sent"}) as resp:
            assert (await resp.json())["until"] == "sent"
        async with http.get("/api/state") as resp:
            state = await resp.json()
        assert [u["key"] for u in state["users"]] == ["15551234567"]
        assert state["conversations"]["15551234567"][0]["id"] == sent["message_id"]


async def test_live_events_reach_an_open_page(webhooks: tuple[str, list[dict[str, object]]]) -> None:
    url, _ = webhooks
    async with Emulator(webhook_url=url) as emu, aiohttp.ClientSession(emu.base_url) as http:
        async with http.get("/api/events") as events:
            assert (await events.content.readline()).startswith(b"event: hello")
            await events.content.readline()
            await events.content.readline()
            await emu.user("15551234567", name="Ana").send_text("hi")
            seen = []
            while len(seen) < 4:
                line = await asyncio.wait_for(events.content.readline(), 5)
                if line.startswith(b"data: "):
                    seen.append(json.loads(line[6:])["event"])
            assert seen == ["user", "user", "message", "delivery"]  # created, window opened, message, delivered


async def test_run_emulator_serves_until_cancelled() -> None:
    loop = asyncio.get_running_loop()
    started: asyncio.Future[Emulator] = loop.create_future()
    task = asyncio.create_task(run_emulator("127.0.0.1", 0, webhook_url=None, started=started))
    emu = await asyncio.wait_for(started, 5)
    async with aiohttp.ClientSession() as http, http.get(f"{emu.graph_url}/{emu.phone_number_id}") as resp:
        assert resp.status == 401  # the Graph API is up and wants the token
    assert emu.statuses.until == "read"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
