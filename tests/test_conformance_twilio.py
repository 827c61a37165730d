"""Twilio's own Python library (`twilio.rest.Client`, `RequestValidator`) against the emulator's Twilio
mode: Messages create, fetch and list, a Messaging Service instead of From, the Message resource with
the fields Twilio's library reads, Twilio's error codes, and webhooks Twilio's validator accepts.

The client is synchronous (requests); it runs in a worker thread while the emulator serves on the loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from aiohttp import web
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from whatsagent.emulator import Emulator
from whatsagent.emulator.twilio import TwilioAccount

ANA = "whatsapp:+15552223333"


class World:
    def __init__(self, emu: Emulator, account: TwilioAccount, client: Client) -> None:
        self.emu = emu
        self.account = account
        self.client = client
        self.forms: list[tuple[str, dict[str, str], str]] = []

    async def call(self, fn: Any) -> Any:
        return await asyncio.to_thread(fn)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    emu = Emulator()
    account = emu.twilio()
    await emu.start()
    holder: dict[str, World] = {}

    async def webhook(request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        holder["w"].forms.append((str(request.url), form, request.headers.get("X-Twilio-Signature", "")))
        return web.Response(text="<Response/>", content_type="text/xml")

    app = web.Application()
    app.router.add_post("/twilio", webhook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    emu.webhook_url = f"http://127.0.0.1:{runner.addresses[0][1]}/twilio"
    client = Client(account.account_sid, account.auth_token)
    # Twilio's library builds https://api.twilio.com URLs; point its REST domain at the emulator.
    client.api.base_url = emu.base_url
    world = holder["w"] = World(emu, account, client)
    await emu.user("15552223333", "Ana").send_text("hi")  # opens the 24-hour window
    try:
        yield world
    finally:
        await emu.stop()
        await runner.cleanup()


async def test_messages_create_fetch_and_list_through_twilios_client(world: World) -> None:
    sent = await world.call(lambda: world.client.messages.create(to=ANA, from_=world.account.from_number, body="hello"))
    assert sent.sid.startswith("SM") and sent.status == "queued" and sent.direction == "outbound-api"
    assert isinstance(sent.date_created, datetime) and sent.account_sid == world.account.account_sid
    assert sent.body == "hello" and sent.to == ANA and sent.from_ == world.account.from_number
    await world.emu.settle()
    fetched = await world.call(lambda: world.client.messages(sent.sid).fetch())
    assert fetched.sid == sent.sid and fetched.body == "hello"
    assert fetched.date_created == sent.date_created and fetched.price_unit == "USD"
    assert fetched.subresource_uris["media"].endswith(f"{sent.sid}/Media.json")
    listed = await world.call(lambda: world.client.messages.list(limit=20))
    assert [m.sid for m in listed][:1] == [sent.sid]  # newest first
    assert {m.direction for m in listed} == {"outbound-api", "inbound"}
    to_ana = await world.call(lambda: world.client.messages.list(to=ANA))
    assert [m.sid for m in to_ana] == [sent.sid]


async def test_a_messaging_service_sends_without_from(world: World) -> None:
    service = world.account.messaging_service_sid
    sent = await world.call(lambda: world.client.messages.create(to=ANA, messaging_service_sid=service, body="hey"))
    assert sent.messaging_service_sid == service and sent.status == "accepted"
    assert sent.from_ == world.account.from_number
    with pytest.raises(TwilioRestException) as refused:
        await world.call(lambda: world.client.messages.create(to=ANA, messaging_service_sid="MG" + "0" * 32, body="x"))
    assert refused.value.code == 21705
    with pytest.raises(TwilioRestException) as refused:
        await world.call(lambda: world.client.messages.create(to=ANA, body="x"))
    assert refused.value.code == 21603


async def test_twilios_errors_and_unknown_resources(world: World) -> None:
    with pytest.raises(TwilioRestException) as refused:
        await world.call(lambda: world.client.messages("SM" + "0" * 32).fetch())
    assert refused.value.status == 404 and refused.value.code == 20404
    with pytest.raises(TwilioRestException) as refused:
        await world.call(lambda: world.client.messages.create(to=ANA, from_=world.account.from_number, body="x" * 1601))
    assert refused.value.code == 21617
    bad = Client(world.account.account_sid, "wrong-token")
    bad.api.base_url = world.emu.base_url
    with pytest.raises(TwilioRestException) as refused:
        await world.call(lambda: bad.messages("SM" + "1" * 32).fetch())
    assert refused.value.status == 401 and refused.value.code == 20003
    calls = f"{world.emu.base_url}/2010-04-01/Accounts/{world.account.account_sid}/Calls.json"
    unknown = await world.call(lambda: world.client.request("GET", calls))
    assert unknown.status_code == 404 and json.loads(unknown.text)["code"] == 20404
    world.emu.close_window("15552223333", synchronous=True)
    with pytest.raises(TwilioRestException) as refused:
        await world.call(lambda: world.client.messages.create(to=ANA, from_=world.account.from_number, body="late"))
    assert refused.value.code == 63016


async def test_a_failed_message_shows_its_error_on_the_resource(world: World) -> None:
    world.emu.close_window("15552223333")
    sent = await world.call(lambda: world.client.messages.create(to=ANA, from_=world.account.from_number, body="late"))
    await world.emu.settle()
    fetched = await world.call(lambda: world.client.messages(sent.sid).fetch())
    assert fetched.status == "failed" and fetched.error_code == 63016 and fetched.error_message


async def test_twilios_request_validator_accepts_every_webhook_the_emulator_posts(world: World) -> None:
    ana = world.emu.user("15552223333")
    await ana.send_text("hola & ünïcode")
    await ana.send_location(1.5, 2.5, name="Home")
    await ana.send_image(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16, "image/png", caption="look")
    validator = RequestValidator(world.account.auth_token)
    assert len(world.forms) == 4
    for url, form, signature in world.forms:
        assert validator.validate(url, form, signature), form


async def test_the_account_fetched_through_twilios_client(world: World) -> None:
    account = await world.call(lambda: world.client.api.v2010.accounts(world.account.account_sid).fetch())
    assert account.sid == world.account.account_sid and account.status == "active" and account.type == "Full"
    assert isinstance(account.date_created, datetime) and account.friendly_name
    bad = Client(world.account.account_sid, "wrong-token")
    bad.api.base_url = world.emu.base_url
    with pytest.raises(TwilioRestException) as refused:
        await world.call(lambda: bad.api.v2010.accounts(world.account.account_sid).fetch())
    assert refused.value.status == 401 and refused.value.code == 20003
