"""The emulator speaks Meta's Cloud API: the stories a bot developer relies on when testing locally.

A tiny aiohttp receiver stands in for the bot's webhook endpoint (it checks signatures itself, with
`hmac`); a plain aiohttp client stands in for the bot's Graph API client.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from whatsagent.emulator import Emulator, StatusPolicy, Template

SECRET = "test-secret"
TOKEN = "test-token"
PNID = "100200300"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
OGG = b"OggS" + b"\x00" * 64
PDF = b"%PDF-1.4\n" + b"\x00" * 64


@dataclass
class Receiver:
    """The bot's webhook endpoint: records every POST, answers `status` (403 on a bad signature)."""

    url: str = ""
    posts: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    status: int = 200
    statuses: list[int] = field(default_factory=list)
    """Answers to give next, in order, before falling back to `status`."""
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw, _ in self.posts]

    def messages(self) -> list[dict[str, Any]]:
        return [
            m for b in self.bodies for e in b["entry"] for c in e["changes"] for m in c["value"].get("messages", [])
        ]

    def status_items(self) -> list[dict[str, Any]]:
        return [
            s for b in self.bodies for e in b["entry"] for c in e["changes"] for s in c["value"].get("statuses", [])
        ]

    async def wait(self, predicate: Any, timeout: float = 5.0) -> None:
        async def until() -> None:
            while not predicate():
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(until(), timeout)


