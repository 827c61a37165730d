"""The emulator's user answers the bot's interactive messages as WhatsApp's app lets them: a flow form
submitted, a location shared on request, calls allowed or not, a product picked; from a script (the
`SimulatedUser` methods) and from the chat page (`POST /api/users/{key}/answer`)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from whatsagent.channels.cloudapi.parse import parse_webhook
from whatsagent.emulator import Emulator
from whatsagent.messages import CallPermissionReply, FlowReply, Location, Order

TOKEN = "answers-token"
PNID = "100200300"
ANA = "15551234567"


@pytest.fixture
async def emu() -> AsyncIterator[tuple[Emulator, list[bytes]]]:
    received: list[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    async with Emulator(phone_number_id=PNID, access_token=TOKEN, webhook_url=url) as emulator:
        await emulator.user(ANA, "Ana").send_text("hi")
        yield emulator, received
    await runner.cleanup()


async def bot_sends(emu: Emulator, interactive: dict[str, Any]) -> str:
    body = {"messaging_product": "whatsapp", "to": ANA, "type": "interactive", "interactive": interactive}
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http,
        http.post(f"{emu.graph_url}/{PNID}/messages", json=body) as resp,
    ):
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["messages"][0]["id"])


def last_event(received: list[bytes]) -> Any:
    [event] = parse_webhook(json.loads(received[-1]), channel="wa")
    return event


FLOW = {
    "type": "flow",
    "body": {"text": "Book a table"},
    "action": {
        "name": "flow",
        "parameters": {"flow_message_version": "3", "flow_id": "1", "flow_cta": "Book", "flow_token": "bk-7"},
    },
}
WHERE = {"type": "location_request_message", "body": {"text": "Where?"}, "action": {"name": "send_location"}}
CALLS = {
    "type": "call_permission_request",
    "body": {"text": "May we call?"},
    "action": {"name": "call_permission_request"},
}
PRODUCTS = {
    "type": "product_list",
    "header": {"type": "text", "text": "Menu"},
    "body": {"text": "Pick"},
    "action": {
        "catalog_id": "cat-1",
        "sections": [{"title": "S", "product_items": [{"product_retailer_id": "sku-1"}]}],
    },
}


async def test_the_chat_page_answers_every_kind_of_question(emu: tuple[Emulator, list[bytes]]) -> None:
    emulator, received = emu
    async with aiohttp.ClientSession(emulator.base_url) as http:

        async def answer(message_id: str, **body: Any) -> int:
            async with http.post(f"/api/users/{ANA}/answer", json={"message_id": message_id, **body}) as resp:
                return resp.status

        flow = await bot_sends(emulator, FLOW)
        assert await answer(flow, kind="flow", response={"guests": 2}) == 200
        event = last_event(received)
        assert isinstance(event, FlowReply) and event.response == {"guests": 2, "flow_token": "bk-7"}
        assert event.context is not None and event.context.reply_to == flow

        where = await bot_sends(emulator, WHERE)
        assert await answer(where, kind="location", latitude=52.5, longitude=13.4) == 200
        event = last_event(received)
        assert isinstance(event, Location) and (event.latitude, event.longitude) == (52.5, 13.4)

        calls = await bot_sends(emulator, CALLS)
        assert await answer(calls, kind="call_permission", accept=False) == 200
        event = last_event(received)
        assert isinstance(event, CallPermissionReply) and not event.accepted

        products = await bot_sends(emulator, PRODUCTS)
        assert await answer(products, kind="product", product_retailer_id="sku-9") == 400  # not offered
        assert await answer(products, kind="product", product_retailer_id="sku-1") == 200
        event = last_event(received)
        assert isinstance(event, Order) and event.catalog_id == "cat-1"
        assert [i.product_retailer_id for i in event.items] == ["sku-1"]

        assert await answer(flow, kind="location", latitude=1, longitude=2) == 400  # not a location request
        assert await answer(flow, kind="dance") == 400


async def test_a_script_answers_a_call_request_for_good(emu: tuple[Emulator, list[bytes]]) -> None:
    emulator, received = emu
    await bot_sends(emulator, CALLS)
    await emulator.user(ANA).answer_call_request(True, permanent=True)
    event = last_event(received)
    assert isinstance(event, CallPermissionReply) and event.accepted and event.permanent
    assert event.describe() == "[The user allowed the business to call them permanently]"


async def test_the_chat_page_creates_username_users(emu: tuple[Emulator, list[bytes]]) -> None:
    emulator, received = emu
    async with aiohttp.ClientSession(emulator.base_url) as http:
        async with http.post("/api/users", json={"name": "Dee", "username": "@dee"}) as resp:
            dee = await resp.json()
        assert dee["wa_id"] is None and dee["username"] == "dee" and dee["user_id"].startswith("US.")
        body = {"name": "Cy", "wa_id": "5511987654321", "username": "cy", "withhold_number": True}
        async with http.post("/api/users", json=body) as resp:
            cy = await resp.json()
        assert cy["wa_id"] == "5511987654321" and cy["number_withheld"] is True
        async with http.post(f"/api/users/{cy['key']}/messages", json={"type": "text", "text": "hi"}) as resp:
            assert resp.status == 200
    value = json.loads(received[-1])["entry"][0]["changes"][0]["value"]
    assert "from" not in value["messages"][0] and value["messages"][0]["from_user_id"] == cy["user_id"]
    assert value["contacts"] == [{"profile": {"name": "Cy", "username": "cy"}, "user_id": cy["user_id"]}]
