"""The operator console in a real headless Chromium: a conversation appears live, a turn's details show
the model call, taking over stops the bot, the operator's reply reaches the user, handing back resumes
the bot, and the agent's handoff shows as "waiting" with a notification sent. Screenshots land in
test-artifacts/ (the README shows docs/console.png)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from whatsagent import Agent
from whatsagent.handoff import Handoff
from whatsagent.testing import BotHarness, scripted_model, tool_call
from whatsagent.tools.handoff import HandoffTools

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
TOKEN = "console-token"

if not os.path.exists(CHROMIUM) and not os.environ.get("WHATSAGENT_REQUIRE_BROWSER"):
    pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium", allow_module_level=True)

playwright_api = pytest.importorskip("playwright.async_api")
# A page on a loaded machine may take its time: the wait is a hang guard, not a speed check.
playwright_api.expect.set_options(timeout=60_000)


def echo_model() -> FunctionModel:
    """A model that answers 'bot: <what the user just said>'."""

    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        last = messages[-1]
        said = ""
        if isinstance(last, ModelRequest):
            said = " ".join(str(p.content) for p in last.parts if isinstance(p, UserPromptPart))
        return ModelResponse(parts=[TextPart(f"bot: {said}")])

    return FunctionModel(answer, model_name="echo-model")


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """Debian's Chromium, headless, closed afterwards."""
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


async def open_console(browser, bot: BotHarness, token: str = TOKEN):
    page = await browser.new_page(viewport={"width": 1440, "height": 900})
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    await page.goto(bot.url + "/console")
    await page.fill("#token", token)
    await page.fill("#name", "Rosa")
    await page.click("#login button[type=submit]")
    return page, problems


async def test_watching_taking_over_replying_and_handing_back_in_the_console(tmp_path):
    expect = playwright_api.expect
    ARTIFACTS.mkdir(exist_ok=True)
    async with BotHarness(Agent(model=echo_model()), tmp_path, api_token=TOKEN) as bot:
        async with chromium() as browser:
            # A wrong token is refused (401) and the console stays closed.
            page, problems = await open_console(browser, bot, token="not-the-token")
            await expect(page.locator("#login-error")).to_contain_text("401")
            await expect(page.locator("#app")).to_be_hidden()
            await page.close()

            page, problems = await open_console(browser, bot)
            await expect(page.locator("#live")).to_have_text("live")

            # A conversation appears live, with the number masked.
            ana = bot.user("15551234567", name="Ana")
            await ana.send_text("hi")
            await ana.wait_for_replies(1)
            row = page.locator("#list li", has_text="Ana")
            await expect(row).to_be_visible()
            await expect(row).to_contain_text("…4567")
            await expect(row).not_to_contain_text("15551234567")

            # The transcript, and the turn's details with the model call.
            await row.click()
            await expect(page.locator(".transcript .msg.out", has_text="bot: hi")).to_be_visible()
            turn = page.locator("details.turn").first
            await turn.locator("summary").click()
            await expect(turn.locator(".span", has_text="chat echo-model")).to_be_visible()

            # Taking over stops the bot: a message sent now gets no bot answer.
            await page.click("#takeover")
            await expect(page.locator("#conversation .top #mode")).to_have_text("human")
            await ana.send_text("is anyone there?")
            await expect(page.locator(".transcript .msg.in", has_text="is anyone there?")).to_be_visible()
            await bot.idle()
            assert [r.text for r in ana.replies] == ["bot: hi"]

            # The operator's reply reaches the user.
            await page.fill("#reply", "Hi Ana, Rosa here. How can I help?")
            await page.click("#send")
            await ana.wait_for_replies(2)
            assert ana.last_reply.text == "Hi Ana, Rosa here. How can I help?"
            await expect(page.locator(".transcript .msg.out.operator")).to_contain_text("Rosa here")
            await page.screenshot(path=str(ARTIFACTS / "console-taken-over.png"))

            # Handing back resumes the bot.
            await page.click("#handback")
            await expect(page.locator("#conversation .top #mode")).to_have_text("bot")
            await ana.send_text("thanks")
            await ana.wait_for_replies(3)
            assert ana.last_reply.text == "bot: thanks"
            await expect(page.locator(".transcript .msg.out", has_text="bot: thanks")).to_be_visible()
            await expect(page.locator("details.turn[open]")).to_have_count(1)  # kept open across live updates
            await page.screenshot(path=str(ARTIFACTS / "console.png"))
            assert problems == []
    async with aiohttp.ClientSession() as http, BotHarness(Agent(model=echo_model()), tmp_path / "off") as bot:
        async with http.get(bot.url + "/console") as resp:
            assert resp.status == 404  # no operator token, no console


async def test_the_agents_handoff_shows_waiting_and_notifies(tmp_path):
    from tests.test_handoff import Hook  # a loopback receiver

    expect = playwright_api.expect
    ARTIFACTS.mkdir(exist_ok=True)
    agent = Agent(
        model=scripted_model(tool_call("handoff", reason="wants a refund"), "", repeat_last=True),
        tools=[HandoffTools()],
    )
    async with Hook() as hook:
        policy = Handoff(message="A colleague will answer you here.", notify_url=hook.url)
        async with BotHarness(agent, tmp_path, api_token=TOKEN, handoff=policy) as bot:
            async with chromium() as browser:
                page, problems = await open_console(browser, bot)
                await expect(page.locator("#live")).to_have_text("live")
                ben = bot.user("15557654321", name="Ben")
                await ben.send_text("I want my money back")
                [told] = await ben.wait_for_replies(1)
                assert told.text == "A colleague will answer you here."
                row = page.locator("#list li", has_text="Ben")
                await expect(row.locator(".badge")).to_have_text("waiting for a human")
                note = await asyncio.wait_for(hook.received.get(), 60)
                assert note["reason"] == "wants a refund" and note["event"] == "conversation.waiting"
                await row.click()
                await expect(page.locator("#conversation .top")).to_contain_text("wants a refund")
                await page.screenshot(path=str(ARTIFACTS / "console-waiting.png"))
                assert problems == []


