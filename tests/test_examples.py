"""The cookbook examples load as documented and serve against the emulator."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from whatsagent.testing import BotHarness

EXAMPLES = Path(__file__).parent.parent / "examples"
NAMES = ["basic", "media", "user_memory", "reasoning", "image_generation", "interactive", "multiple_numbers"]
KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY", "GROQ_API_KEY", "MISTRAL_API_KEY")


@pytest.fixture
def emulator_env(monkeypatch, tmp_path):
    for key in (*KEYS, "WHATSAGENT_MODEL"):
        monkeypatch.delenv(key, raising=False)
    for name, value in {
        "WHATSAPP_API_BASE_URL": "http://127.0.0.1:8001",
        "WHATSAPP_ACCESS_TOKEN": "emulator-token",
        "WHATSAPP_PHONE_NUMBER_ID": "100200300",
        "WHATSAPP_VERIFY_TOKEN": "dev",
        "WHATSAPP_APP_SECRET": "emulator-app-secret",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("name", NAMES)
def test_each_example_builds_its_app(emulator_env, name):
    namespace = runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name="example")
    assert namespace["app"] is namespace["agent_os"].get_app()
    assert "whatsagent emulator" in (namespace["__doc__"] or ""), "says how to run it against the emulator"


def test_multiple_numbers_serves_two_channels_with_their_own_paths(emulator_env):
    namespace = runpy.run_path(str(EXAMPLES / "multiple_numbers.py"), run_name="example")
    channels = namespace["agent_os"].channels
    assert [(c.name, c.prefix, c.phone_number_id) for c in channels] == [
        ("sales", "/sales", "111"),
        ("support", "/support", "222"),
    ]
    assert namespace["support"].members == [namespace["billing"], namespace["tech"]]


async def test_the_basic_example_answers_offline_through_the_emulator(emulator_env, tmp_path):
    namespace = runpy.run_path(str(EXAMPLES / "basic.py"), run_name="example")
    async with BotHarness(namespace["assistant"], tmp_path) as bot:
        ana = bot.user("15551234567")
        await ana.send_text("hello")
        [reply] = await ana.wait_for_replies(1)
    assert "offline mode" in reply.text and "hello" in reply.text
