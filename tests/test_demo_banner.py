"""The demo's banner tells the truth about the model the bot runs, and knows every provider key."""

from __future__ import annotations

import pytest

from whatsagent.agents.offline import LABEL
from whatsagent.demo import DemoAgent, banner, model_from_environment, start_demo

KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY", "GROQ_API_KEY", "MISTRAL_API_KEY")


@pytest.fixture(autouse=True)
def no_keys(monkeypatch):
    for key in (*KEYS, "WHATSAGENT_MODEL", "WHATSAGENT_DEMO_MODEL"):
        monkeypatch.delenv(key, raising=False)


def test_every_provider_key_picks_its_model():
    assert model_from_environment({"GOOGLE_API_KEY": "k"}) == "google:gemini-2.5-flash"
    assert model_from_environment({"GEMINI_API_KEY": "k"}) == "google:gemini-2.5-flash"
    assert model_from_environment({"MISTRAL_API_KEY": "k"}) == "mistral:mistral-small-latest"
    assert model_from_environment({"WHATSAGENT_MODEL": "groq:llama-3.1-8b-instant"}) == "groq:llama-3.1-8b-instant"


async def test_with_a_google_key_the_banner_names_the_real_model(tmp_path, monkeypatch):
    monkeypatch.setenv("GOOGLE_API_KEY", "k")
    demo = await start_demo("127.0.0.1", 0, f"sqlite:///{tmp_path / 'demo.db'}", page_port=0)
    try:
        text = banner(demo)
    finally:
        await demo.stop()
    assert "a real assistant on google:gemini-2.5-flash" in text
    assert "offline" not in text


async def test_the_offline_banner_lists_every_key_and_the_offline_bot_stays_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-used")  # Agent(model=None) would pick a real model from it
    demo = await start_demo("127.0.0.1", 0, f"sqlite:///{tmp_path / 'demo.db'}", page_port=0, agent=DemoAgent())
    try:
        text = banner(demo)
        ana = demo.emulator.user("15551234567")
        await ana.send_text("hello")
        [reply] = await ana.wait_for_replies(1, timeout=15)
    finally:
        await demo.stop()
    assert "offline model" in text
    assert all(key in text for key in KEYS) and "WHATSAGENT_MODEL" in text
    assert reply.text.startswith(LABEL), "the demo bot never calls a model behind the banner's back"
