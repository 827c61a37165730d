"""Which model answers: strings, Model objects, OpenAI-compatible endpoints, and the offline model."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from fakes.openai_api import FakeOpenAI
from whatsagent import Agent
from whatsagent.agents.models import resolve_model
from whatsagent.agents.offline import LABEL
from whatsagent.testing import BotHarness

KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY", "GROQ_API_KEY", "MISTRAL_API_KEY")


@pytest.fixture
def no_keys(monkeypatch):
    for key in (*KEYS, "WHATSAGENT_MODEL"):
        monkeypatch.delenv(key, raising=False)


def test_model_strings_stay_strings_until_the_first_turn(no_keys):
    resolved = resolve_model("anthropic:claude-sonnet-4-5")
    assert resolved.model == "anthropic:claude-sonnet-4-5"
    assert resolved.capabilities.images, "Claude sees images"
    assert resolve_model("google-gla:gemini-2.5-flash").model == "google:gemini-2.5-flash", "old name, new provider"
    assert resolve_model("openai:gpt-4o").capabilities.audio == (), "the Responses API cannot take audio"
    assert resolve_model("openai-chat:gpt-4o-audio-preview").capabilities.audio == ("audio/wav", "audio/mpeg")


def test_a_string_without_provider_is_refused_with_the_fix(no_keys):
    with pytest.raises(ValueError, match="provider prefix"):
        resolve_model("gpt-4o")


def test_an_openai_compatible_server_is_a_base_url_and_a_model_name(no_keys):
    resolved = resolve_model("llama3.2-vision", base_url="http://localhost:11434/v1")
    assert isinstance(resolved.model, OpenAIChatModel)
    assert resolved.model.base_url.startswith("http://localhost:11434/v1")
    assert resolved.provider == "openai-compatible"
    assert resolved.capabilities.images, "a vision model on Ollama gets images"
    assert not resolve_model("llama3.2", base_url="http://localhost:11434/v1").capabilities.images


def test_with_no_model_a_key_in_the_environment_picks_one(no_keys, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    assert resolve_model(None).model == "anthropic:claude-sonnet-4-5"
    monkeypatch.setenv("WHATSAGENT_MODEL", "groq:llama-3.3-70b-versatile")
    assert resolve_model(None).model == "groq:llama-3.3-70b-versatile"


def test_with_no_model_and_no_key_the_offline_model_answers(no_keys):
    resolved = resolve_model(None)
    assert resolved.offline and "offline" in resolved.label
    assert Agent().offline


def test_importing_whatsagent_loads_no_provider_sdk():
    code = (
        "import sys, whatsagent, whatsagent.app, whatsagent.tools;"
        "from whatsagent import Agent; Agent(model='anthropic:claude-sonnet-4-5').resolved;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('openai', 'anthropic', 'google', 'groq')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


async def test_the_offline_model_echoes_text_media_and_buttons_and_says_what_it_is(tmp_path, no_keys):
    async with BotHarness(Agent(), tmp_path) as bot:
        ana = bot.user("15551234567", name="Ana")
        await ana.send_text("hello there")
        [reply] = await ana.wait_for_replies(1)
        assert reply.text.startswith(LABEL)
        assert "hello there" in reply.text and "OPENAI_API_KEY" in reply.text

        png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 2000
        await ana.send_image(png, mime_type="image/png", caption="my cat")
        await ana.wait_for_replies(2)
        echoed = ana.replies[1].text
        assert "image/png" in echoed and "2.0 KB" in echoed and "my cat" in echoed

        await ana.send_message(
            "interactive", {"type": "button_reply", "button_reply": {"id": "yes-1", "title": "Yes please"}}
        )
        await ana.wait_for_replies(3)
        assert "Yes please" in ana.replies[2].text and "yes-1" in ana.replies[2].text
        assert all("offline mode" in r.text for r in ana.replies), "labelled in every answer"


async def test_a_pydantic_ai_model_object_runs_the_real_openai_code_path(tmp_path):
    async with FakeOpenAI(api_key="sk-fake") as fake:
        fake.reply("Hello from the fake.")
        model = OpenAIChatModel("gpt-4o", provider=OpenAIProvider(base_url=fake.base_url, api_key="sk-fake"))
        async with BotHarness(Agent(model=model, instructions="Be brief."), tmp_path) as bot:
            ana = bot.user("15551234567")
            await ana.send_text("hi")
            [reply] = await ana.wait_for_replies(1)
        assert reply.text == "Hello from the fake."
        request = fake.last_model_request
        assert request["model"] == "gpt-4o"
        assert request["messages"][0] == {"role": "system", "content": "Be brief."}


async def test_base_url_and_key_reach_an_openai_compatible_server(tmp_path):
    async with FakeOpenAI(api_key="sk-local") as fake:
        fake.reply("local answer")
        agent = Agent(model="qwen2.5", base_url=fake.base_url, api_key="sk-local")
        async with BotHarness(agent, tmp_path) as bot:
            ana = bot.user("15551234567")
            await ana.send_text("hi")
            [reply] = await ana.wait_for_replies(1)
        assert reply.text == "local answer"
        assert fake.last_model_request["model"] == "qwen2.5"
