"""The offline model's echo: what the user sent, never the media store's internal keys, in as few
WhatsApp messages as the text needs."""

from __future__ import annotations

import re

import pytest

from fakes import media_files
from whatsagent import Agent
from whatsagent.agents.offline import LABEL
from whatsagent.testing import BotHarness

KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY", "GROQ_API_KEY", "MISTRAL_API_KEY")


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    for key in (*KEYS, "WHATSAGENT_MODEL"):
        monkeypatch.delenv(key, raising=False)


async def test_an_echoed_picture_shows_no_internal_media_key(tmp_path):
    async with BotHarness(Agent(), tmp_path) as bot:
        ana = bot.user("15551234567")
        await ana.send_image(media_files.image_bytes("JPEG", 64, 48), mime_type="image/jpeg", caption="my cat")
        [reply] = await ana.wait_for_replies(1)
    assert reply.text.startswith(LABEL) and "my cat" in reply.text and "image/jpeg" in reply.text
    assert "media key" not in reply.text
    assert not re.search(r"[0-9a-f]{32}", reply.text), reply.text


async def test_a_5000_character_message_is_echoed_in_two_parts(tmp_path):
    words = ("The quick brown fox jumps over the lazy dog. " * 120)[:5000]
    async with BotHarness(Agent(), tmp_path) as bot:
        ana = bot.user("15551234567")
        await ana.send_text(words)
        first, second = await ana.wait_for_replies(2)
        await bot.emulator.settle()
    assert len(ana.replies) == 2
    assert first.text.startswith(LABEL)
    assert words.split()[-1] in second.text
