"""The emulator's chat page in a real headless Chromium: chatting with a bot feels like WhatsApp.

A small scripted bot (an aiohttp handler) answers the emulator's signed webhooks through its Graph API:
a greeting with WhatsApp formatting and two reply buttons, then, once a button is tapped, a text and an
image. Debian's `chromium` drives the page through Playwright; a screenshot lands in test-artifacts/.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from whatsagent.emulator import Emulator, StatusPolicy

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
SECRET = "browser-secret"
TOKEN = "browser-token"
PNID = "100200300"

if not os.path.exists(CHROMIUM) and not os.environ.get("WHATSAGENT_REQUIRE_BROWSER"):
    pytest.skip(
        f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium chromium-driver); "
        ".ci/run installs it and sets WHATSAGENT_REQUIRE_BROWSER=1 so this test never skips there",
        allow_module_level=True,
    )

playwright_api = pytest.importorskip("playwright.async_api")
# A page on a loaded machine may take its time: the wait is a hang guard, not a speed check.
playwright_api.expect.set_options(timeout=60_000)


def picture(width: int = 320, height: int = 200) -> bytes:
    """A real PNG (a sunset-ish gradient with a sun), made with zlib so no imaging library is needed."""
    rows = []
    for y in range(height):
        row = bytearray([0])
        for x in range(width):
            sun = (x - width * 0.68) ** 2 + (y - height * 0.45) ** 2 < (height * 0.16) ** 2
            sea = y > height * 0.62
            if sun:
                rgb = (255, 214, 90)
            elif sea:
                rgb = (20, 110 + y % 9, 150 + (x // 8) % 12)
            else:
                rgb = (255 - y // 2, 120 + y // 3, 90 + y // 2)
            row += bytes(rgb)
        rows.append(bytes(row))
    raw = zlib.compress(b"".join(rows), 9)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


class ScriptedBot:
    """A bot reduced to a script: it acknowledges each webhook, then answers through the Graph API."""

    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator
        self.url = ""
        self.errors: list[str] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/whatsapp/webhook", self.webhook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/whatsapp/webhook"
        self._http = aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"})

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def webhook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Hub-Signature-256", "")):
            return web.Response(status=403)
        for entry in json.loads(raw)["entry"]:
            for change in entry["changes"]:
                value = change["value"]
                names = {c.get("wa_id") or c.get("user_id"): c["profile"]["name"] for c in value.get("contacts", [])}
                for message in value.get("messages", []):
                    sender = message.get("from") or message.get("from_user_id")
                    task = asyncio.create_task(self.answer(message, names.get(sender) or "there"))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        return web.Response(text="ok")

    async def graph(self, path: str, **kwargs: Any) -> dict[str, Any]:
        assert self._http is not None
        async with self._http.post(f"{self.emu.graph_url}/{PNID}/{path}", **kwargs) as resp:
            body = await resp.json()
            if resp.status != 200:
                self.errors.append(json.dumps(body))
            return body

    async def send(self, to: dict[str, str], kind: str, payload: dict[str, Any]) -> None:
        await self.graph("messages", json={"messaging_product": "whatsapp", **to, "type": kind, kind: payload})

    async def answer(self, message: dict[str, Any], name: str) -> None:
        to = {"to": message["from"]} if "from" in message else {"recipient": message["from_user_id"]}
        read = {"messaging_product": "whatsapp", "status": "read", "message_id": message["id"]}
        await self.graph("messages", json={**read, "typing_indicator": {"type": "text"}})
        await asyncio.sleep(0.3)
        if message["type"] == "text":
            await self.send(to, "text", {"body": f"Hello *{name}*! I am a _scripted_ bot. ~Boring~ ```fast```."})
            buttons = [
                {"type": "reply", "reply": {"id": "yes", "title": "Yes"}},
                {"type": "reply", "reply": {"id": "no", "title": "No"}},
            ]
            question = {"type": "button", "body": {"text": "Want a picture?"}, "action": {"buttons": buttons}}
            await self.send(to, "interactive", question)
        elif message["type"] == "interactive":
            reply = message["interactive"]
            title = reply.get("button_reply", reply.get("list_reply", {}))["title"]
            await self.send(to, "text", {"body": f"You chose {title}. Good choice."})
            form = aiohttp.FormData()
            form.add_field("messaging_product", "whatsapp")
            form.add_field("type", "image/png")
            form.add_field("file", picture(), filename="sunset.png", content_type="image/png")
            uploaded = await self.graph("media", data=form)
            await self.send(to, "image", {"id": uploaded["id"], "caption": "A sunset, just for you"})


@pytest.fixture
async def running() -> AsyncIterator[tuple[Emulator, ScriptedBot]]:
    emulator = Emulator(
        phone_number_id=PNID,
        access_token=TOKEN,
        app_secret=SECRET,
        verified_name="Sunset Bot",
        statuses=StatusPolicy(delay=0.1),
    )
    await emulator.start("127.0.0.1", 0)
    bot = ScriptedBot(emulator)
    await bot.start()
    emulator.webhook_url = bot.url
    yield emulator, bot
    await bot.stop()
    await emulator.stop()


async def test_chatting_with_a_bot_in_the_browser(running: tuple[Emulator, ScriptedBot]) -> None:
    emulator, bot = running
    expect = playwright_api.expect
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1440, "height": 900})
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url}"))
            await page.goto(emulator.base_url)

            # A simulated user starts a chat and says hi.
            await page.click("#new-chat-btn")
            await page.fill("#new-name", "Ana")
            await page.fill("#new-id", "15551234567")
            await page.click("#new-create")
            pane = page.locator('.pane[data-key="15551234567"]')
            await expect(pane).to_be_visible()
            await pane.locator(".text-input").fill("Hi there!")
            await pane.locator(".text-input").press("Enter")

            # The bot's answer shows, with WhatsApp formatting, and the buttons can be tapped.
            greeting = pane.locator(".msg.in", has_text="I am a scripted bot")
            await expect(greeting).to_be_visible(timeout=60_000)
            await expect(greeting.locator("strong")).to_have_text("Ana")
            await expect(greeting.locator("em")).to_have_text("scripted")
            await expect(greeting.locator("s")).to_have_text("Boring")
            await expect(greeting.locator(".mono")).to_have_text("fast")
            yes = pane.locator(".reply-btn", has_text="Yes")
            await expect(yes).to_be_visible()
            # The bot marked the message read: the user's ticks turn blue.
            await expect(pane.locator(".msg.out .ticks.read").first).to_be_visible()
            await yes.click()

            # The tap goes out as the user's reply, and the bot answers it with a text and an image.
            await expect(pane.locator(".msg.out", has_text="Yes")).to_be_visible()
            await expect(pane.locator(".msg.in", has_text="You chose Yes. Good choice.")).to_be_visible(timeout=60_000)
            image = pane.locator(".msg.in img.media")
            await expect(image).to_be_visible(timeout=60_000)
            await page.wait_for_function(
                "() => [...document.querySelectorAll('.msg.in img.media')].some(i => i.complete && i.naturalWidth > 0)"
            )
            await expect(pane.locator(".msg.in", has_text="A sunset, just for you")).to_be_visible()
            # The bot's messages get their blue ticks from read status webhooks.
            await expect(pane.locator(".msg.in .ticks.read").first).to_be_visible()

            # A second, username-only user writes from Python; both chats show side by side.
            bo = emulator.user(user_id="US.13491208655302741918", name="Bo")
            await bo.send_text("Is anyone there?")
            await page.locator(".chat-item", has_text="Bo").click()
            bo_pane = page.locator('.pane[data-key="US.13491208655302741918"]')
            await expect(bo_pane.locator(".reply-btn", has_text="Yes")).to_be_visible(timeout=60_000)
            await expect(page.locator(".pane")).to_have_count(2)
            await page.wait_for_timeout(400)  # let the last ticks settle for the picture

            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "emulator-chat.png"))
            assert problems == []
            assert bot.errors == []
            ana = emulator.user("15551234567")
            assert [r.type for r in ana.replies] == ["text", "interactive", "text", "image"]
            assert ana.typing == [m.message_id for m in ana.sent]
        finally:
            await browser.close()


OGG = b"OggS" + bytes(60)
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + bytes(60)


async def test_every_bot_message_kind_and_the_fault_panel(running: tuple[Emulator, ScriptedBot]) -> None:
    emulator, bot = running
    expect = playwright_api.expect
    ana = emulator.user("15551234567", name="Ana")
    first = await ana.send_text("Show me everything")
    await ana.wait_for_replies(2)
    to = {"to": "15551234567"}
    form = aiohttp.FormData()
    form.add_field("messaging_product", "whatsapp")
    form.add_field("type", "audio/ogg")
    form.add_field("file", OGG, filename="note.ogg", content_type="audio/ogg")
    voice = await bot.graph("media", data=form)
    form = aiohttp.FormData()
    form.add_field("messaging_product", "whatsapp")
    form.add_field("type", "application/pdf")
    form.add_field("file", PDF, filename="invoice.pdf", content_type="application/pdf")
    doc = await bot.graph("media", data=form)
    rows = [{"id": "exp", "title": "Express", "description": "1-2 days"}, {"id": "std", "title": "Standard"}]
    sections = [{"title": "Speeds", "rows": rows}]
    listing = {
        "type": "list",
        "header": {"type": "text", "text": "Shipping"},
        "body": {"text": "How fast?"},
        "footer": {"text": "Prices include tax"},
        "action": {"button": "Options", "sections": sections},
    }
    await bot.send(to, "interactive", listing)
    params = [{"type": "text", "text": "Ana"}, {"type": "text", "text": "#42"}]
    components = [{"type": "body", "parameters": params}]
    await bot.send(to, "template", {"name": "order_update", "language": {"code": "en_US"}, "components": components})
    await bot.send(to, "audio", {"id": voice["id"], "voice": True})
    await bot.send(to, "document", {"id": doc["id"], "filename": "invoice.pdf", "caption": "Your invoice"})
    await bot.send(
        to, "location", {"latitude": 37.4847, "longitude": -122.1477, "name": "Shop", "address": "1 Main St"}
    )
    await bot.send(to, "contacts", [{"name": {"formatted_name": "Bo Li"}, "phones": [{"phone": "+1 555 000 9999"}]}])
    link = {"display_text": "Track", "url": "https://example.com"}
    cta = {"type": "cta_url", "body": {"text": "Track it online"}, "action": {"name": "cta_url", "parameters": link}}
    await bot.send(to, "interactive", cta)
    await bot.send(to, "reaction", {"message_id": first.message_id, "emoji": "👍"})
    assert bot.errors == []

    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1440, "height": 900})
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            await page.goto(emulator.base_url)
            await page.locator(".chat-item", has_text="Ana").click()
            pane = page.locator('.pane[data-key="15551234567"]')
            await expect(pane.locator(".msg.in", has_text="Hi Ana, your order #42 has shipped.")).to_be_visible()
            await expect(pane.locator(".reply-btn", has_text="Stop updates")).to_be_visible()
            await expect(pane.locator(".msg.in audio")).to_have_count(1)
            await expect(pane.locator(".doc", has_text="invoice.pdf")).to_be_visible()
            await expect(pane.locator(".location", has_text="Shop")).to_be_visible()
            await expect(pane.locator(".contact-card", has_text="Bo Li")).to_be_visible()
            await expect(pane.locator(".action-btn", has_text="Track")).to_be_visible()
            await expect(pane.locator(".msg.out .reaction-badge")).to_have_text("👍")

            # A list opens as a sheet; choosing a row sends the real list_reply.
            await pane.locator(".list-btn", has_text="Options").click()
            await page.locator("#list-sheet .row-opt", has_text="Express").click()
            await page.locator("#list-sheet button[value=send]").click()
            await expect(pane.locator(".msg.out", has_text="Express")).to_be_visible()
            await expect(pane.locator(".msg.in", has_text="You chose Express")).to_be_visible(timeout=60_000)
            assert ana.sent[-1].message["interactive"]["list_reply"]["id"] == "exp"

            # The fault panel switches faults on and off, through the same JSON API scripts use.
            await page.click("#faults-btn")
            await page.locator("#faults button", has_text="429 · 130429 for 30 s").click()
            await expect(page.locator("#active-faults")).to_contain_text("Sends fail 100 %")
            assert emulator.faults.to_json()["fail_sends"]["errors"] == [[429, 130429]]
            await pane.locator(".window-badge").click()
            await expect(pane.locator(".window-badge")).to_have_text("window closed")
            assert not ana.window_open
            await pane.evaluate("box => box.querySelector('.messages').scrollTop = 10_000")
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "emulator-kinds.png"))
            await page.locator("#faults button", has_text="Clear all faults").click()
            await expect(page.locator("#active-faults")).to_contain_text("No faults")
            assert emulator.faults.to_json()["fail_sends"] is None
            assert problems == []
        finally:
            await browser.close()


async def box(locator: Any) -> dict[str, float]:
    found = await locator.bounding_box()
    assert found is not None, f"{locator} has no box"
    return found


async def test_the_page_at_desktop_and_phone_widths(running: tuple[Emulator, ScriptedBot]) -> None:
    """Hover tools beside short bubbles, a usable phone width, chats kept across a reload, a refused send
    shown instead of typing dots, "gave up" once the emulator stops retrying, previews that keep underscores."""
    emulator, bot = running
    expect = playwright_api.expect
    ana = emulator.user("15551234567", name="Ana")
    await ana.send_text("Hi")
    await ana.wait_for_replies(2)
    to = {"to": "15551234567"}
    emulator.webhook_retries, emulator.webhook_retry_delay = 1, 0.05  # the page reads them when it loads
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            await page.goto(emulator.base_url)
            await page.locator(".chat-item", has_text="Ana").click()
            pane = page.locator('.pane[data-key="15551234567"]')

            # The hover tools of a short bubble sit right beside it, not 78 % of the pane away.
            short = pane.locator(".row.out", has=page.locator(".msg", has_text="Hi")).first
            await short.hover()
            bubble, tools = await box(short.locator(".msg")), await box(short.locator(".tools"))
            assert 0 <= bubble["x"] - (tools["x"] + tools["width"]) <= 16, (bubble, tools)
            greeting = pane.locator(".row.in", has=page.locator(".msg", has_text="scripted bot")).first
            await greeting.hover()
            bubble, tools = await box(greeting.locator(".msg")), await box(greeting.locator(".tools"))
            assert 0 <= tools["x"] - (bubble["x"] + bubble["width"]) <= 16, (bubble, tools)

            # A chat preview keeps the underscores of an identifier, and drops only real formatting.
            await bot.send(to, "text", {"body": "Call my_helper_fn with *care*"})
            preview = page.locator(".chat-item", has_text="Ana").locator(".ci-last")
            await expect(preview).to_have_text("Call my_helper_fn with care")

            # A send WhatsApp refuses for good replaces the typing dots with the reason.
            read = {"messaging_product": "whatsapp", "status": "read", "message_id": ana.sent[-1].message_id}
            await bot.graph("messages", json={**read, "typing_indicator": {"type": "text"}})
            await expect(pane.locator(".typing-row")).to_be_visible()
            emulator.faults.fail_next(1, http_status=400, code=131026)
            await bot.send(to, "text", {"body": "This never arrives"})
            bot.errors.clear()
            await expect(pane.locator(".notice-chip")).to_contain_text("131026")
            await expect(pane.locator(".typing-row")).to_have_count(0)

            # The user's message to a bot that is down: "retries" while the emulator retries, then "gave up".
            emulator.webhook_url, alive = "http://127.0.0.1:9/whatsapp/webhook", emulator.webhook_url
            await pane.locator(".text-input").fill("anyone?")
            await pane.locator(".text-input").press("Enter")
            await expect(pane.locator(".msg.out", has_text="anyone?").locator(".error-line")).to_contain_text(
                "WhatsApp gave up after 2 attempts", timeout=10_000
            )
            emulator.webhook_url = alive

            # A reload keeps the open chat.
            await page.reload()
            await expect(pane).to_be_visible()
            await expect(pane.locator(".notice-chip")).to_have_count(0)  # notices are the page's own, not state
            await pane.evaluate("p => p.querySelector('.messages').scrollTop = 10_000")
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "emulator-1280.png"))

            # At 400 px, a phone: the open chat takes the whole width; closing it shows the chat list.
            await page.set_viewport_size({"width": 400, "height": 800})
            await expect(pane).to_be_visible()
            assert (await box(pane))["width"] >= 380
            assert (await box(pane.locator(".text-input")))["width"] >= 200, "room to type"
            await pane.evaluate("p => p.querySelector('.messages').scrollTop = 10_000")
            await page.screenshot(path=str(ARTIFACTS / "emulator-400.png"))
            await pane.locator(".pane-close").click()
            assert (await box(page.locator("#sidebar")))["width"] >= 380
            await page.screenshot(path=str(ARTIFACTS / "emulator-400-chats.png"))
            await page.locator(".chat-item", has_text="Ana").click()
            assert (await box(pane))["width"] >= 380
            assert problems == []
        finally:
            await browser.close()