async def test_the_demo_console_is_one_click_from_the_chat_page(tmp_path, monkeypatch):
    from whatsagent.demo import start_demo

    monkeypatch.delenv("WHATSAGENT_API_TOKEN", raising=False)
    expect = playwright_api.expect
    demo = await start_demo("127.0.0.1", 0, f"sqlite:///{tmp_path / 'demo.db'}", page_port=0, environ={})
    try:
        ana = demo.emulator.user("15551234567", name="Ana")
        await ana.send_text("human")  # a trigger word in the demo: Ana asks for a person
        [told] = await ana.wait_for_replies(1)
        assert "person" in (told.text or "")
        async with chromium() as browser:
            context = await browser.new_context(viewport={"width": 1280, "height": 800})
            chat = await context.new_page()
            await chat.goto(demo.page_url)
            link = chat.locator("#console-link")
            await expect(link).to_be_visible()
            async with context.expect_page() as opened:
                await link.click()
            console = await opened.value
            # The demo fills the token in for this machine: the console opens signed in, no token typed.
            await expect(console.locator("#list li", has_text="Ana")).to_be_visible()
            await expect(console.locator("#list li .badge")).to_have_text("waiting for a human")
            assert "token" not in console.url
            await console.screenshot(path=str(ARTIFACTS / "console-demo.png"))
    finally:
        await demo.stop()


@pytest.mark.timeout(600)
async def test_the_console_on_a_web_process_with_two_workers_on_postgresql(postgres_url, tmp_path):
    from scale_out_cluster import Cluster

    expect = playwright_api.expect
    async with Cluster(postgres_url, tmp_path, webs=1, workers=2, env={"WHATSAGENT_API_TOKEN": TOKEN}) as cluster:
        web = cluster.web_processes[0]
        async with chromium() as browser:
            page = await browser.new_page(viewport={"width": 1440, "height": 900})
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            await page.goto(web.url + "/console")
            await page.fill("#token", TOKEN)
            await page.click("#login button[type=submit]")
            await expect(page.locator("#live")).to_have_text("live")

            ana = cluster.emulator.user("15551234567", name="Ana")
            await ana.send_text("hi")
            await ana.wait_for_replies(1)
            row = page.locator("#list li", has_text="Ana")
            await expect(row).to_be_visible()
            await row.click()
            # The worker's answer shows live on the web process's console (LISTEN/NOTIFY).
            await expect(page.locator(".transcript .msg.out", has_text="echo: hi")).to_be_visible()

            await page.click("#takeover")
            await expect(page.locator("#conversation .top #mode")).to_have_text("human")
            await ana.send_text("still there?")
            await expect(page.locator(".transcript .msg.in", has_text="still there?")).to_be_visible()
            await cluster.wait_idle(postgres_url)
            assert [r.text for r in ana.replies] == ["echo: hi"]  # neither worker answered

            await page.fill("#reply", "Yes, Rosa here.")
            await page.click("#send")
            await ana.wait_for_replies(2)
            assert ana.last_reply.text == "Yes, Rosa here."
            await expect(page.locator(".transcript .msg.out.operator")).to_contain_text("Rosa here")

            await page.click("#handback")
            await expect(page.locator("#conversation .top #mode")).to_have_text("bot", timeout=60_000)
            await ana.send_text("bye")
            await ana.wait_for_replies(3)
            assert ana.last_reply.text == "echo: bye"
            await expect(page.locator(".transcript .msg.out", has_text="echo: bye")).to_be_visible()
            await page.screenshot(path=str(ARTIFACTS / "console-postgres.png"))
            assert problems == []


def opening_hours(day: str) -> str:
    """Opening hours on a day."""
    return f"{day}: 9-17"


async def test_a_step_that_went_wrong_shows_its_error_in_the_turn_details(tmp_path):
    """A tool call the model got wrong is marked in the turn's details with what was wrong, never with
    the arguments it sent."""
    expect = playwright_api.expect
    agent = Agent(
        model=scripted_model(tool_call("opening_hours", weekday="secret-value"), "We open at 9."),
        tools=[opening_hours],
    )
    async with BotHarness(agent, tmp_path, api_token=TOKEN) as bot:
        async with chromium() as browser:
            page, problems = await open_console(browser, bot)
            await expect(page.locator("#live")).to_have_text("live")
            ana = bot.user("15551234567", name="Ana")
            await ana.send_text("when do you open?")
            await ana.wait_for_replies(1)
            await page.locator("#list li", has_text="Ana").click()
            turn = page.locator("details.turn").first
            await turn.locator("summary").click()
            failed = turn.locator(".span.failed")
            await expect(failed).to_have_count(1)
            await expect(failed).to_contain_text("execute_tool opening_hours")
            await expect(turn.locator(".span-error")).to_have_text("· invalid arguments: 2 validation errors")
            await expect(turn.locator(".span:not(.failed)")).to_have_count(3)  # the run and two model calls
            await expect(turn).not_to_contain_text("secret-value")
            assert problems == []
