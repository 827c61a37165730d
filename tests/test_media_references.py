"""Stored history holds media-store keys, never media bytes, and a later turn can see the media again."""

from __future__ import annotations

import base64

from pydantic_ai import Agent
from pydantic_ai.messages import (
    BinaryContent,
    FilePart,
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from fakes import media_files
from whatsagent.media.model_input import to_model_input
from whatsagent.media.references import externalize, parse_reference, reference, restore
from whatsagent.media.store import MemoryMediaStore


def answer_with_a_generated_picture(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    if len(messages) == 1:
        return ModelResponse(parts=[ToolCallPart("draw", {"what": "sun"})])
    return ModelResponse(parts=[TextPart("Here it is.")])


async def test_history_json_holds_keys_not_bytes_and_the_media_come_back() -> None:
    store = MemoryMediaStore()
    photo = media_files.image_bytes("JPEG")
    drawing = media_files.image_bytes("PNG", 64, 64)
    agent = Agent(FunctionModel(answer_with_a_generated_picture))

    @agent.tool_plain
    def draw(what: str) -> BinaryContent:
        return BinaryContent(drawing, media_type="image/png")

    content = await to_model_input("test", "", "image", photo, "image/jpeg", "[An image]", identifier="photo-1")
    assert isinstance(content, BinaryContent) and content.identifier == "photo-1"
    result = await agent.run(["[An image]", content])

    stored = await externalize(result.new_messages(), store)
    raw = ModelMessagesTypeAdapter.dump_json(stored)

    for data in (photo, drawing):
        assert base64.b64encode(data)[:40] not in raw
    assert len(store) == 2
    assert len(raw) < 3000

    loaded = await restore(ModelMessagesTypeAdapter.validate_json(raw), store)
    first = loaded[0]
    assert isinstance(first, ModelRequest) and isinstance(first.parts[0], UserPromptPart)
    prompt = first.parts[0].content
    assert prompt[0] == "[An image]"
    assert isinstance(prompt[1], BinaryContent) and prompt[1].data == photo


async def test_a_file_the_model_answered_with_is_stored_too() -> None:
    store = MemoryMediaStore()
    picture = media_files.image_bytes("PNG", 32, 32)
    messages: list[ModelMessage] = [ModelResponse(parts=[FilePart(BinaryContent(picture, media_type="image/png"))])]

    (response,) = await externalize(messages, store)

    assert isinstance(response, ModelResponse)
    (part,) = response.parts
    assert isinstance(part, TextPart)
    assert parse_reference(part.content) == ((await store.put(picture, "image/png")).key, "image/png")


async def test_a_reference_to_a_deleted_medium_stays_readable_text() -> None:
    store = MemoryMediaStore()
    key = (await store.put(b"gone soon", "text/plain")).key
    await store.delete(key)
    text = reference(key, "image/jpeg")
    (message,) = await restore([ModelRequest(parts=[UserPromptPart(["look", text])])], store)
    assert isinstance(message, ModelRequest) and isinstance(message.parts[0], UserPromptPart)
    assert message.parts[0].content == ["look", f"[image/jpeg in media store: {key}]"]
