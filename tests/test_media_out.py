"""Media out: generated images uploaded and sent with a caption, conversions, and words for what cannot go."""

from __future__ import annotations

import io
import json

from PIL import Image
from pydantic_ai.images.openai import OpenAIImageGenerationModel
from pydantic_ai.providers.openai import OpenAIProvider

from fakes import media_files
from fakes.openai_api import FakeOpenAI, png
from test_media_in import chat_model
from whatsagent import Agent, Reply
from whatsagent.messages.outbound import MediaOut
from whatsagent.testing import BotHarness
from whatsagent.tools import ImageTools


async def test_a_generated_image_is_uploaded_and_sent_with_the_answer_as_caption(tmp_path):
    async with FakeOpenAI() as fake:
        fake.image = png(48, 32, (10, 20, 200))
        fake.call_tool("generate_image", {"prompt": "a blue lighthouse at dusk"}).reply("Here is your lighthouse!")
        image_model = OpenAIImageGenerationModel(
            "gpt-image-1", provider=OpenAIProvider(base_url=fake.base_url, api_key="k")
        )
        agent = Agent(model=chat_model(fake), tools=[ImageTools(image_model)])
        async with BotHarness(agent, tmp_path) as bot:
            ana = bot.user("15551234567")
            await ana.send_text("draw me a lighthouse")
            [reply] = await ana.wait_for_replies(1)
            uploaded = bot.emulator.media.get(reply.body["image"]["id"])
        assert reply.type == "image"
        assert reply.body["image"]["caption"] == "Here is your lighthouse!", "the answer became the caption"
        assert uploaded is not None and uploaded.mime_type == "image/png"
        assert Image.open(io.BytesIO(uploaded.data)).size == (48, 32)
        [generation] = fake.requests_to("/v1/images/generations")
        assert generation.json is not None and generation.json["prompt"] == "a blue lighthouse at dusk"
        tools = fake.model_requests[0]["tools"]
        assert {t["function"]["name"] for t in tools} == {"generate_image", "edit_image"}


async def test_an_image_the_user_sent_is_edited_and_sent_back(tmp_path):
    photo = media_files.image_bytes("JPEG", 120, 80)
    async with FakeOpenAI() as fake:
        fake.image = png(24, 24, (250, 0, 0))
        fake.call_tool("edit_image", {"prompt": "make it red"}).reply("Done, it is red now.")
        # A model string with its own endpoint and key: the same interface as a model object.
        tools = ImageTools("openai:gpt-image-1", base_url=fake.base_url, api_key="k")
        agent = Agent(model=chat_model(fake), tools=[tools])
        async with BotHarness(agent, tmp_path) as bot:
            ana = bot.user("15551234567")
            await ana.send_image(photo, mime_type="image/jpeg", caption="make it red")
            [reply] = await ana.wait_for_replies(1)
        [edit] = fake.requests_to("/v1/images/edits")
        assert edit.form["prompt"] == ["make it red"]
        [upload] = next(iter(edit.files.values()))
        assert upload.data == photo, "the user's own picture went to the edit"
        assert reply.type == "image" and reply.body["image"]["caption"] == "Done, it is red now."


async def test_a_refused_image_is_explained_to_the_model_not_raised(tmp_path):
    async with FakeOpenAI() as fake:
        fake.fail_image()
        fake.call_tool("generate_image", {"prompt": "something not allowed"})
        fake.respond(lambda body: "I can't draw that, sorry." if "refused" in json.dumps(body) else "??")
        image_model = OpenAIImageGenerationModel(
            "gpt-image-1", provider=OpenAIProvider(base_url=fake.base_url, api_key="k")
        )
        async with BotHarness(Agent(model=chat_model(fake), tools=[ImageTools(image_model)]), tmp_path) as bot:
            ana = bot.user("15551234567")
            await ana.send_text("draw it")
            [reply] = await ana.wait_for_replies(1)
        assert reply.text == "I can't draw that, sorry."


def stored_reply(data: bytes, mime: str, kind: str, text: str | None = None):
    async def agent(ctx):
        stored = await ctx.media_store.put(data, mime)
        return Reply(text=text, messages=[MediaOut(media_type=kind, stored=stored.key)])

    return agent


async def test_a_webp_out_is_converted_before_it_is_sent(tmp_path):
    webp = media_files.image_bytes("WEBP", 64, 40)
    async with BotHarness(stored_reply(webp, "image/webp", "image", "a picture"), tmp_path) as bot:
        ana = bot.user("15551234567")
        await ana.send_text("picture please")
        [reply] = await ana.wait_for_replies(1)
        uploaded = bot.emulator.media.get(reply.body["image"]["id"])
    assert uploaded is not None and uploaded.mime_type in ("image/png", "image/jpeg")
    assert Image.open(io.BytesIO(uploaded.data)).format in ("PNG", "JPEG")
    assert reply.body["image"]["caption"] == "a picture"


async def test_a_20_mb_video_out_becomes_a_clear_text_instead(tmp_path):
    video = media_files.video(seconds=0.2)
    too_big = video + b"\0" * (20_000_000 - len(video))
    async with BotHarness(stored_reply(too_big, "video/mp4", "video", "here is the clip"), tmp_path) as bot:
        ana = bot.user("15551234567")
        await ana.send_text("send the video")
        replies = await ana.wait_for_replies(2)
    assert [r.type for r in replies] == ["text", "text"]
    assert replies[0].text == "here is the clip"
    assert replies[1].text.startswith("I could not send you a video:") and "16 MB" in replies[1].text


async def test_a_caption_too_long_for_whatsapp_goes_as_text_after_the_medium(tmp_path):
    long = "word " * 300
    async with BotHarness(stored_reply(png(), "image/png", "image", long), tmp_path) as bot:
        ana = bot.user("15551234567")
        await ana.send_text("picture")
        replies = await ana.wait_for_replies(2)
    assert [r.type for r in replies] == ["text", "image"]
    assert "caption" not in replies[1].body["image"]
