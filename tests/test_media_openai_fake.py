"""The fake OpenAI API is faithful enough for pydantic-ai's real OpenAI models and the openai SDK."""

from __future__ import annotations

import base64
import io
import json

import pytest
from openai import AsyncOpenAI
from PIL import Image
from pydantic_ai import Agent
from pydantic_ai.exceptions import ContentFilterError, ModelHTTPError
from pydantic_ai.images.openai import OpenAIImageGenerationModel
from pydantic_ai.messages import BinaryImage
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
from pydantic_ai.providers.openai import OpenAIProvider

from fakes import media_files
from fakes.openai_api import FakeOpenAI, Reply, ToolCall, png


@pytest.fixture
async def openai():
    async with FakeOpenAI(api_key="test") as fake:
        yield fake


def provider(fake: FakeOpenAI) -> OpenAIProvider:
    return OpenAIProvider(base_url=fake.base_url, api_key="test")


def weather_agent(model) -> Agent:
    agent = Agent(model, instructions="Answer briefly.")

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"Sunny in {city}, 21°C"

    return agent


MODELS = {
    "chat": lambda fake: OpenAIChatModel("gpt-4o", provider=provider(fake)),
    "responses": lambda fake: OpenAIResponsesModel("gpt-4o", provider=provider(fake)),
}


@pytest.mark.parametrize("api", MODELS)
async def test_a_real_openai_model_runs_a_tool_round_against_the_fake(openai: FakeOpenAI, api: str) -> None:
    openai.call_tool("get_weather", {"city": "Paris"}, id="call_paris").reply("It is sunny in Paris.")

    result = await weather_agent(MODELS[api](openai)).run("Weather in Paris?")

    assert result.output == "It is sunny in Paris."
    first, second = openai.model_requests
    assert [t.get("function", t).get("name") for t in first["tools"]] == ["get_weather"]
    if api == "chat":
        assert second["messages"][-2]["tool_calls"][0]["function"] == {
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
        }
        assert second["messages"][-1] == {
            "role": "tool",
            "tool_call_id": "call_paris",
            "content": "Sunny in Paris, 21°C",
        }
    else:
        assert second["input"][-1] == {
            "type": "function_call_output",
            "call_id": "call_paris",
            "output": "Sunny in Paris, 21°C",
        }
    assert openai.pending == 0


@pytest.mark.parametrize("api", MODELS)
async def test_streamed_runs_work_too(openai: FakeOpenAI, api: str) -> None:
    openai.call_tool("get_weather", {"city": "Rome"}).reply("Sunny in Rome.")
    async with weather_agent(MODELS[api](openai)).run_stream("Weather in Rome?") as run:
        output = await run.get_output()
    assert output == "Sunny in Rome."
    assert all(request["stream"] for request in openai.model_requests)


async def test_parallel_tool_calls_and_computed_replies(openai: FakeOpenAI) -> None:
    openai.call_tools(ToolCall("get_weather", {"city": "Oslo"}), ToolCall("get_weather", {"city": "Lima"}))
    openai.respond(lambda body: f"{sum(m['role'] == 'tool' for m in body['messages'])} results")

    result = await weather_agent(MODELS["chat"](openai)).run("Oslo and Lima?")

    assert result.output == "2 results"


async def test_an_api_error_reaches_the_caller_and_an_empty_script_fails_loudly(openai: FakeOpenAI) -> None:
    agent = Agent(MODELS["chat"](openai))
    openai.fail(400, "bad request", code="invalid_value")
    with pytest.raises(ModelHTTPError) as caught:
        await agent.run("hi")
    assert caught.value.status_code == 400
    with pytest.raises(ModelHTTPError, match="no scripted turn left"):
        await agent.run("hi")
    openai.default = Reply("fallback")
    assert (await agent.run("hi")).output == "fallback"


async def test_a_wrong_api_key_is_refused(openai: FakeOpenAI) -> None:
    openai.reply("never")
    model = OpenAIChatModel("gpt-4o", provider=OpenAIProvider(base_url=openai.base_url, api_key="wrong"))
    with pytest.raises(ModelHTTPError) as caught:
        await Agent(model).run("hi")
    assert caught.value.status_code == 401


async def test_image_generation_returns_a_real_png(openai: FakeOpenAI) -> None:
    model = OpenAIImageGenerationModel("gpt-image-1", provider=provider(openai))

    result = await model.generate("a lighthouse at dusk")

    (image,) = result.images
    assert image.content.media_type == "image/png"
    assert Image.open(io.BytesIO(image.content.data)).size == (64, 64)
    (request,) = openai.requests_to("/v1/images/generations")
    assert request.json is not None
    assert (request.json["prompt"], request.json["model"]) == ("a lighthouse at dusk", "gpt-image-1")


async def test_an_image_edit_uploads_the_users_picture(openai: FakeOpenAI) -> None:
    openai.image = png(32, 16, (200, 0, 0))
    model = OpenAIImageGenerationModel("gpt-image-1", provider=provider(openai))
    photo = media_files.image_bytes("PNG", 100, 80)

    result = await model.generate("make it red", images=[BinaryImage(photo, media_type="image/png")])

    assert Image.open(io.BytesIO(result.images[0].content.data)).size == (32, 16)
    (request,) = openai.requests_to("/v1/images/edits")
    assert request.form["prompt"] == ["make it red"]
    (upload,) = next(iter(request.files.values()))
    assert (upload.content_type, upload.data) == ("image/png", photo)


async def test_a_refused_image_is_an_error(openai: FakeOpenAI) -> None:
    openai.fail_image()
    model = OpenAIImageGenerationModel("gpt-image-1", provider=provider(openai))
    with pytest.raises(ContentFilterError, match="moderation"):
        await model.generate("something not allowed")


async def test_transcriptions_through_the_openai_sdk(openai: FakeOpenAI) -> None:
    openai.transcript("hello there")
    client = AsyncOpenAI(base_url=openai.base_url, api_key="test")
    voice = media_files.voice_note(0.5)

    transcript = await client.audio.transcriptions.create(model="whisper-1", file=("voice.ogg", voice, "audio/ogg"))

    assert transcript.text == "hello there"
    (request,) = openai.requests_to("/v1/audio/transcriptions")
    assert request.files["file"][0].data == voice
    await client.close()


async def test_every_request_is_recorded_with_its_body(openai: FakeOpenAI) -> None:
    openai.reply("hi")
    jpeg = media_files.image_bytes("JPEG", 40, 30)
    client = AsyncOpenAI(base_url=openai.base_url, api_key="test")
    await client.chat.completions.create(
        model="gpt-4o",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()},
                    },
                ],
            }
        ],
    )
    await client.close()
    (recorded,) = openai.requests
    assert recorded.headers["Authorization"] == "Bearer test"
    assert json.dumps(openai.content_parts()).count("image_url") == 2