def signed_ok(raw: bytes, header: str | None) -> bool:
    expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    return header is not None and hmac.compare_digest(expected, header)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()

    async def handle(request: web.Request) -> web.Response:
        raw = await request.read()
        rec.posts.append((raw, dict(request.headers)))
        rec.arrived.set()
        if not signed_ok(raw, request.headers.get("X-Hub-Signature-256")):
            return web.Response(status=403, text="bad signature")
        status = rec.statuses.pop(0) if rec.statuses else rec.status
        return web.Response(status=status, text="ok" if status == 200 else "try again")

    app = web.Application()
    app.router.add_post("/whatsapp/webhook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.url = f"http://127.0.0.1:{runner.addresses[0][1]}/whatsapp/webhook"
    yield rec
    await runner.cleanup()


@pytest.fixture
async def emu(receiver: Receiver) -> AsyncIterator[Emulator]:
    emulator = Emulator(
        phone_number_id=PNID,
        access_token=TOKEN,
        app_secret=SECRET,
        webhook_url=None,
        display_phone_number="15550001111",
        api_version="v25.0",
        webhook_retry_delay=0.05,
    )
    await emulator.start(host="127.0.0.1", port=0)
    emulator.webhook_url = receiver.url
    yield emulator
    await emulator.stop()


@dataclass
class Bot:
    """The bot's side of the Graph API, as raw HTTP."""

    http: aiohttp.ClientSession
    base: str

    async def call(
        self, method: str, path: str, body: Any = None, *, token: str | None = TOKEN, data: Any = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        kwargs: dict[str, Any] = {"headers": headers}
        if data is not None:
            kwargs["data"] = data
        elif isinstance(body, bytes):
            kwargs["data"] = body
            headers["Content-Type"] = "application/json"
        elif body is not None:
            kwargs["json"] = body
        async with self.http.request(method, self.base + path, **kwargs) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text

    async def send(self, body: dict[str, Any], **kwargs: Any) -> tuple[int, Any]:
        return await self.call("POST", f"/v25.0/{PNID}/messages", {"messaging_product": "whatsapp", **body}, **kwargs)

    async def upload(self, data: bytes, mime: str, filename: str = "file") -> tuple[int, Any]:
        form = aiohttp.FormData()
        form.add_field("messaging_product", "whatsapp")
        form.add_field("type", mime)
        form.add_field("file", data, filename=filename, content_type=mime)
        return await self.call("POST", f"/v25.0/{PNID}/media", data=form)


@pytest.fixture
async def bot(emu: Emulator) -> AsyncIterator[Bot]:
    async with aiohttp.ClientSession() as http:
        yield Bot(http, emu.base_url)


def assert_meta_error(body: Any, code: int) -> None:
    error = body["error"]
    assert error["code"] == code, body
    assert error["type"] in ("OAuthException", "GraphMethodException")
    assert error["message"].startswith(f"(#{code})") or code in (100, 190)
    assert re.fullmatch(r"A[A-Za-z0-9_-]{22}", error["fbtrace_id"])
    if error["type"] == "OAuthException" and code != 190:
        assert error["error_data"]["messaging_product"] == "whatsapp"
        assert isinstance(error["error_data"]["details"], str) and error["error_data"]["details"]


# -- webhooks ---------------------------------------------------------------------------------------


async def test_a_user_message_arrives_signed_in_metas_envelope(emu: Emulator, receiver: Receiver) -> None:
    ana = emu.user("15551234567", name="Ana")
    delivery = await ana.send_text("héllo, see https://example.com")

    assert delivery.status == 200 and delivery.body == "ok"
    [(raw, headers)] = receiver.posts
    assert signed_ok(raw, headers["X-Hub-Signature-256"])
    assert headers["Content-Type"] == "application/json"
    # Meta's bodies escape non-ASCII and slashes: only the raw bytes verify.
    assert b"h\\u00e9llo" in raw and b"https:\\/\\/example.com" in raw
    body = json.loads(raw)
    assert body["object"] == "whatsapp_business_account"
    [entry] = body["entry"]
    assert entry["id"] == emu.waba_id
    [change] = entry["changes"]
    assert change["field"] == "messages"
    value = change["value"]
    assert value["messaging_product"] == "whatsapp"
    assert value["metadata"] == {"display_phone_number": "15550001111", "phone_number_id": PNID}
    # Since April 2026 every user has a business-scoped user id (BSUID) in message webhooks.
    assert re.fullmatch(r"US\.\d{19}", ana.user_id or "")
    assert value["contacts"] == [{"profile": {"name": "Ana"}, "wa_id": "15551234567", "user_id": ana.user_id}]
    [message] = value["messages"]
    assert message["from"] == "15551234567"
    assert message["id"] == delivery.message_id and message["id"].startswith("wamid.HBg")
    assert re.fullmatch(r"\d{10}", message["timestamp"])
    assert message["type"] == "text" and message["text"] == {"body": "héllo, see https://example.com"}


async def test_a_username_only_user_is_known_by_bsuid(emu: Emulator, receiver: Receiver) -> None:
    bo = emu.user(user_id="US.1234", name="Bo")
    await bo.send_text("hey")
    value = receiver.bodies[0]["entry"][0]["changes"][0]["value"]
    assert value["contacts"] == [{"profile": {"name": "Bo"}, "user_id": "US.1234"}]
    [message] = value["messages"]
    assert "from" not in message and message["from_user_id"] == "US.1234"


async def test_every_user_message_kind_has_metas_shape(emu: Emulator, receiver: Receiver) -> None:
    ana = emu.user("15551234567", name="Ana")
    await ana.send_image(PNG, mime_type="image/png", caption="look")
    await ana.send_audio(OGG, voice=True)
    await ana.send_video(b"\x00\x00\x00\x18ftypmp42", caption="clip")
    await ana.send_document(PDF, filename="a.pdf", caption="doc")
    await ana.send_sticker(b"RIFF\x00\x00\x00\x00WEBP")
    await ana.send_location(37.48, -122.15, name="Shop", address="1 Main St")
    await ana.send_contacts([("Bo Li", "+1 555 000 9999")])
    first = ana.sent[0].message_id
    await ana.react(first, "👍")
    await ana.unreact(first)
    await ana.reply("about that", to=first)
    await ana.send_text("fwd", forwarded=True)
    await ana.send_unsupported("poll_creation")

    m = receiver.messages()
    assert [x["type"] for x in m] == [
        "image", "audio", "video", "document", "sticker", "location", "contacts",
        "reaction", "reaction", "text", "text", "unsupported",
    ]  # fmt: skip
    image = m[0]["image"]
    assert image["caption"] == "look" and image["mime_type"] == "image/png" and image["id"].isdigit()
    assert image["sha256"] == emu.media.get(image["id"]).sha256_b64  # type: ignore[union-attr]
    assert m[1]["audio"]["voice"] is True and m[1]["audio"]["mime_type"] == "audio/ogg; codecs=opus"
    assert m[3]["document"]["filename"] == "a.pdf"
    assert m[4]["sticker"]["animated"] is False
    assert m[5]["location"] == {
        "latitude": 37.48,
        "longitude": -122.15,
        "name": "Shop",
        "address": "1 Main St",
    }
    assert m[6]["contacts"][0]["name"]["formatted_name"] == "Bo Li"
    assert m[6]["contacts"][0]["phones"][0]["wa_id"] == "15550009999"
    assert m[7]["reaction"] == {"message_id": first, "emoji": "👍"}
    assert m[8]["reaction"] == {"message_id": first, "emoji": ""}
    assert m[9]["context"] == {"from": "15551234567", "id": first}
    assert m[10]["context"] == {"forwarded": True}
    assert m[11]["unsupported"] == {"type": "poll_creation"} and m[11]["errors"][0]["code"] == 131051


async def test_post_webhook_gives_raw_control_for_bad_input_tests(emu: Emulator, receiver: Receiver) -> None:
    body = {"object": "whatsapp_business_account", "entry": []}
    assert await emu.post_webhook(body) == (200, "ok")
    assert (await emu.post_webhook(body, sign=False))[0] == 403
    assert (await emu.post_webhook(b"{not json", sign="sha256=00"))[0] == 403
    assert (await emu.post_webhook(b'{"object":"whatsapp_business_account","entry":[]}'))[0] == 200
    assert "X-Hub-Signature-256" not in receiver.posts[1][1]
    assert receiver.posts[2][1]["X-Hub-Signature-256"] == "sha256=00"


async def test_the_reference_signature_vector_holds() -> None:
    from whatsagent.emulator.webhooks import signature

    raw = b'{"object":"whatsapp_business_account","entry":[]}'
    assert signature(raw, "test_app_secret") == (
        "sha256=dec6a680679a968e7e0319355b23599cbfc54502c0784668e9618baa0c633756"
    )


async def test_a_redelivered_message_comes_byte_identical_or_rebatched(emu: Emulator, receiver: Receiver) -> None:
    ana = emu.user("15551234567", name="Ana")
    bo = emu.user("15559876543", name="Bo")
    first = await ana.send_text("one")
    second = await bo.send_text("two")
    again = await emu.redeliver(first.message_id)  # type: ignore[arg-type]
    assert again.status == 200
    assert receiver.posts[2][0] == receiver.posts[0][0]
    await emu.redeliver(first.message_id, batch_with=[second.message_id])  # type: ignore[arg-type]
    value = receiver.bodies[3]["entry"][0]["changes"][0]["value"]
    assert [m["id"] for m in value["messages"]] == [second.message_id, first.message_id]
    assert {c["wa_id"] for c in value["contacts"]} == {"15551234567", "15559876543"}
    assert emu.inbound[first.message_id].deliveries == [200, 200, 200]  # type: ignore[index]


async def test_a_webhook_not_acknowledged_is_retried(emu: Emulator, receiver: Receiver) -> None:
    receiver.statuses = [503, 500]
    ana = emu.user("15551234567")
    delivery = await ana.send_text("hi")
    assert delivery.status == 503
    await emu.settle()
    assert emu.inbound[delivery.message_id].deliveries == [503, 500, 200]  # type: ignore[index]
    assert len({raw for raw, _ in receiver.posts}) == 1


async def test_duplicate_and_out_of_order_delivery_faults(emu: Emulator, receiver: Receiver) -> None:
    ana = emu.user("15551234567")
    emu.faults.duplicate_webhooks(1.0)
    d = await ana.send_text("twice")
    assert [m["id"] for m in receiver.messages()] == [d.message_id, d.message_id]
    emu.faults.clear().reorder_webhooks(window=3, hold=1.0)
    sent = await asyncio.gather(ana.send_text("a"), ana.send_text("b"), ana.send_text("c"))
    arrived = [m["text"]["body"] for m in receiver.messages()[2:]]
    assert arrived == ["c", "b", "a"]
    assert all(s.status == 200 for s in sent)


# -- sends ------------------------------------------------------------------------------------------

TO = {"to": "15551234567"}

VALID_SENDS: list[tuple[str, dict[str, Any], str | None]] = [
    ("text", {"type": "text", "text": {"body": "hi *there*", "preview_url": False}}, "hi *there*"),
    ("text without type", {"text": {"body": "defaults to text"}}, "defaults to text"),
    (
        "image by link",
        {"type": "image", "image": {"link": "https://cdn.example.com/a.png", "caption": "c"}},
        "c",
    ),
    (
        "audio by link",
        {"type": "audio", "audio": {"link": "https://cdn.example.com/a.ogg", "voice": True}},
        None,
    ),
    ("video by link", {"type": "video", "video": {"link": "https://cdn.example.com/v.mp4"}}, None),
    (
        "document",
        {
            "type": "document",
            "document": {"link": "https://x.example/a.pdf", "filename": "a.pdf", "caption": "d"},
        },
        "d",
    ),
    ("sticker", {"type": "sticker", "sticker": {"link": "https://x.example/s.webp"}}, None),
    (
        "location",
        {"type": "location", "location": {"latitude": 1.5, "longitude": 2.5, "name": "Here"}},
        "Here",
    ),
    (
        "contacts",
        {
            "type": "contacts",
            "contacts": [{"name": {"formatted_name": "Bo"}, "phones": [{"phone": "+1555"}]}],
        },
        None,
    ),
    (
        "buttons",
        {
            "type": "interactive",
            "interactive": {
                "type": "button",
                "header": {"type": "text", "text": "Hdr"},
                "body": {"text": "Pick"},
                "footer": {"text": "Ftr"},
                "action": {
                    "buttons": [
                        {"type": "reply", "reply": {"id": "yes", "title": "Yes"}},
                        {"type": "reply", "reply": {"id": "no", "title": "No"}},
                    ]
                },
            },
        },
        "Pick",
    ),
    (
        "list",
        {
            "type": "interactive",
            "interactive": {
                "type": "list",
                "body": {"text": "Choose"},
                "action": {
                    "button": "Options",
                    "sections": [{"title": "Fast", "rows": [{"id": "exp", "title": "Express", "description": "1d"}]}],
                },
            },
        },
        "Choose",
    ),
    (
        "cta_url",
        {
            "type": "interactive",
            "interactive": {
                "type": "cta_url",
                "body": {"text": "Open"},
                "action": {
                    "name": "cta_url",
                    "parameters": {"display_text": "Go", "url": "https://example.com"},
                },
            },
        },
        "Open",
    ),
    (
        "template",
        {
            "type": "template",
            "template": {
                "name": "order_update",
                "language": {"code": "en_US"},
                "components": [
                    {
                        "type": "body",
                        "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "#42"}],
                    }
                ],
            },
        },
        "Hi Ana, your order #42 has shipped.",
    ),
    (
        "named template",
        {
            "type": "template",
            "template": {
                "name": "reply_waiting",
                "language": {"code": "en_US"},
                "components": [
                    {
                        "type": "body",
                        "parameters": [{"type": "text", "parameter_name": "first_name", "text": "Ana"}],
                    }
                ],
            },
        },
        "Hi Ana, you have a reply waiting. Tap below to read it.",
    ),
    ("with context", {"text": {"body": "quoted"}, "context": {"message_id": "wamid.X"}}, "quoted"),
    ("with callback data", {"text": {"body": "cb"}, "biz_opaque_callback_data": "order-42"}, "cb"),
]


@pytest.mark.parametrize(("body", "text"), [(b, t) for _, b, t in VALID_SENDS], ids=[n for n, _, _ in VALID_SENDS])
async def test_every_outbound_kind_is_accepted(emu: Emulator, bot: Bot, body: dict[str, Any], text: str | None) -> None:
    ana = emu.user("15551234567", name="Ana")
    await ana.send_text("hi")  # opens the 24-hour window
    status, response = await bot.send({**TO, **body})
    assert status == 200, response
    assert response["messaging_product"] == "whatsapp"
    assert response["contacts"] == [{"input": "15551234567", "wa_id": "15551234567"}]
    [message] = response["messages"]
    assert message["id"].startswith("wamid.")
    [reply] = await ana.wait_for_replies(1, timeout=2)
    assert reply.message_id == message["id"]
    assert reply.type == body.get("type", "text")
    assert reply.text == text
    assert reply.body["messaging_product"] == "whatsapp"


async def test_reactions_and_media_by_id_are_accepted(emu: Emulator, bot: Bot) -> None:
    ana = emu.user("15551234567")
    d = await ana.send_text("hi")
    status, uploaded = await bot.upload(PNG, "image/png", "a.png")
    assert status == 200
    status, _ = await bot.send({**TO, "type": "image", "image": {"id": uploaded["id"]}})
    assert status == 200
    status, _ = await bot.send({**TO, "type": "reaction", "reaction": {"message_id": d.message_id, "emoji": "❤️"}})
    assert status == 200
    assert emu.inbound[d.message_id].reaction == "❤️"  # type: ignore[index]
    [image, reaction] = await ana.wait_for_replies(2)
    assert image.media == {"id": uploaded["id"]} and reaction.type == "reaction"


async def test_a_send_to_a_bsuid_uses_recipient(emu: Emulator, bot: Bot) -> None:
    bo = emu.user(user_id="US.1234", name="Bo")
    await bo.send_text("hi")
    status, response = await bot.send({"recipient": "US.1234", "type": "text", "text": {"body": "hello Bo"}})
    assert status == 200
    assert response["contacts"] == [{"input": "US.1234", "user_id": "US.1234"}]
    assert (await bo.wait_for_replies(1))[0].text == "hello Bo"


def _interactive(kind: str, action: dict[str, Any], body: str = "B") -> dict[str, Any]:
    return {"type": "interactive", "interactive": {"type": kind, "body": {"text": body}, "action": action}}


def _buttons(*titles: str, ids: list[str] | None = None) -> dict[str, Any]:
    ids = ids or [f"b{i}" for i in range(len(titles))]
    return _interactive(
        "button",
        {"buttons": [{"type": "reply", "reply": {"id": i, "title": t}} for i, t in zip(ids, titles, strict=True)]},
    )


def _rows(n: int, sections: int = 1) -> dict[str, Any]:
    per = n // sections
    secs = [
        {"title": f"S{s}", "rows": [{"id": f"r{s}-{i}", "title": f"Row {i}"} for i in range(per)]}
        for s in range(sections)
    ]
    return _interactive("list", {"button": "Options", "sections": secs})


W = {"messaging_product": "whatsapp", **TO}

MALFORMED: list[tuple[str, Any, int]] = [
    ("no messaging_product", {"to": "15551234567", "text": {"body": "x"}}, 100),
    ("wrong messaging_product", {"messaging_product": "sms", "to": "1555", "text": {"body": "x"}}, 100),
    ("no recipient", {"messaging_product": "whatsapp", "text": {"body": "x"}}, 100),
    ("unknown type", {**W, "type": "poll", "poll": {}}, 100),
    ("type without its object", {**W, "type": "image"}, 100),
    ("empty text", {**W, "type": "text", "text": {"body": ""}}, 100),
    ("text too long", {**W, "type": "text", "text": {"body": "x" * 4097}}, 100),
    ("media without id or link", {**W, "type": "image", "image": {"caption": "c"}}, 100),
    ("media with id and link", {**W, "type": "image", "image": {"id": "1", "link": "https://a.b/c"}}, 100),
    (
        "caption too long",
        {**W, "type": "image", "image": {"link": "https://a.b/c", "caption": "x" * 1025}},
        100,
    ),
    ("caption on audio", {**W, "type": "audio", "audio": {"link": "https://a.b/c", "caption": "no"}}, 100),
    ("link not a URL", {**W, "type": "video", "video": {"link": "not a url"}}, 100),
    ("latitude out of range", {**W, "type": "location", "location": {"latitude": 91, "longitude": 0}}, 100),
    ("contacts without a name", {**W, "type": "contacts", "contacts": [{"phones": []}]}, 100),
    ("four buttons", {**W, **_buttons("a", "b", "c", "d")}, 131009),
    ("button title too long", {**W, **_buttons("x" * 21)}, 131009),
    ("duplicate button ids", {**W, **_buttons("a", "b", ids=["same", "same"])}, 131009),
    ("no buttons", {**W, **_interactive("button", {"buttons": []})}, 131008),
    (
        "interactive without body",
        {**W, "type": "interactive", "interactive": {"type": "button", "action": {}}},
        131008,
    ),
    ("eleven rows", {**W, **_rows(11)}, 131009),
    ("twelve rows over two sections", {**W, **_rows(12, sections=2)}, 131009),
    (
        "cta without url",
        {**W, **_interactive("cta_url", {"name": "cta_url", "parameters": {"display_text": "Go"}})},
        131008,
    ),
    ("reaction without message id", {**W, "type": "reaction", "reaction": {"emoji": "👍"}}, 100),
    ("callback data too long", {**W, "text": {"body": "x"}, "biz_opaque_callback_data": "x" * 513}, 100),
    ("context without message id", {**W, "text": {"body": "x"}, "context": {}}, 100),
    ("read without message id", {"messaging_product": "whatsapp", "status": "read"}, 100),
    (
        "typing of another kind",
        {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": "wamid.X",
            "typing_indicator": {"type": "audio"},
        },
        100,
    ),
    ("not an object", [1, 2], 100),
    (
        "unknown template",
        {**W, "type": "template", "template": {"name": "nope", "language": {"code": "en_US"}}},
        132001,
    ),
    (
        "template in an unknown language",
        {**W, "type": "template", "template": {"name": "hello_world", "language": {"code": "fr"}}},
        132001,
    ),
    (
        "template parameter count",
        {
            **W,
            "type": "template",
            "template": {
                "name": "order_update",
                "language": {"code": "en_US"},
                "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}],
            },
        },
        132000,
    ),
]


@pytest.mark.parametrize(("body", "code"), [(b, c) for _, b, c in MALFORMED], ids=[n for n, _, _ in MALFORMED])
async def test_malformed_sends_are_refused_with_metas_error_shape(
    emu: Emulator, bot: Bot, body: Any, code: int
) -> None:
    ana = emu.user("15551234567")
    await ana.send_text("hi")
    status, response = await bot.call("POST", f"/v25.0/{PNID}/messages", body)
    assert status == (404 if code == 132001 else 400), response
    assert_meta_error(response, code)
    assert ana.replies == []


async def test_a_bad_token_an_unknown_number_and_broken_json_are_refused(emu: Emulator, bot: Bot) -> None:
    status, body = await bot.send({**TO, "text": {"body": "x"}}, token="wrong")
    assert status == 401 and body["error"]["code"] == 190 and body["error"]["type"] == "OAuthException"
    status, body = await bot.send({**TO, "text": {"body": "x"}}, token=None)
    assert status == 401 and body["error"]["code"] == 190
    status, body = await bot.call("POST", "/v25.0/999/messages", {"messaging_product": "whatsapp", **TO})
    assert status == 400 and body["error"]["code"] == 100 and body["error"]["error_subcode"] == 33
    status, body = await bot.call("POST", f"/v25.0/{PNID}/messages", b"{broken")
    assert status == 400
    assert_meta_error(body, 100)
    assert [r.status for r in emu.requests] == [401, 401, 400, 400]


async def test_mark_read_and_typing_are_recorded(emu: Emulator, bot: Bot) -> None:
    ana = emu.user("15551234567")
    d = await ana.send_text("hi")
    status, body = await bot.send({"status": "read", "message_id": d.message_id})
    assert (status, body) == (200, {"success": True})
    status, body = await bot.send({"status": "read", "message_id": d.message_id, "typing_indicator": {"type": "text"}})
    assert (status, body) == (200, {"success": True})
    assert ana.read == [d.message_id, d.message_id] and ana.typing == [d.message_id]
    assert [r.json.get("typing_indicator") for r in emu.requests] == [None, {"type": "text"}]
    assert emu.requests[0].path == f"/v25.0/{PNID}/messages" and emu.requests[0].method == "POST"
    emu.requests.clear()
    status, body = await bot.send({"status": "read", "message_id": "wamid.unknown"})
    assert status == 400 and body["error"]["code"] == 100


# -- media ------------------------------------------------------------------------------------------


async def test_media_upload_download_expiry_and_delete(emu: Emulator, bot: Bot) -> None:
    status, uploaded = await bot.upload(PNG, "image/png", "a.png")
    assert status == 200 and uploaded["id"].isdigit()
    status, info = await bot.call("GET", f"/v25.0/{uploaded['id']}")
    assert status == 200
    assert info["mime_type"] == "image/png" and info["file_size"] == len(PNG)
    assert info["sha256"] == hashlib.sha256(PNG).hexdigest() and info["messaging_product"] == "whatsapp"
    assert info["url"].startswith(emu.base_url + "/whatsapp_business/attachments/")
    async with aiohttp.ClientSession() as http:
        async with http.get(info["url"], headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
            assert resp.status == 200 and await resp.read() == PNG
            assert resp.headers["Content-Type"] == "image/png"
        async with http.get(info["url"]) as resp:
            assert resp.status == 401
        emu.media.expire_urls()
        async with http.get(info["url"], headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
            assert resp.status == 404
    status, body = await bot.call("DELETE", f"/v25.0/{uploaded['id']}")
    assert (status, body) == (200, {"success": True})
    status, body = await bot.call("GET", f"/v25.0/{uploaded['id']}")
    assert status == 400 and body["error"]["code"] == 100


async def test_media_urls_expire_after_their_lifetime(receiver: Receiver) -> None:
    async with Emulator(app_secret=SECRET, media_url_ttl=0.2) as emu, aiohttp.ClientSession() as http:
        item = emu.media.put(PNG, "image/png")
        url = emu.media.issue_url(item, emu.base_url)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with http.get(url, headers=auth) as resp:
            assert resp.status == 200
        await asyncio.sleep(0.3)
        async with http.get(url, headers=auth) as resp:
            assert resp.status == 404


async def test_what_a_user_sends_can_be_downloaded_by_the_bot(emu: Emulator, bot: Bot, receiver: Receiver) -> None:
    ana = emu.user("15551234567")
    await ana.send_audio(OGG, voice=True)
    media_id = receiver.messages()[0]["audio"]["id"]
    status, info = await bot.call("GET", f"/v25.0/{media_id}?phone_number_id={PNID}")
    assert status == 200 and info["mime_type"] == "audio/ogg; codecs=opus"
    async with bot.http.get(info["url"], headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
        assert await resp.read() == OGG


async def test_uploads_outside_whatsapps_types_and_sizes_are_refused(emu: Emulator, bot: Bot) -> None:
    status, body = await bot.upload(b"GIF89a", "image/gif")
    assert status == 400
    assert_meta_error(body, 131053)
    status, body = await bot.upload(b"\x00" * (5 * 1024 * 1024 + 1), "image/jpeg")
    assert status == 400 and body["error"]["code"] == 131053
    form = aiohttp.FormData()
    form.add_field("file", PNG, filename="a.png", content_type="image/png")
    status, body = await bot.call("POST", f"/v25.0/{PNID}/media", data=form)
    assert status == 400 and body["error"]["code"] == 100


async def test_sending_a_missing_media_id_fails_in_a_status_webhook(
    emu: Emulator, bot: Bot, receiver: Receiver
) -> None:
    ana = emu.user("15551234567")
    await ana.send_text("hi")
    status, response = await bot.send({**TO, "type": "image", "image": {"id": "1234"}})
    assert status == 200
    await receiver.wait(lambda: receiver.status_items())
    [failed] = receiver.status_items()
    assert failed["id"] == response["messages"][0]["id"] and failed["status"] == "failed"
    assert failed["errors"][0]["code"] == 131053


# -- templates and taps -----------------------------------------------------------------------------


async def test_the_template_listing_shows_the_approved_templates(emu: Emulator, bot: Bot) -> None:
    emu.templates.add(Template(name="custom", body="Hi {{1}}", language="es"))
    for node in (emu.waba_id, PNID):
        status, body = await bot.call("GET", f"/v25.0/{node}/message_templates")
        assert status == 200
        names = {(t["name"], t["language"]) for t in body["data"]}
        assert {("hello_world", "en_US"), ("order_update", "en_US"), ("custom", "es")} <= names
        assert all(t["status"] == "APPROVED" and t["components"] for t in body["data"])


async def test_tapping_a_reply_button_sends_a_button_reply_with_context(
    emu: Emulator, bot: Bot, receiver: Receiver
) -> None:
    ana = emu.user("15551234567")
    await ana.send_text("hi")
    _, response = await bot.send({**TO, **_buttons("Yes", "No", ids=["yes", "no"])})
    await ana.wait_for_replies(1)
    delivery = await ana.tap("Yes")
    assert delivery.status == 200
    tap = receiver.messages()[-1]
    assert tap["type"] == "interactive"
    assert tap["interactive"] == {"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes"}}
    assert tap["context"] == {"from": "15550001111", "id": response["messages"][0]["id"]}
    await ana.tap("no")  # by id too
    assert receiver.messages()[-1]["interactive"]["button_reply"]["title"] == "No"
    with pytest.raises(LookupError, match="'Yes', 'No'"):
        await ana.tap("Maybe")


async def test_tapping_a_list_row_and_a_template_button(emu: Emulator, bot: Bot, receiver: Receiver) -> None:
    ana = emu.user("15551234567")
    await ana.send_text("hi")
    await bot.send({**TO, **_rows(2)})
    await ana.wait_for_replies(1)
    await ana.tap("Row 1")
    assert receiver.messages()[-1]["interactive"] == {
        "type": "list_reply",
        "list_reply": {"id": "r0-1", "title": "Row 1"},
    }
    template = {
        "name": "welcome_back",
        "language": {"code": "en_US"},
        "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "Ana"}]},
            {
                "type": "button",
                "sub_type": "quick_reply",
                "index": 0,
                "parameters": [{"type": "payload", "payload": "GO"}],
            },
        ],
    }
    _, response = await bot.send({**TO, "type": "template", "template": template})
    await ana.wait_for_replies(2)
    await ana.tap("Yes, continue")
    tap = receiver.messages()[-1]
    assert tap["type"] == "button" and tap["button"] == {"payload": "GO", "text": "Yes, continue"}
    assert tap["context"]["id"] == response["messages"][0]["id"]
    await ana.tap("No, thanks")
    assert receiver.messages()[-1]["button"] == {"payload": "No, thanks", "text": "No, thanks"}


# -- faults -----------------------------------------------------------------------------------------


async def test_failed_sends_are_not_delivered(emu: Emulator, bot: Bot) -> None:
    ana = emu.user("15551234567")
    await ana.send_text("hi")
    emu.faults.fail_next(2, http_status=400, code=131056)
    for _ in range(2):
        status, body = await bot.send({**TO, "text": {"body": "x"}})
        assert status == 400
        assert_meta_error(body, 131056)
    status, _ = await bot.send({**TO, "text": {"body": "third time"}})
    assert status == 200
    assert [r.text for r in ana.replies] == ["third time"]


async def test_a_share_of_sends_fails_with_seeded_errors(emu: Emulator, bot: Bot) -> None:
    ana = emu.user("15551234567")
    await ana.send_text("hi")
    emu.faults.fail_sends(probability=0.5, errors=[(429, 130429), (500, 131000)], seed=7)
    results = [await bot.send({**TO, "text": {"body": str(i)}}) for i in range(40)]
    statuses = [s for s, _ in results]
    assert {429, 500, 200} == set(statuses)
    assert all(b["error"]["code"] == {429: 130429, 500: 131000}[s] for s, b in results if s != 200)
    assert [r.text for r in ana.replies] == [b["messages"] and str(i) for i, (s, b) in enumerate(results) if s == 200]
    # Mark-read is spared by default, and clear() heals everything.
    d = ana.sent[0].message_id
    assert [(await bot.send({"status": "read", "message_id": d}))[0] for _ in range(5)] == [200] * 5
    emu.faults.clear()
    assert [(await bot.send({**TO, "text": {"body": "ok"}}))[0] for _ in range(5)] == [200] * 5


async def test_failures_can_last_for_a_while(emu: Emulator, bot: Bot) -> None:
    await emu.user("15551234567").send_text("hi")
    emu.faults.fail_sends(1.0, errors=[(503, 131016)], duration=0.2)
    assert (await bot.send({**TO, "text": {"body": "x"}}))[0] == 503
    await asyncio.sleep(0.25)
    assert (await bot.send({**TO, "text": {"body": "x"}}))[0] == 200


async def test_latency_slows_every_answer(emu: Emulator, bot: Bot) -> None:
    await emu.user("15551234567").send_text("hi")
    emu.faults.latency(0.2)
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert (await bot.send({**TO, "text": {"body": "x"}}))[0] == 200
    assert loop.time() - start >= 0.19


# -- the 24-hour window -----------------------------------------------------------------------------


async def test_outside_the_window_free_form_fails_and_templates_go(emu: Emulator, bot: Bot, receiver: Receiver) -> None:
    ana = emu.user("15551234567")
    await ana.send_text("hi")
    emu.close_window(ana)
    status, response = await bot.send({**TO, "text": {"body": "late"}, "biz_opaque_callback_data": "k1"})
    assert status == 200  # accepted, as Meta does ...
    await receiver.wait(lambda: receiver.status_items())
    [failed] = receiver.status_items()  # ... then failed, even with success statuses off
    assert failed["status"] == "failed" and failed["id"] == response["messages"][0]["id"]
    assert failed["errors"][0]["code"] == 131047 and failed["errors"][0]["title"] == "Re-engagement message"
    assert failed["biz_opaque_callback_data"] == "k1" and failed["recipient_id"] == "15551234567"
    assert ana.replies[0].status == "failed"
    template = {"name": "hello_world", "language": {"code": "en_US"}}
    status, response = await bot.send({**TO, "type": "template", "template": template})
    assert status == 200 and response["messages"][0]["message_status"] == "accepted"
    assert ana.replies[1].status == "sent"
    emu.close_window(ana, synchronous=True)
    status, body = await bot.send({**TO, "text": {"body": "late"}})
    assert status == 400
    assert_meta_error(body, 131047)
    await ana.send_text("back")  # a user message opens a new window
    assert (await bot.send({**TO, "text": {"body": "welcome back"}}))[0] == 200


async def test_a_user_who_never_wrote_has_no_window(emu: Emulator, bot: Bot, receiver: Receiver) -> None:
    status, _ = await bot.send({"to": "15557654321", "text": {"body": "cold"}})
    assert status == 200
    await receiver.wait(lambda: receiver.status_items())
    assert receiver.status_items()[0]["errors"][0]["code"] == 131047


# -- statuses ---------------------------------------------------------------------------------------


async def test_statuses_go_sent_delivered_read_signed(emu: Emulator, bot: Bot, receiver: Receiver) -> None:
    emu.statuses = True
    ana = emu.user("15551234567")
    d = await ana.send_text("hi")
    _, response = await bot.send({**TO, "text": {"body": "x"}, "biz_opaque_callback_data": "order-42"})
    wamid = response["messages"][0]["id"]
    await receiver.wait(lambda: len(receiver.status_items()) == 3)
    items = receiver.status_items()
    assert [s["status"] for s in items] == ["sent", "delivered", "read"]
    assert all(s["id"] == wamid and s["biz_opaque_callback_data"] == "order-42" for s in items)
    assert all(re.fullmatch(r"\d{10}", s["timestamp"]) and s["recipient_id"] == "15551234567" for s in items)
    assert items[0]["pricing"]["category"] == "service" and "pricing" not in items[2]
    for raw, headers in receiver.posts[1:]:
        assert signed_ok(raw, headers["X-Hub-Signature-256"])
        value = json.loads(raw)["entry"][0]["changes"][0]["value"]
        assert "messages" not in value
        [contact] = value["contacts"]
        assert contact["wa_id"] == "15551234567" and contact["user_id"] == ana.user_id
    assert all(s["recipient_user_id"] == ana.user_id for s in items)
    assert ana.replies[0].status == "read"
    # A reaction only ever gets `sent`.
    await bot.send({**TO, "type": "reaction", "reaction": {"message_id": d.message_id, "emoji": "👍"}})
    await emu.settle()
    assert [s["status"] for s in receiver.status_items()[3:]] == ["sent"]


async def test_statuses_can_stop_early_arrive_out_of_order_or_be_dropped(
    emu: Emulator, bot: Bot, receiver: Receiver
) -> None:
    ana = emu.user("15551234567")
    await ana.send_text("hi")
    emu.statuses = "sent"
    await bot.send({**TO, "text": {"body": "1"}})
    await emu.settle()
    assert [s["status"] for s in receiver.status_items()] == ["sent"]
    emu.statuses = StatusPolicy(out_of_order=True, delay=0)
    await bot.send({**TO, "text": {"body": "2"}})
    await emu.settle()
    assert [s["status"] for s in receiver.status_items()[1:]] == ["read", "delivered", "sent"]
    emu.statuses = True
    emu.faults.drop_statuses(1.0)
    await bot.send({**TO, "text": {"body": "3"}})
    await emu.settle()
    assert len(receiver.status_items()) == 4 and ana.replies[-1].status == "read"
    emu.statuses = False
    emu.faults.clear()
    await bot.send({**TO, "text": {"body": "4"}})
    await emu.settle()
    assert len(receiver.status_items()) == 4 and ana.replies[-1].status == "sent"


# -- the project's own parser -----------------------------------------------------------------------


async def test_every_webhook_the_emulator_emits_parses_into_the_right_neutral_message(
    emu: Emulator, bot: Bot, receiver: Receiver
) -> None:
    parse = pytest.importorskip("whatsagent.channels.cloudapi.parse")
    from whatsagent import messages as m

    emu.statuses = True
    ana = emu.user("15551234567", name="Ana")
    bo = emu.user(user_id="US.1234", name="Bo")
    text = await ana.send_text("hi")
    await ana.send_image(PNG, mime_type="image/png", caption="look")
    await ana.send_audio(OGG, voice=True)
    await ana.send_video(b"\x00\x00\x00\x18ftypmp42")
    await ana.send_document(PDF, filename="a.pdf")
    await ana.send_sticker(b"RIFF\x00\x00\x00\x00WEBP")
    await ana.send_location(1.5, 2.5, name="Here")
    await ana.send_contacts([("Bo Li", "+15550009999")])
    await ana.react(text.message_id, "👍")  # type: ignore[arg-type]
    await ana.unreact(text.message_id, omit_emoji=True)  # type: ignore[arg-type]
    await ana.reply("quoted", to=text.message_id)  # type: ignore[arg-type]
    await bot.send({**TO, **_buttons("Yes", "No", ids=["yes", "no"])})
    await bot.send({**TO, **_rows(2)})
    await ana.wait_for_replies(2)
    await ana.tap("Yes", on=ana.replies[0].message_id)
    await ana.tap("Row 0")
    params = [{"type": "text", "text": "Ana"}, {"type": "text", "text": "#1"}]
    template = {
        "name": "order_update",
        "language": {"code": "en_US"},
        "components": [{"type": "body", "parameters": params}],
    }
    await bot.send({**TO, "type": "template", "template": template})
    await ana.wait_for_replies(3)
    await ana.tap("Stop updates")
    await ana.send_unsupported("poll_update")
    await bo.send_text("from a username")
    await emu.settle()

    events = [e for raw, _ in receiver.posts for e in parse.parse_webhook(json.loads(raw), channel="wa")]
    inbound = [e for e in events if not isinstance(e, m.StatusUpdate)]
    assert [type(e) for e in inbound] == [
        m.Text, m.Image, m.Audio, m.Video, m.Document, m.Sticker, m.Location, m.Contacts, m.Reaction,
        m.Reaction, m.Text, m.ButtonReply, m.ListReply, m.TemplateButton, m.Unsupported, m.Text,
    ]  # fmt: skip
    assert all(e.account == PNID and e.channel == "wa" for e in inbound)
    first = inbound[0]
    assert isinstance(first, m.Text) and first.body == "hi" and first.id == text.message_id
    assert first.user == m.User(wa_id="15551234567", user_id=emu.user("15551234567").user_id, name="Ana")
    image = inbound[1]
    assert isinstance(image, m.Image) and image.media.caption == "look" and image.media.mime_type == "image/png"
    audio = inbound[2]
    assert isinstance(audio, m.Audio) and audio.voice
    doc = inbound[4]
    assert isinstance(doc, m.Document) and doc.media.filename == "a.pdf"
    reaction, removal = inbound[8], inbound[9]
    assert isinstance(reaction, m.Reaction) and reaction.emoji == "👍"
    assert isinstance(removal, m.Reaction) and removal.emoji is None
    quoted = inbound[10]
    assert quoted.context is not None and quoted.context.reply_to == text.message_id
    button = inbound[11]
    assert isinstance(button, m.ButtonReply) and (button.button_id, button.title) == ("yes", "Yes")
    assert button.context is not None and button.context.reply_to == ana.replies[0].message_id
    row = inbound[12]
    assert isinstance(row, m.ListReply) and row.row_id == "r0-0"
    template_tap = inbound[13]
    assert isinstance(template_tap, m.TemplateButton) and template_tap.text == "Stop updates"
    unsupported = inbound[14]
    assert isinstance(unsupported, m.Unsupported) and unsupported.original_type == "poll_update"
    assert inbound[15].user == m.User(user_id="US.1234", name="Bo")

    statuses = [e for e in events if isinstance(e, m.StatusUpdate)]
    assert {s.status for s in statuses} == {"sent", "delivered", "read"}
    assert {s.message_id for s in statuses} == {r.message_id for r in ana.replies}


async def test_a_user_is_the_same_however_the_number_is_written(emu: Emulator) -> None:
    ana = emu.user("15551234567", name="Ana")
    assert emu.user("+1 555-123-4567") is ana
    assert emu.user("15551234567", user_id="US.77") is ana and ana.user_id == "US.77"
    assert emu.user(user_id="US.77") is ana and ana.key == "15551234567"
    with pytest.raises(ValueError, match="digits"):
        emu.user("ana")
