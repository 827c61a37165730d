"""Hostile input at the webhook edge: the same fuzzed corpus against SQLite and PostgreSQL, zero 5xx.

Over-long and NUL-containing fields (a 300-character id, a NUL in a profile name, an error code past
32 bits) are made safe at the edge, so every message of an envelope is stored on both engines; garbage
that cannot be a webhook is a 4xx with a reason and no traceback in the logs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from fakes.twilio_api import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER
from whatsagent import AgentOS, TurnContext
from whatsagent.channels import CloudAPI
from whatsagent.channels.twilio import Twilio
from whatsagent.media import MemoryMediaStore
from whatsagent.store.schema import inbox

SECRET = "fuzz-app-secret"
PHONE_NUMBER_ID = "100200300"
PUBLIC = "http://bot.test"
NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing here is ever sent anywhere


async def quiet(ctx: TurnContext) -> None:
    return None


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bot.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def bot(database: str, tmp_path: Any) -> AsyncIterator[tuple[AgentOS, httpx.AsyncClient]]:
    cloud = CloudAPI(
        agent=quiet,
        access_token="fuzz-token",
        phone_number_id=PHONE_NUMBER_ID,
        verify_token="fuzz-verify",
        app_secret=SECRET,
        api_base_url=NOWHERE,
    )
    twilio = Twilio(
        agent=quiet,
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        from_number=FROM_NUMBER,
        api_base_url=NOWHERE,
        public_url=PUBLIC,
    )
    agent_os = AgentOS(channels=[cloud, twilio], database=database, media_store=MemoryMediaStore(), merge_window=0.0)
    await agent_os.start()
    transport = httpx.ASGITransport(app=agent_os.get_app(), raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url=PUBLIC) as client:
            yield agent_os, client
    finally:
        await agent_os.stop()


# --- the corpus ---------------------------------------------------------------------------------


def envelope(messages: list[dict[str, Any]], contacts: list[dict[str, Any]], statuses: Any = None) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_NUMBER_ID},
        "contacts": contacts,
        "messages": messages,
    }
    if statuses is not None:
        value["statuses"] = statuses
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
    }


def text(wamid: str, wa_id: str, body: str = "hi") -> dict[str, Any]:
    return {"from": wa_id, "id": wamid, "timestamp": "1760000000", "type": "text", "text": {"body": body}}


def long(rng: random.Random, alphabet: str = "abcdef0123456789") -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.choice([256, 300, 1000, 5000])))


def nul(value: str) -> str:
    return value[:3] + "\x00" + value[3:]


MUTATIONS = [
    lambda r, m, c, s: m.update(id="wamid." + long(r)),
    lambda r, m, c, s: m.update(id=nul(m["id"])),
    lambda r, m, c, s: c["profile"].update(name=nul("Ana Maria")),
    lambda r, m, c, s: c["profile"].update(name=long(r, "Ana ")),
    lambda r, m, c, s: (c.update(wa_id=long(r, "0123456789")), m.update({"from": c["wa_id"]})),
    lambda r, m, c, s: (c.update(wa_id=nul(c["wa_id"])), m.update({"from": c["wa_id"]})),
    lambda r, m, c, s: m["text"].update(body="\x00" * 10 + "hello"),
    lambda r, m, c, s: m.update(context={"id": long(r), "from": nul("1555")}),
    lambda r, m, c, s: m.update(context={"id": nul("wamid.abc"), "forwarded": "yes"}),
    lambda r, m, c, s: m.update(type="reaction", reaction={"message_id": long(r), "emoji": nul("👍")}),
    lambda r, m, c, s: m.update(timestamp=r.choice(["99999999999999999999", "-1", "²", 1e30, None, "x"])),
    lambda r, m, c, s: m.update(type="image", image={"id": long(r), "mime_type": nul("image/jpeg"), "sha256": long(r)}),
    lambda r, m, c, s: m.update(type="document", document={"id": "1", "filename": nul(long(r))}),
    lambda r, m, c, s: m.update(type="location", location={"latitude": 1e308, "longitude": "x", "name": nul("a")}),
    lambda r, m, c, s: m.update(errors=[{"code": 10**20, "title": nul("bad"), "message": long(r)}]),
    lambda r, m, c, s: m.update(text="not an object"),
    lambda r, m, c, s: m.update(id=12345),
    lambda r, m, c, s: c.update(profile=[]),
    lambda r, m, c, s: m.update(type=long(r)),
    lambda r, m, c, s: s.append(
        {
            "id": r.choice([long(r), nul("wamid.out")]),
            "status": r.choice(["delivered", "read", "failed", long(r), nul("sent")]),
            "timestamp": r.choice(["1760000000", "²", 10**30]),
            "recipient_id": r.choice([long(r, "0123456789"), nul("1555")]),
            "errors": [{"code": r.choice([10**20, -(10**20), 131047]), "title": nul("x"), "message": long(r)}],
        }
    ),
]


def cloud_corpus(count: int, seed: int = 12) -> list[tuple[str, dict[str, Any]]]:
    rng = random.Random(seed)
    corpus = []
    for index in range(count):
        good = f"wamid.good-{index}"
        bad_contact = {"profile": {"name": "Bea"}, "wa_id": f"1555000{index:04d}"}
        bad = text(f"wamid.odd-{index}", bad_contact["wa_id"])
        statuses: list[dict[str, Any]] = []
        for mutation in rng.sample(MUTATIONS, rng.choice([1, 2, 3])):
            mutation(rng, bad, bad_contact, statuses)
        contacts = [{"profile": {"name": "Ana"}, "wa_id": "15551230000"}, bad_contact]
        corpus.append((good, envelope([text(good, "15551230000"), bad], contacts, statuses or None)))
    return corpus


def signed(body: bytes) -> dict[str, str]:
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


def twilio_form(rng: random.Random, index: int) -> tuple[str, dict[str, str]]:
    form = {
        "MessageSid": f"SM{index:032d}",
        "AccountSid": ACCOUNT_SID,
        "From": "whatsapp:+6285176810035",
        "To": FROM_NUMBER,
        "WaId": "6285176810035",
        "ProfileName": "Ana",
        "Body": "hello",
        "NumMedia": "0",
    }
    choices = [
        lambda: form.update(NumMedia=rng.choice(["²", "-1", "1e3", " ", "٣", "99999999999999999999"])),
        lambda: form.update(MessageSid="SM" + long(rng)),
        lambda: form.update(MessageSid=nul(form["MessageSid"])),
        lambda: form.update(ProfileName=rng.choice([nul("Ana"), long(rng, "Ana ")])),
        lambda: form.update(WaId=long(rng, "0123456789"), From="whatsapp:+" + long(rng, "0123456789")),
        lambda: form.update(WaId=nul("6285176810035")),
        lambda: form.update(Body=nul("hello")),
        lambda: form.update(NumMedia="1", MediaUrl0=rng.choice(["", "not a url", nul("http://127.0.0.1:9/media")])),
        lambda: form.update(OriginalRepliedMessageSid=rng.choice([long(rng), nul("SMx")])),
        lambda: form.update(MessageStatus="failed", ErrorCode=rng.choice(["²", "x", "99999999999999999999", "-5"])),
        lambda: form.update(MessageStatus=rng.choice(["delivered", long(rng)]), MessageSid=long(rng)),
    ]
    for mutation in rng.sample(choices, rng.choice([1, 2])):
        mutation()
    path = rng.choice(["/twilio/webhook", "/twilio/status"])
    return path, form


# --- the runs -----------------------------------------------------------------------------------


async def stored_ids(agent_os: AgentOS) -> set[str]:
    assert agent_os.db is not None
    rows = await agent_os.db.read(lambda conn: conn.execute(select(inbox.c.provider_id)).scalars().all())
    return set(rows)


async def test_the_same_fuzzed_corpus_gets_no_5xx_and_the_good_messages_are_stored(bot, caplog):
    agent_os, client = bot
    caplog.set_level(logging.DEBUG)
    answers: dict[int, int] = {}
    kept: list[str] = []
    for good, payload in cloud_corpus(150):
        raw = json.dumps(payload).encode()
        response = await client.post("/whatsapp/webhook", content=raw, headers=signed(raw))
        answers[response.status_code] = answers.get(response.status_code, 0) + 1
        assert response.status_code < 500, (response.status_code, response.text, payload)
        kept.append(good)
    validator = RequestValidator(AUTH_TOKEN)
    rng = random.Random(7)
    for index in range(150):
        path, form = twilio_form(rng, index)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": validator.compute_signature(PUBLIC + path, form),
        }
        response = await client.post(path, content=urlencode(form), headers=headers)
        answers[response.status_code] = answers.get(response.status_code, 0) + 1
        assert response.status_code < 500, (response.status_code, response.text, form)
    print(f"answers to 300 fuzzed webhooks: {dict(sorted(answers.items()))}")
    assert set(answers) == {200, 400}, answers
    missing = set(kept) - await stored_ids(agent_os)
    assert not missing, "the good message of every envelope is stored, even beside a malformed one"
    tracebacks = [r for r in caplog.records if r.exc_info and r.name.startswith(("whatsagent", "uvicorn"))]
    assert not tracebacks, [r.getMessage() for r in tracebacks]


async def test_an_over_long_id_and_a_nul_in_a_name_are_stored_made_safe_with_the_rest_of_the_envelope(bot):
    agent_os, client = bot
    long_id = "wamid." + "x" * 300
    contacts = [
        {"profile": {"name": "Ana"}, "wa_id": "15551230000"},
        {"profile": {"name": "B\x00ea"}, "wa_id": "15551230001"},
    ]
    payload = envelope([text("wamid.fine", "15551230000"), text(long_id, "15551230001")], contacts)
    raw = json.dumps(payload).encode()
    response = await client.post("/whatsapp/webhook", content=raw, headers=signed(raw))
    assert response.status_code == 200, response.text
    ids = await stored_ids(agent_os)
    assert "wamid.fine" in ids
    [safe] = [i for i in ids if i.startswith("wamid.xxx")]
    assert len(safe) == 255 and safe != long_id[:255], "cut to the column, its tail a hash of the whole id"
    # a redelivery of the same envelope is a duplicate, not a second message
    again = await client.post("/whatsapp/webhook", content=raw, headers=signed(raw))
    assert again.status_code == 200
    assert len(await stored_ids(agent_os)) == len(ids)


async def test_a_non_ascii_signature_header_is_refused_not_a_500(bot):
    _, client = bot
    raw = json.dumps(envelope([text("wamid.sig", "15551230000")], [])).encode()
    for value in ("sha256=é" + "0" * 63, "sha256=" + "²" * 64, "ünïcode"):
        headers = {"X-Hub-Signature-256": value.encode("latin-1"), "Content-Type": b"application/json"}
        response = await client.post("/whatsapp/webhook", content=raw, headers=headers)
        assert response.status_code == 403, (value, response.status_code)


async def test_garbage_in_a_twilio_media_link_or_a_content_length_is_a_4xx(bot):
    _, client = bot
    for query in ("expires=²&signature=ab", "expires=٣&signature=ab", "expires=&signature=", "signature=x"):
        response = await client.get(f"/twilio/media/somekey?{query}")
        assert response.status_code == 403, (query, response.status_code)
    from starlette.requests import Request

    from whatsagent.channels.body import declared_length

    for value in ("²".encode(), "٣".encode(), b"-1", b"1e3", b""):
        scope = {"type": "http", "method": "POST", "headers": [(b"content-length", value)]}
        assert declared_length(Request(scope)) is None, value


async def test_a_client_that_leaves_mid_body_is_logged_at_debug_without_a_traceback(tmp_path, echo, caplog):
    import asyncio

    from whatsagent.testing import BotHarness

    caplog.set_level(logging.DEBUG)
    async with BotHarness(echo, tmp_path) as bot:
        host, port = bot.url.removeprefix("http://").split(":")
        for path in ("/whatsapp/webhook", "/twilio/webhook"):
            _, writer = await asyncio.open_connection(host, int(port))
            writer.write(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{{".encode())
            await writer.drain()
            writer.close()
            await writer.wait_closed()
        # answered below: the next request goes through only after the server handled both
        ana = bot.user("15551239999")
        await ana.send_text("still here")
        await ana.wait_for_replies(1)

        def disconnects() -> int:
            return sum("client disconnected" in r.getMessage() for r in caplog.records)

        for _ in range(200):
            if disconnects() >= 1:
                break
            await asyncio.sleep(0.05)
    assert disconnects() >= 1
    assert all(r.levelno == logging.DEBUG for r in caplog.records if "disconnected" in r.getMessage())
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not errors, [r.getMessage() for r in errors]
