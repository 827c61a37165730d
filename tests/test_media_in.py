"""Media users send reach the model in a form its provider takes; history keeps only media keys."""

from __future__ import annotations

import base64
import sqlite3

from pydantic_ai.messages import BinaryContent, ModelMessage, ModelRequest, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from fakes import media_files
from fakes.openai_api import FakeOpenAI
from whatsagent import Agent
from whatsagent.media import OpenAITranscriber
from whatsagent.testing import BotHarness
from whatsagent.turns import TurnPolicy


def chat_model(fake: FakeOpenAI, name: str = "gpt-4o") -> OpenAIChatModel:
    return OpenAIChatModel(name, provider=OpenAIProvider(base_url=fake.base_url, api_key="sk-fake"))


class Seen:
    """A FunctionModel recording the user prompt content of every request."""

    def __init__(self) -> None:
        self.prompts: list[list[object]] = []
        self.model = FunctionModel(self._answer)

    def _answer(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        last = messages[-1]
        assert isinstance(last, ModelRequest)
        content = [p.content for p in last.parts if isinstance(p, UserPromptPart)][-1]
        self.prompts.append(content if isinstance(content, list) else [content])
        return ModelResponse(parts=[TextPart("ok")])


async def test_an_image_in_reaches_the_model_as_the_image_bytes(tmp_path):
    photo = media_files.image_bytes("JPEG", 200, 120)
    async with FakeOpenAI() as fake:
        fake.reply("A yellow circle.")
        async with BotHarness(Agent(model=chat_model(fake)), tmp_path) as bot:
            ana = bot.user("15551234567")
            await ana.send_image(photo, mime_type="image/jpeg", caption="what is this?")
            [reply] = await ana.wait_for_replies(1)
        assert reply.text == "A yellow circle."
        parts = fake.content_parts()
        (image,) = [p for p in parts if p["type"] == "image_url"]
        header, data = image["image_url"]["url"].split(",", 1)
        assert header == "data:image/jpeg;base64"
        assert base64.b64decode(data) == photo, "the very bytes the user sent"
        text = " ".join(p["text"] for p in parts if p["type"] == "text")
        assert "what is this?" in text


async def test_a_voice_note_reaches_an_audio_model_as_wav(tmp_path):
    voice = media_files.voice_note(1.0)
    async with FakeOpenAI() as fake:
        fake.reply("I heard you.")
        agent = Agent(model=chat_model(fake, "gpt-4o-audio-preview"))
        async with BotHarness(agent, tmp_path) as bot:
            ana = bot.user("15551234567")
            await ana.send_audio(voice, voice=True)
            await ana.wait_for_replies(1)
        (audio,) = [p for p in fake.content_parts() if p["type"] == "input_audio"]
        assert audio["input_audio"]["format"] == "wav", "OpenAI refuses OGG/Opus: converted to WAV"
        assert base64.b64decode(audio["input_audio"]["data"])[:4] == b"RIFF"


async def test_a_voice_note_to_a_model_that_cannot_hear_is_transcribed(tmp_path):
    async with FakeOpenAI() as fake:
        fake.transcript("please book a table for two")
        fake.reply("Booked.")
        agent = Agent(
            model=chat_model(fake, "gpt-4o"), transcriber=OpenAITranscriber(api_key="sk-fake", base_url=fake.base_url)
        )
        async with BotHarness(agent, tmp_path) as bot:
            ana = bot.user("15551234567")
            await ana.send_audio(media_files.voice_note(0.5), voice=True)
            await ana.wait_for_replies(1)
        text = " ".join(p.get("text", "") for p in fake.content_parts())
        assert "Transcript of the recording: please book a table for two" in text
        assert not [p for p in fake.content_parts() if p["type"] == "input_audio"]


async def test_a_kind_the_model_cannot_take_becomes_words_not_an_error(tmp_path):
    async with FakeOpenAI() as fake:
        fake.reply("Thanks for the video.")
        async with BotHarness(Agent(model=chat_model(fake)), tmp_path) as bot:
            ana = bot.user("15551234567")
            await ana.send_video(media_files.video(seconds=0.5), caption="look")
            [reply] = await ana.wait_for_replies(1)
        assert reply.text == "Thanks for the video."
        text = " ".join(p.get("text", "") for p in fake.content_parts())
        assert "sent a video" in text and "cannot watch video" in text


async def test_history_keeps_media_keys_never_bytes(tmp_path):
    seen = Seen()
    photo = media_files.image_bytes("PNG", 64, 64)
    async with BotHarness(Agent(model=seen.model), tmp_path) as bot:
        ana = bot.user("15551234567")
        await ana.send_image(photo, mime_type="image/png")
        await ana.wait_for_replies(1)
        await ana.send_text("and now?")
        await ana.wait_for_replies(2)
    assert any(isinstance(c, BinaryContent) and c.data == photo for c in seen.prompts[0])
    rows = sqlite3.connect(tmp_path / "whatsagent.db").execute("SELECT messages FROM history").fetchall()
    stored = " ".join(r[0] for r in rows)
    assert "in media store:" in stored
    assert base64.b64encode(photo).decode()[:40] not in stored
    assert len(stored) < 5000
    assert (tmp_path / "whatsagent-media").is_dir()


async def test_a_medium_over_the_size_cap_is_described_not_downloaded(tmp_path):
    seen = Seen()
    policy = TurnPolicy(max_media_bytes=1000)
    async with BotHarness(Agent(model=seen.model), tmp_path, turn_policy=policy) as bot:
        ana = bot.user("15551234567")
        await ana.send_document(media_files.pdf("x" * 400) + b" " * 2000, "big.pdf")
        await ana.wait_for_replies(1)
    (text,) = seen.prompts[0]
    assert "big.pdf" in text and "could not be downloaded" in text and "1000" in text


async def test_location_contacts_buttons_reactions_and_quotes_read_as_context(tmp_path):
    seen = Seen()
    async with BotHarness(Agent(model=seen.model), tmp_path) as bot:
        ana = bot.user("15551234567", name="Ana")
        first = await ana.send_text("remember the blue one")
        await ana.wait_for_replies(1)
        await ana.send_location(52.52, 13.405, name="Alexanderplatz", address="Berlin")
        await ana.wait_for_replies(2)
        await ana.send_contacts([("Bo Berg", "+46 70 123 45 67")])
        await ana.wait_for_replies(3)
        await ana.send_message(
            "interactive", {"type": "list_reply", "list_reply": {"id": "size-m", "title": "Medium", "description": "M"}}
        )
        await ana.wait_for_replies(4)
        await ana.react(ana.replies[0].message_id, "👍")
        await ana.reply("which one did I mean?", to=first.message_id)
        await ana.wait_for_replies(5)
    location, contacts, choice, quoted = (" ".join(map(str, p)) for p in seen.prompts[1:5])
    assert "52.52" in location and "Alexanderplatz" in location
    assert "Bo Berg" in contacts and "+46 70 123 45 67" in contacts
    assert "'Medium'" in choice and "'size-m'" in choice
    assert "reacted 👍 to the message 'ok'" in quoted
    assert "reply to the message 'remember the blue one'" in quoted
