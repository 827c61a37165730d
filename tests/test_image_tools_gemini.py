"""ImageTools on Gemini: pictures made and edited by a Gemini image model reach the user on WhatsApp.

The real google-genai SDK talks to a fake Gemini API on loopback (`fakes.gemini_api`); nothing reaches Google.
"""

from __future__ import annotations

import io

from PIL import Image
from pydantic_ai.images.google import GoogleImageGenerationModel
from pydantic_ai.messages import ModelResponse, TextPart, ToolReturnPart
from pydantic_ai.providers.google import GoogleProvider

from fakes import media_files
from fakes.gemini_api import FakeGemini
from whatsagent import Agent
from whatsagent.testing import BotHarness, scripted_model, tool_call
from whatsagent.tools import ImageTools

MODEL = "gemini-2.5-flash-image"


async def test_a_gemini_picture_is_uploaded_and_sent_with_the_answer_as_caption(tmp_path):
    async with FakeGemini(api_key="test") as gemini:
        gemini.image = media_files.image_bytes("PNG", 48, 32)
        image_model = GoogleImageGenerationModel(
            MODEL, provider=GoogleProvider(api_key="test", base_url=gemini.base_url)
        )
        model = scripted_model(
            tool_call("generate_image", prompt="a blue lighthouse at dusk"), "Here is your lighthouse!"
        )
        async with BotHarness(Agent(model=model, tools=[ImageTools(image_model)]), tmp_path) as bot:
            ana = bot.user("15551234567")
            await ana.send_text("draw me a lighthouse")
            [reply] = await ana.wait_for_replies(1)
            uploaded = bot.emulator.media.get(reply.body["image"]["id"])
    assert reply.type == "image"
    assert reply.body["image"]["caption"] == "Here is your lighthouse!", "the answer became the caption"
    assert uploaded is not None and uploaded.mime_type == "image/png"
    assert Image.open(io.BytesIO(uploaded.data)).size == (48, 32), "Gemini's own picture reached the user"
    [request] = gemini.image_requests
    assert request.model == MODEL and request.prompt == "a blue lighthouse at dusk"
    assert request.images == [] and request.response_modalities == ["IMAGE"]


async def test_a_picture_the_user_sent_goes_to_gemini_for_the_edit_and_comes_back(tmp_path):
    photo = media_files.image_bytes("JPEG", 120, 80)
    async with FakeGemini(api_key="k") as gemini:
        gemini.image = media_files.image_bytes("PNG", 24, 24)
        # The model string with its own endpoint and key, as for OpenAI.
        tools = ImageTools(f"google:{MODEL}", base_url=gemini.base_url, api_key="k")
        model = scripted_model(tool_call("edit_image", prompt="make the sky pink"), "Done, the sky is pink now.")
        async with BotHarness(Agent(model=model, tools=[tools]), tmp_path) as bot:
            ana = bot.user("15551234567")
            await ana.send_image(photo, mime_type="image/jpeg", caption="make the sky pink")
            [reply] = await ana.wait_for_replies(1)
            uploaded = bot.emulator.media.get(reply.body["image"]["id"])
    [request] = gemini.image_requests
    assert request.prompt == "make the sky pink"
    [sent] = request.images
    assert sent.data == photo and sent.mime_type == "image/jpeg", "the user's own picture went to the edit"
    assert reply.type == "image" and reply.body["image"]["caption"] == "Done, the sky is pink now."
    assert uploaded is not None and Image.open(io.BytesIO(uploaded.data)).size == (24, 24)


async def test_the_gemini_model_string_alone_finds_its_key_and_endpoint_in_the_environment(tmp_path, monkeypatch):
    async with FakeGemini(api_key="from-env") as gemini:
        monkeypatch.delenv("GEMINI_API_KEY", raising=False)
        monkeypatch.setenv("GOOGLE_API_KEY", "from-env")
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", gemini.base_url)
        tools = ImageTools(f"google:{MODEL}")
        assert tools.model.base_url == gemini.base_url, "the environment's endpoint, never Google's"
        model = scripted_model(tool_call("generate_image", prompt="a red kite"), "A red kite for you.")
        async with BotHarness(Agent(model=model, tools=[tools]), tmp_path) as bot:
            ana = bot.user("15551234567")
            await ana.send_text("draw a kite")
            [reply] = await ana.wait_for_replies(1)
    [request] = gemini.image_requests
    assert request.prompt == "a red kite" and request.api_key == "from-env"
    assert reply.type == "image" and reply.body["image"]["caption"] == "A red kite for you."


async def test_a_prompt_gemini_blocks_is_explained_to_the_model_not_raised(tmp_path):
    def answer(messages, info):
        [result] = [p for p in messages[-1].parts if isinstance(p, ToolReturnPart)]
        return ModelResponse(
            parts=[TextPart("I can't draw that, sorry." if "refused" in str(result.content) else "??")]
        )

    async with FakeGemini() as gemini:
        gemini.block("PROHIBITED_CONTENT")
        image_model = GoogleImageGenerationModel(
            MODEL, provider=GoogleProvider(api_key="test", base_url=gemini.base_url)
        )
        model = scripted_model(tool_call("generate_image", prompt="something not allowed"), answer)
        async with BotHarness(Agent(model=model, tools=[ImageTools(image_model)]), tmp_path) as bot:
            ana = bot.user("15551234567")
            await ana.send_text("draw it")
            [reply] = await ana.wait_for_replies(1)
    assert reply.text == "I can't draw that, sorry."
    assert [r.prompt for r in gemini.image_requests] == ["something not allowed"]
