"""The demo: one command gives a bot and a chat page; the offline bot says what it is and echoes."""

from __future__ import annotations

import aiohttp
import pytest

from whatsagent.agents.offline import LABEL
from whatsagent.demo import DemoAgent, banner, demo_agent, model_from_environment, start_demo


@pytest.fixture
async def demo(tmp_path, monkeypatch):
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GROQ_API_KEY", "WHATSAGENT_DEMO_MODEL"):
        monkeypatch.delenv(key, raising=False)
    running = await start_demo("127.0.0.1", 0, f"sqlite:///{tmp_path / 'demo.db'}", page_port=0)
    try:
        yield running
    finally:
        await running.stop()


async def test_a_message_typed_on_the_chat_page_gets_the_offline_answer(demo):
    async with aiohttp.ClientSession() as http:
        page = await http.get(demo.page_url)
        assert page.status == 200
        assert "text/html" in page.headers["Content-Type"]
        created = await http.post(f"{demo.emulator.base_url}/api/users", json={"name": "Ana", "wa_id": "15551234567"})
        assert created.status == 200, await created.text()
        key = (await created.json())["key"]
        sent = await http.post(
            f"{demo.emulator.base_url}/api/users/{key}/messages", json={"type": "text", "text": "hello demo"}
        )
        assert sent.status == 200, await sent.text()
    [reply] = await demo.emulator.user(key).wait_for_replies(1, timeout=15)
    assert reply.text.startswith(LABEL)
    assert "You sent: hello demo" in reply.text
    assert "menu" in reply.text


async def test_menu_offers_buttons_and_a_tap_leads_to_a_list(demo):
    ana = demo.emulator.user("15551234567", name="Ana")
    await ana.send_text("menu")
    [menu] = await ana.wait_for_replies(1)
    assert menu.interactive_type == "button"
    assert [t.title for t in menu.tappables] == ["A list", "A reaction", "Formatting"]
    await ana.tap("A list")
    [_, listing] = await ana.wait_for_replies(2)
    assert listing.interactive_type == "list"
    await ana.tap("A location")
    [*_, pin] = await ana.wait_for_replies(3)
    assert pin.type == "location"


async def test_the_reaction_button_reacts_to_the_tap(demo):
    ana = demo.emulator.user("15551234567", name="Ana")
    await ana.send_text("Menu")
    await ana.wait_for_replies(1)
    tap = await ana.tap("A reaction")
    replies = await ana.wait_for_replies(3)
    kinds = sorted(r.type for r in replies[1:])
    assert kinds == ["reaction", "text"]
    [reaction] = [r for r in replies if r.type == "reaction"]
    assert reaction.body["reaction"]["message_id"] == tap.message_id


def test_the_banner_gives_the_page_url_and_says_the_bot_is_offline(demo):
    text = banner(demo)
    assert demo.page_url in text
    assert "offline" in text


def test_a_model_key_in_the_environment_picks_a_real_assistant(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert model_from_environment({}) is None
    assert model_from_environment({"OPENAI_API_KEY": "sk-test"}) == "openai:gpt-4o-mini"
    assert model_from_environment({"OPENAI_API_KEY": "sk", "WHATSAGENT_DEMO_MODEL": "groq:x"}) == "groq:x"
    agent, model = demo_agent()
    assert model == "openai:gpt-4o-mini"
    assert not isinstance(agent, DemoAgent)


def test_a_model_whose_provider_is_not_installed_falls_back_to_offline():
    agent, model = demo_agent({"WHATSAGENT_DEMO_MODEL": "nonexistent-provider:model"})
    assert model is None
    assert isinstance(agent, DemoAgent)
