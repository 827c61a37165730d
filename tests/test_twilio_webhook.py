"""Twilio's webhooks at the HTTP edge: signed or refused, parsed, stored, then an empty 200.

Signatures here are computed by the `twilio` package's `RequestValidator` or by the fake's own signer,
never by the code under test. `accept` is a stand-in for the inbox that records what it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from urllib.parse import urlencode

import aiohttp
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.testclient import TestClient
from twilio.request_validator import RequestValidator

from fakes.twilio_api import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, FakeTwilio
from whatsagent.channels.twilio import Twilio
from whatsagent.errors import StoreUnavailable
from whatsagent.media.store import MemoryMediaStore
from whatsagent.messages import Event, Image, StatusUpdate, Text
from whatsagent.messages.outbound import TextOut

PUBLIC = "https://bot.example.com"
SID = "SM0123456789abcdef0123456789abcdef"
validator = RequestValidator(AUTH_TOKEN)


class Inbox:
    """Records accepted events; `failure` makes the next accepts raise it."""

    def __init__(self) -> None:
        self.batches: list[list[Event]] = []
        self.failure: Exception | None = None

    async def accept(self, events: Sequence[Event]) -> None:
        if self.failure is not None:
            raise self.failure
        self.batches.append(list(events))

    @property
    def events(self) -> list[Event]:
        return [event for batch in self.batches for event in batch]


def inbound(body: str = "hello", **extra: str) -> dict[str, str]:
    form = {
        "SmsMessageSid": SID,
        "NumMedia": "0",
        "ProfileName": "Ana",
        "WaId": "6285176810035",
        "SmsStatus": "received",
        "Body": body,
        "To": FROM_NUMBER,
        "MessageSid": SID,
        "AccountSid": ACCOUNT_SID,
        "From": "whatsapp:+6285176810035",
        "ApiVersion": "2010-04-01",
    }
    form.update(extra)
    return form


def channel_for(**settings) -> Twilio:
    options = {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "from_number": FROM_NUMBER, "name": "tw"}
    options.update(settings)
    channel = Twilio(**options)
    channel.validate()
    return channel


@contextlib.contextmanager
def client_for(channel: Twilio, inbox: Inbox) -> Iterator[TestClient]:
    with TestClient(Starlette(routes=channel.routes(inbox.accept))) as client:
        yield client


def post(
    client: TestClient,
    path: str,
    form: dict[str, str],
    *,
    signed_url: str | None,
    headers: dict[str, str] | None = None,
):
    all_headers = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
    if signed_url is not None:
        all_headers["X-Twilio-Signature"] = validator.compute_signature(signed_url, form)
    return client.post(path, content=urlencode(form), headers=all_headers)


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
def client(inbox: Inbox) -> Iterator[TestClient]:
    with client_for(channel_for(public_url=PUBLIC), inbox) as client:
        yield client


def test_a_signed_message_is_stored_then_acknowledged_with_an_empty_200(client: TestClient, inbox: Inbox) -> None:
    response = post(client, "/twilio/webhook", inbound("hello"), signed_url=f"{PUBLIC}/twilio/webhook")
    assert response.status_code == 200
    assert response.content == b""
    (message,) = inbox.events
    assert isinstance(message, Text)
    assert (message.body, message.id, message.account, message.channel) == ("hello", SID, FROM_NUMBER, "tw")
    assert message.user.wa_id == "6285176810035" and message.user.name == "Ana"


def test_the_query_string_twilio_called_is_part_of_what_is_signed(client: TestClient, inbox: Inbox) -> None:
    signed = f"{PUBLIC}/twilio/webhook?tenant=a&x=%2F"
    assert post(client, "/twilio/webhook?tenant=a&x=%2F", inbound(), signed_url=signed).status_code == 200
    assert post(client, "/twilio/webhook?tenant=b&x=%2F", inbound(), signed_url=signed).status_code == 403
    assert len(inbox.events) == 1


def test_the_default_port_in_the_configured_url_does_not_matter(inbox: Inbox) -> None:
    with client_for(channel_for(public_url="https://bot.example.com:443"), inbox) as client:
        response = post(client, "/twilio/webhook", inbound(), signed_url=f"{PUBLIC}/twilio/webhook")
    assert response.status_code == 200


def test_a_signature_for_another_url_token_or_body_is_refused_with_403(client: TestClient, inbox: Inbox) -> None:
    url = f"{PUBLIC}/twilio/webhook"
    assert (
        post(client, "/twilio/webhook", inbound(), signed_url="http://bot.example.com/twilio/webhook").status_code
        == 403
    )
    assert post(client, "/twilio/webhook", inbound(), signed_url=None).status_code == 403
    forged = {"X-Twilio-Signature": RequestValidator("other-token").compute_signature(url, inbound())}
    assert post(client, "/twilio/webhook", inbound(), signed_url=None, headers=forged).status_code == 403
    tampered = {"X-Twilio-Signature": validator.compute_signature(url, inbound("hello"))}
    assert (
        post(client, "/twilio/webhook", inbound("send me money"), signed_url=None, headers=tampered).status_code == 403
    )
    assert inbox.events == []


def test_behind_a_trusted_proxy_the_forwarded_scheme_and_host_are_what_twilio_signed(inbox: Inbox) -> None:
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "bot.example.com"}
    signed = f"{PUBLIC}/twilio/webhook"
    with client_for(channel_for(trust_forwarded_headers=True), inbox) as client:
        assert post(client, "/twilio/webhook", inbound(), signed_url=signed, headers=forwarded).status_code == 200
        chained = {"X-Forwarded-Proto": "https, http", "X-Forwarded-Host": "bot.example.com, internal:8000"}
        assert post(client, "/twilio/webhook", inbound(), signed_url=signed, headers=chained).status_code == 200
    assert len(inbox.events) == 2


def test_forwarded_headers_are_ignored_unless_trusted(inbox: Inbox) -> None:
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "bot.example.com"}
    with client_for(channel_for(), inbox) as client:
        response = post(client, "/twilio/webhook", inbound(), signed_url=f"{PUBLIC}/twilio/webhook", headers=forwarded)
        assert response.status_code == 403
        # What the server itself sees is what counts: the test client calls http://testserver.
        assert (
            post(client, "/twilio/webhook", inbound(), signed_url="http://testserver/twilio/webhook").status_code == 200
        )


def test_a_configured_public_url_wins_over_forwarded_headers(inbox: Inbox) -> None:
    spoofed = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example.com"}
    with client_for(channel_for(public_url=PUBLIC, trust_forwarded_headers=True), inbox) as client:
        evil = "https://evil.example.com/twilio/webhook"
        assert post(client, "/twilio/webhook", inbound(), signed_url=evil, headers=spoofed).status_code == 403
        good = f"{PUBLIC}/twilio/webhook"
        assert post(client, "/twilio/webhook", inbound(), signed_url=good, headers=spoofed).status_code == 200


def test_a_json_body_is_accepted_through_its_body_sha256(client: TestClient, inbox: Inbox) -> None:
    body = json.dumps(inbound("from json"))
    query = f"bodySHA256={hashlib.sha256(body.encode()).hexdigest()}"
    signed = validator.compute_signature(f"{PUBLIC}/twilio/webhook?{query}", {})
    headers = {"Content-Type": "application/json", "X-Twilio-Signature": signed}
    response = client.post(f"/twilio/webhook?{query}", content=body, headers=headers)
    assert response.status_code == 200
    assert isinstance(inbox.events[0], Text) and inbox.events[0].body == "from json"
    tampered = client.post(f"/twilio/webhook?{query}", content=body.replace("json", "JSON"), headers=headers)
    assert tampered.status_code == 403


def test_a_message_for_another_sender_of_the_account_is_acknowledged_but_not_answered(
    client: TestClient, inbox: Inbox
) -> None:
    form = inbound("for the other number", To="whatsapp:+15550009999")
    assert post(client, "/twilio/webhook", form, signed_url=f"{PUBLIC}/twilio/webhook").status_code == 200
    assert inbox.events == []


def test_a_body_over_the_limit_is_refused_with_413_before_anything_else(inbox: Inbox) -> None:
    with client_for(channel_for(public_url=PUBLIC, max_body_bytes=2048), inbox) as client:
        big = inbound("x" * 4000)
        assert post(client, "/twilio/webhook", big, signed_url=f"{PUBLIC}/twilio/webhook").status_code == 413

        def chunks() -> Iterator[bytes]:
            for _ in range(10):
                yield b"Body=" + b"y" * 500 + b"&"

        response = client.post(
            "/twilio/webhook", content=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert response.status_code == 413
    assert inbox.events == []


@pytest.mark.parametrize(
    ("form", "reason"),
    [
        ({"Body": "no sid", "From": "whatsapp:+1555"}, "MessageSid"),
        (inbound(NumMedia="2", MediaUrl0="https://x"), "MediaUrl1"),
        (inbound(Latitude="north", Longitude="2"), "Latitude"),
    ],
)
def test_a_signed_but_malformed_form_is_refused_with_400_and_the_reason(
    client: TestClient, inbox: Inbox, form: dict[str, str], reason: str
) -> None:
    response = post(client, "/twilio/webhook", form, signed_url=f"{PUBLIC}/twilio/webhook")
    assert response.status_code == 400
    assert reason in response.text
    assert inbox.events == []


def test_a_body_that_is_not_a_form_is_refused_with_400(client: TestClient) -> None:
    not_utf8 = client.post(
        "/twilio/webhook",
        content=b"Body=%FF%FE",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert not_utf8.status_code == 400 and "UTF-8" in not_utf8.text
    xml = client.post("/twilio/webhook", content=b"<x/>", headers={"Content-Type": "text/xml"})
    assert xml.status_code == 400 and "form-encoded" in xml.text


def test_a_parser_bug_is_a_400_not_a_500(client: TestClient, inbox: Inbox, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("whatsagent.channels.twilio.channel.parse_message", broken)
    response = post(client, "/twilio/webhook", inbound(), signed_url=f"{PUBLIC}/twilio/webhook")
    assert response.status_code == 400


def test_when_the_store_cannot_commit_twilio_is_told_to_come_back_with_503(client: TestClient, inbox: Inbox) -> None:
    inbox.failure = StoreUnavailable("database is locked")
    response = post(client, "/twilio/webhook", inbound(), signed_url=f"{PUBLIC}/twilio/webhook")
    assert response.status_code == 503
    inbox.failure = ValueError("a bug in the inbox")
    response = post(client, "/twilio/webhook", inbound(), signed_url=f"{PUBLIC}/twilio/webhook")
    assert response.status_code == 503
    inbox.failure = None
    assert post(client, "/twilio/webhook", inbound(), signed_url=f"{PUBLIC}/twilio/webhook").status_code == 200
    assert len(inbox.events) == 1


def status(sid: str, value: str, **extra: str) -> dict[str, str]:
    form = {
        "SmsSid": sid,
        "SmsStatus": value,
        "MessageStatus": value,
        "To": "whatsapp:+6285176810035",
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": FROM_NUMBER,
        "ApiVersion": "2010-04-01",
    }
    form.update(extra)
    return form


def test_a_signed_status_callback_updates_the_outbox_with_its_key(client: TestClient, inbox: Inbox) -> None:
    path = "/twilio/status?cb=dHVybi03LzA"  # "turn-7/0", as the channel wrote it into StatusCallback
    response = post(client, path, status(SID, "delivered"), signed_url=f"{PUBLIC}{path}")
    assert response.status_code == 200 and response.content == b""
    (update,) = inbox.events
    assert isinstance(update, StatusUpdate)
    assert (update.message_id, update.status, update.callback_data) == (SID, "delivered", "turn-7/0")
    assert update.recipient == "6285176810035"


def test_an_undelivered_callback_is_a_failure_with_twilios_code(client: TestClient, inbox: Inbox) -> None:
    form = status(SID, "undelivered", ErrorCode="63016")
    assert post(client, "/twilio/status", form, signed_url=f"{PUBLIC}/twilio/status").status_code == 200
    (update,) = inbox.events
    assert isinstance(update, StatusUpdate)
    assert update.status == "failed" and update.errors[0].code == 63016


def test_queued_and_sending_are_acknowledged_without_touching_the_store(client: TestClient, inbox: Inbox) -> None:
    inbox.failure = StoreUnavailable("not even called")
    for value in ("queued", "accepted", "sending"):
        assert (
            post(client, "/twilio/status", status(SID, value), signed_url=f"{PUBLIC}/twilio/status").status_code == 200
        )
    assert inbox.events == []


def test_a_forged_status_callback_is_refused(client: TestClient, inbox: Inbox) -> None:
    # The key travels in the signed URL: changing it breaks the signature.
    signed = f"{PUBLIC}/twilio/status?cb=bWluZQ"
    assert post(client, "/twilio/status?cb=eW91cnM", status(SID, "read"), signed_url=signed).status_code == 403
    assert inbox.events == []


def test_a_status_callback_sent_to_the_message_url_is_still_a_status(client: TestClient, inbox: Inbox) -> None:
    response = post(client, "/twilio/webhook", status(SID, "read"), signed_url=f"{PUBLIC}/twilio/webhook")
    assert response.status_code == 200
    assert isinstance(inbox.events[0], StatusUpdate)


def test_webhook_rules_signed_with_a_shared_key_need_that_key(inbox: Inbox) -> None:
    settings = {"X-Twilio-Webhooks-Signature-Settings": "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"}
    url = f"{PUBLIC}/twilio/webhook"
    signed = RequestValidator("shared-secret").compute_signature(url, inbound(), "HMAC_SHA256")
    headers = {**settings, "X-Twilio-Signature": signed}
    with client_for(channel_for(public_url=PUBLIC), inbox) as client:
        assert post(client, "/twilio/webhook", inbound(), signed_url=None, headers=headers).status_code == 403
    with client_for(channel_for(public_url=PUBLIC, webhook_signing_key="shared-secret"), inbox) as client:
        assert post(client, "/twilio/webhook", inbound(), signed_url=None, headers=headers).status_code == 200
    assert len(inbox.events) == 1


def test_turning_signature_checks_off_is_possible_and_loud(inbox: Inbox, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "whatsagent.channels.twilio"):
        channel = channel_for(verify_signatures=False)
    assert any("SIGNATURE CHECKS ARE OFF" in r.getMessage() for r in caplog.records)
    with client_for(channel, inbox) as client:
        assert post(client, "/twilio/webhook", inbound(), signed_url=None).status_code == 200
    assert len(inbox.events) == 1


def test_only_post_is_served_on_the_webhook(client: TestClient) -> None:
    assert client.get("/twilio/webhook").status_code == 405


# -- outbound media served at signed URLs ----------------------------------------------------------------


async def stored_png() -> tuple[MemoryMediaStore, str, bytes]:
    store = MemoryMediaStore()
    data = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100
    info = await store.put(data, "image/png")
    return store, info.key, data


async def test_a_stored_medium_is_served_at_its_signed_url_until_it_expires(inbox: Inbox) -> None:
    store, key, data = await stored_png()
    channel = channel_for(public_url=PUBLIC)
    channel.use_media_store(store)
    url = channel.sign_media_url(key, expires_in=60)
    path = url.removeprefix(PUBLIC)
    with client_for(channel, inbox) as client:
        response = client.get(path)
        assert response.status_code == 200
        assert response.content == data
        assert response.headers["content-type"] == "image/png"
        head = client.head(path)
        assert head.status_code == 200 and head.content == b""
        assert client.get(path.replace("signature=", "signature=0")).status_code == 403
        assert client.get(path.split("?")[0]).status_code == 403
        other = channel.sign_media_url("cd" * 32, expires_in=60).removeprefix(PUBLIC)
        assert client.get(other).status_code == 404
        expired = channel.sign_media_url(key, expires_in=-1).removeprefix(PUBLIC)
        assert client.get(expired).status_code == 410
        stretched = path.replace(
            f"expires={path.split('expires=')[1].split('&')[0]}", f"expires={int(time.time()) + 9999}"
        )
        assert client.get(stretched).status_code == 403


async def test_without_a_media_store_a_valid_link_is_a_503(inbox: Inbox) -> None:
    channel = channel_for(public_url=PUBLIC)
    with client_for(channel, inbox) as client:
        assert client.get(channel.sign_media_url("ab" * 32, 60).removeprefix(PUBLIC)).status_code == 503


def test_without_a_public_url_stored_media_cannot_be_published() -> None:
    with pytest.raises(Exception, match="TWILIO_PUBLIC_URL"):
        channel_for().sign_media_url("ab" * 32, 60)


# -- over real HTTP, with the fake playing Twilio ----------------------------------------------------------


@contextlib.asynccontextmanager
async def serve(app: Starlette) -> AsyncIterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def test_over_real_http_twilio_messages_and_statuses_arrive_and_replies_get_a_status_callback(
    inbox: Inbox,
) -> None:
    async with FakeTwilio() as twilio, aiohttp.ClientSession() as http:
        channel = channel_for(api_base_url=twilio.base_url)
        await channel.open(http)
        async with serve(Starlette(routes=channel.routes(inbox.accept))) as bot:
            photo = twilio.host_media(b"\xff\xd8\xff" + b"1" * 300, "image/jpeg")
            assert await twilio.post_inbound(f"{bot}/twilio/webhook", twilio.inbound("hi", sid=SID)) == 200
            assert (
                await twilio.post_inbound(f"{bot}/twilio/webhook", twilio.inbound(media=[(photo, "image/jpeg")])) == 200
            )
            assert await twilio.post_inbound(f"{bot}/twilio/webhook", twilio.inbound("x"), token="wrong") == 403
            text, image = inbox.events
            assert isinstance(text, Text) and text.id == SID
            assert isinstance(image, Image)
            data, mime = await channel.download(image.media, max_bytes=1000)
            assert data.startswith(b"\xff\xd8\xff") and mime == "image/jpeg"

            # The public URL was learned from a signed request: replies ask for status callbacks there.
            sent = await channel.send(text.user, TextOut(body="hello!"), callback_data="turn-1/0")
            assert twilio.sends[0].status_callback == f"{bot}/twilio/status?cb=dHVybi0xLzA"
            assert await twilio.post_status(sent.message_id, "delivered") == 200
            update = inbox.events[-1]
            assert isinstance(update, StatusUpdate)
            assert (update.message_id, update.status, update.callback_data) == (
                sent.message_id,
                "delivered",
                "turn-1/0",
            )
