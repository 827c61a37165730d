"""/health says whether the store takes writes and nothing secret; no API schema is served; operator
request bodies are capped; a download error's details stay in the logs."""

from __future__ import annotations

import hashlib
import hmac

import aiohttp

from whatsagent import health as health_module
from whatsagent.agents.context import InboundMedia, TurnContext
from whatsagent.agents.prompt import build_prompt
from whatsagent.errors import StoreUnavailable
from whatsagent.media import MemoryMediaStore
from whatsagent.media.capabilities import TEXT_ONLY
from whatsagent.messages import Document, Media, User
from whatsagent.testing import APP_SECRET, BotHarness


def signed(raw: bytes) -> dict[str, str]:
    digest = hmac.new(APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


async def test_no_api_schema_or_docs_are_served(tmp_path, echo):
    async with BotHarness(echo, tmp_path) as bot, aiohttp.ClientSession(base_url=bot.url) as http:
        for path in ("/openapi.json", "/docs", "/redoc"):
            async with http.get(path) as r:
                assert r.status == 404, path


async def test_health_reports_a_store_that_cannot_take_writes_and_recovers(tmp_path, echo, monkeypatch):
    async with BotHarness(echo, tmp_path) as bot, aiohttp.ClientSession(base_url=bot.url) as http:
        async with http.get("/health") as r:
            assert (r.status, (await r.json())["store"]) == (200, "ok")
        assert bot.os is not None and bot.os.inbox is not None
        real_accept = bot.os.inbox.accept

        async def full(events):
            raise StoreUnavailable("database or disk is full")

        monkeypatch.setattr(bot.os.inbox, "accept", full)
        ana = bot.user("15551230001")
        delivery = await ana.send_text("hello")
        assert delivery.status == 503
        async with http.get("/health") as r:
            body = await r.json()
            assert (r.status, body["status"], body["store"]) == (503, "failing", "not writable")
            assert "disk is full" not in str(body)
        monkeypatch.setattr(bot.os.inbox, "accept", real_accept)
        await ana.send_text("hello again")
        await ana.wait_for_replies(1, timeout=30)
        async with http.get("/health") as r:
            assert (r.status, (await r.json())["store"]) == (200, "ok")

        class Usage:
            free = 1024

        monkeypatch.setattr(health_module.shutil, "disk_usage", lambda path: Usage())
        async with http.get("/health") as r:
            assert (r.status, (await r.json())["store"]) == (503, "disk full")


async def test_an_operator_post_body_over_the_cap_is_refused_before_it_is_read(tmp_path, echo):
    async with (
        BotHarness(echo, tmp_path, api_token="op-token") as bot,
        aiohttp.ClientSession(base_url=bot.url) as http,
    ):
        big = b'{"to": "1", "template": "' + b"x" * 2_000_000 + b'"}'
        for headers in ({"Authorization": "Bearer op-token"}, {}):
            async with http.post("/messages/template", data=big, headers=headers) as r:
                assert r.status == 413, headers

            async def chunks():
                for _ in range(40):
                    yield b"x" * 50_000

            async with http.post("/messages/template", data=chunks(), headers=headers) as r:
                # without a Content-Length: cut at the cap when read; refused unread without the token
                assert r.status == (413 if headers else 401)
        small = b'{"to": "15551230001", "template": "hello_world"}'
        async with http.post("/messages/template", data=small, headers={"Authorization": "Bearer op-token"}) as r:
            assert r.status != 413


async def test_the_model_hears_could_not_be_downloaded_and_never_the_error_text():
    user = User(wa_id="15551230001")
    document = Document(channel="c", account="a", id="wamid.1", user=user, media=Media(media_id="m", filename="cv.pdf"))
    leaky = "could not download the medium: Cannot connect to host 10.0.0.7:8443 (file:///srv/secret)"
    for error, expected in (
        (leaky, "(It could not be downloaded.)"),
        ("the medium is 5000 bytes, more than the 1000 allowed", "larger than the 1000 bytes this bot accepts"),
    ):
        ctx = TurnContext(
            conversation="c|15551230001",
            channel="c",
            user=user,
            messages=[document],
            media={"wamid.1": InboundMedia("wamid.1", "document", None, None, None, "cv.pdf", error=error)},
            media_store=MemoryMediaStore(),
        )
        prompt = await build_prompt(ctx, "test", "", TEXT_ONLY)
        assert isinstance(prompt, str) and expected in prompt
        assert "10.0.0.7" not in prompt and "file://" not in prompt
