"""What a first-time user gets without asking: voice notes transcribed by the model's own provider,
media capabilities by model name whatever the base URL, and a missing key named at start-up."""

from __future__ import annotations

import logging

import pytest

from fakes import media_files
from fakes.openai_api import FakeOpenAI
from whatsagent import Agent, AgentOS
from whatsagent.agents.models import resolve_model
from whatsagent.channels import CloudAPI
from whatsagent.errors import ConfigurationError
from whatsagent.media.capabilities import Capabilities
from whatsagent.testing import BotHarness


@pytest.fixture
async def openai():
    async with FakeOpenAI(api_key="test") as fake:
        yield fake


async def test_a_voice_note_is_transcribed_by_default_with_an_openai_model(tmp_path, openai, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    monkeypatch.setenv("OPENAI_BASE_URL", openai.base_url)
    openai.transcript("see you at five")
    openai.reply("Five it is.")
    async with BotHarness(Agent(model="openai:gpt-4o"), tmp_path) as bot:
        ana = bot.user("15551234567")
        await ana.send_audio(media_files.voice_note())
        [reply] = await ana.wait_for_replies(1)
    assert reply.text == "Five it is."
    assert len(openai.requests_to("/v1/audio/transcriptions")) == 1
    seen = str(openai.last_model_request)
    assert "Transcript of the recording: see you at five" in seen
    assert "cannot listen" not in seen


async def test_a_model_that_cannot_hear_and_has_no_transcriber_is_warned_about_at_start_up(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
    os = AgentOS(
        agents=[Agent(model="anthropic:claude-sonnet-4-5")],
        channels=[CloudAPI(access_token="t", phone_number_id="1", app_secret="s", verify_token="v")],
        database=f"sqlite:///{tmp_path}/x.db",
    )
    with caplog.at_level(logging.WARNING):
        os.validate()
    [warning] = [r.getMessage() for r in caplog.records if "voice notes" in r.getMessage()]
    assert "transcriber=" in warning and "anthropic:claude-sonnet-4-5" in warning


def test_capabilities_follow_the_model_name_whatever_the_base_url():
    proxy = "http://127.0.0.1:9/v1"
    assert resolve_model("gpt-4o-audio-preview", base_url=proxy).capabilities.audio, "hears behind a proxy"
    assert "application/pdf" in resolve_model("gpt-4o", base_url=proxy).capabilities.documents
    assert resolve_model("openai:gpt-4o", base_url=proxy).capabilities.images
    local = resolve_model("llama3.2", base_url="http://localhost:11434/v1").capabilities
    assert not local.images and not local.audio, "an unknown local model gets descriptions"
    mine = Capabilities(images=("image/png",))
    assert resolve_model("llama3.2", base_url=proxy, capabilities=mine).capabilities is mine, "overridable"


async def test_an_openai_audio_model_behind_a_base_url_hears_the_voice_note(tmp_path, openai):
    openai.reply("I heard you.")
    agent = Agent(model="gpt-4o-audio-preview", base_url=openai.base_url, api_key="test")
    async with BotHarness(agent, tmp_path) as bot:
        ana = bot.user("15551234567")
        await ana.send_audio(media_files.voice_note())
        await ana.wait_for_replies(1)
    kinds = [p["type"] for p in openai.content_parts()]
    assert "input_audio" in kinds
    assert openai.requests_to("/v1/audio/transcriptions") == []


def test_a_missing_provider_key_is_one_line_at_start_up(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    os = AgentOS(
        agents=[Agent(model="openai:gpt-4o")],
        channels=[CloudAPI(access_token="t", phone_number_id="1", app_secret="s", verify_token="v")],
        database=f"sqlite:///{tmp_path}/x.db",
    )
    os.get_app()  # importing an app never fails on a key: serving it does
    with pytest.raises(ConfigurationError) as caught:
        os.validate()
    assert str(caught.value) == (
        "agent 'Assistant' uses openai:gpt-4o but OPENAI_API_KEY is not set: export it, or pass api_key=... to Agent"
    )


def test_an_unusable_database_path_is_one_line_at_start_up(tmp_path):
    os = AgentOS(
        agents=[lambda_agent],
        channels=[CloudAPI(access_token="t", phone_number_id="1", app_secret="s", verify_token="v")],
        database=f"sqlite:///{tmp_path}/a-file/dir/x.db",
    )
    (tmp_path / "a-file").write_text("not a directory")
    with pytest.raises(ConfigurationError) as caught:
        os.validate()
    assert str(caught.value) == (
        f"database sqlite:///{tmp_path}/a-file/dir/x.db: {tmp_path}/a-file is a file, "
        f"so {tmp_path}/a-file/dir cannot be created"
    )


async def lambda_agent(ctx) -> str:
    return "hi"
