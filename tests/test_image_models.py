"""ImageTools with every image model a user is likely to name: DALL·E 2 and 3 and GPT Image against the
fake OpenAI API, Gemini against the fake Gemini API; a model that cannot draw stops start-up in one line."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from fakes import media_files
from fakes.openai_api import FakeOpenAI, png
from whatsagent import Agent, AgentOS
from whatsagent.channels import CloudAPI
from whatsagent.errors import ConfigurationError
from whatsagent.testing import BotHarness, scripted_model, tool_call
from whatsagent.tools import ImageTools


@pytest.mark.parametrize("name", ["dall-e-2", "dall-e-3", "gpt-image-1"])
async def test_each_openai_image_model_draws_a_picture_the_user_receives(tmp_path, name):
    async with FakeOpenAI(api_key="k") as fake:
        fake.image = png(40, 30, (0, 0, 200))
        tools = ImageTools(f"openai:{name}", base_url=fake.base_url, api_key="k")
        model = scripted_model(tool_call("generate_image", prompt="a blue square"), "Your square.")
        async with BotHarness(Agent(model=model, tools=[tools]), tmp_path) as bot:
            ana = bot.user("15551234567")
            await ana.send_text("draw a blue square")
            [reply] = await ana.wait_for_replies(1)
            uploaded = bot.emulator.media.get(reply.body["image"]["id"])
        [request] = fake.requests_to("/v1/images/generations")
    assert request.json is not None and request.json["model"] == name and request.json["prompt"] == "a blue square"
    if name.startswith("dall-e"):
        assert request.json["response_format"] == "b64_json"
    assert reply.type == "image" and reply.body["image"]["caption"] == "Your square."
    assert uploaded is not None and Image.open(io.BytesIO(uploaded.data)).size == (40, 30)


async def test_dall_e_2_edits_the_users_picture_sent_as_a_square_png(tmp_path):
    photo = media_files.image_bytes("JPEG", 120, 80)
    async with FakeOpenAI(api_key="k") as fake:
        tools = ImageTools("openai:dall-e-2", base_url=fake.base_url, api_key="k")
        model = scripted_model(tool_call("edit_image", prompt="add a hat"), "Hat added.")
        async with BotHarness(Agent(model=model, tools=[tools]), tmp_path) as bot:
            ana = bot.user("15551234567")
            await ana.send_image(photo, mime_type="image/jpeg", caption="add a hat")
            [reply] = await ana.wait_for_replies(1)
        [edit] = fake.requests_to("/v1/images/edits")
    assert edit.form["model"] == ["dall-e-2"] and edit.form["prompt"] == ["add a hat"]
    [upload] = edit.files["image"]
    sent = Image.open(io.BytesIO(upload.data))
    assert (sent.format, sent.size[0] == sent.size[1]) == ("PNG", True)
    assert reply.type == "image"


def test_dall_e_3_offers_no_edit_tool():
    assert set(ImageTools("openai:dall-e-3", api_key="k").tools) == {"generate_image"}
    assert set(ImageTools("openai:dall-e-2", api_key="k").tools) == {"generate_image", "edit_image"}


async def test_a_failing_image_service_is_explained_to_the_model(tmp_path):
    async with FakeOpenAI(api_key="k") as fake:
        fake.fail_image(400, "billing limit reached", "billing_hard_limit_reached")
        tools = ImageTools("openai:dall-e-3", base_url=fake.base_url, api_key="k")

        def answer(messages, info):
            from pydantic_ai.messages import ModelResponse, TextPart

            told = "billing limit reached" in json.dumps([str(m) for m in messages])
            return ModelResponse(parts=[TextPart("The picture failed: billing." if told else "??")])

        model = scripted_model(tool_call("generate_image", prompt="a cat"), answer)
        async with BotHarness(Agent(model=model, tools=[tools]), tmp_path) as bot:
            ana = bot.user("15551234567")
            await ana.send_text("draw a cat")
            [reply] = await ana.wait_for_replies(1)
    assert reply.text == "The picture failed: billing."


def serve(tools: ImageTools) -> AgentOS:
    wrapped = Agent(model=scripted_model("hi"), tools=[tools])
    return AgentOS(
        agents=[wrapped],
        channels=[CloudAPI(access_token="t", phone_number_id="1", app_secret="s", verify_token="v")],
        database="sqlite:///whatsagent-test-never-created.db",
    )


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("openai:gpt-4o", "gpt-4o is not an OpenAI image model"),
        ("google:gemini-2.5-flash", "gemini-2.5-flash is not a Gemini image model"),
        ("openai:dall-e-3", "OPENAI_API_KEY"),
        ("google:gemini-2.5-flash-image", "GOOGLE_API_KEY"),
    ],
)
def test_an_image_model_that_cannot_work_stops_start_up_in_one_line(spec, says, monkeypatch):
    for key in ("OPENAI_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ConfigurationError) as caught:
        serve(ImageTools(spec)).validate()
    assert says in str(caught.value) and "\n" not in str(caught.value)
