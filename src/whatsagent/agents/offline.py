"""The offline model: what answers when no AI model is configured.

It is not an AI and says so in every answer. It shows that the channel works end to end (echoing what it
received: the text, the kind and size of a medium, the button pressed) and tells the operator how to
configure a real model. `whatsagent.Agent()` uses it when no model is given and no provider key is in
the environment (see `whatsagent.agents.models`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace

from pydantic_ai.images import ImageGenerationInput, ImageGenerationResult, ImageGenerationSettings
from pydantic_ai.images.result import GeneratedImage
from pydantic_ai.images.test import TestImageGenerationModel
from pydantic_ai.messages import (
    BinaryContent,
    BinaryImage,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from whatsagent.media.limits import format_size

MODEL_NAME = "whatsagent-offline"
LABEL = "[whatsagent offline mode — no AI model is configured]"
HOW_TO = (
    'To give me a brain, set a model on the Agent (e.g. model="openai:gpt-4o") and its key '
    "(e.g. OPENAI_API_KEY) in the environment, or set WHATSAGENT_MODEL."
)


def _describe(item: object) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, BinaryContent):
        kind = item.media_type.split("/", 1)[0]
        noun = {"image": "an image", "audio": "audio", "video": "a video"}.get(kind, "a file")
        return f"[received {noun}: {item.media_type}, {format_size(len(item.data))}]"
    return f"[{type(item).__name__}]"


def _last_prompt(messages: list[ModelMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, ModelRequest):
            for part in reversed(message.parts):
                if isinstance(part, UserPromptPart):
                    if isinstance(part.content, str):
                        return part.content
                    return "\n".join(_describe(c) for c in part.content)
    return ""


_MEDIA_KEY = re.compile(r" ?\[media key [^\]]*\]")
_ONE_MESSAGE = 4096
"""WhatsApp's text limit: an echo longer than this is split, so its label must not cost a part."""


def _answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    # The media store's keys are internal: the user sees what they sent, not where it is kept.
    received = _MEDIA_KEY.sub("", _last_prompt(messages)).strip() or "(nothing)"
    echo = f"{LABEL}\nYou sent: {received}\n\n{HOW_TO}"
    if len(echo) > _ONE_MESSAGE:
        # A long echo is split at a break within the text; a line break after the label would be cut
        # first and cost a whole message of 53 characters.
        echo = f"{LABEL} You sent: {received}\n\n{HOW_TO}"
    return ModelResponse(parts=[TextPart(echo)], model_name=MODEL_NAME)


def offline_model() -> FunctionModel:
    return FunctionModel(_answer, model_name=MODEL_NAME)


# -- stand-ins for the examples: scripted, not AI, so each example shows its feature without a key ---------


def said(messages: list[ModelMessage]) -> str:
    """The user's latest prompt as text (media described), for a scripted stand-in model."""
    return _last_prompt(messages)


def tool_ran(messages: list[ModelMessage]) -> bool:
    """Whether the model's last request carried a tool's result (so a stand-in can end its turn)."""
    last = messages[-1] if messages else None
    return isinstance(last, ModelRequest) and any(isinstance(p, ToolReturnPart) for p in last.parts)


def stand_in(answer: Callable[[list[ModelMessage], AgentInfo], ModelResponse]) -> FunctionModel:
    """A scripted model for running an example with no model key: `answer` decides each step (text or
    tool calls) from the conversation. It is not an AI; examples label its answers as scripted."""
    return FunctionModel(answer, model_name="offline-stand-in")


class SketchImageModel(TestImageGenerationModel):
    """An offline image model: draws the prompt's words on a coloured card with Pillow (not an AI)."""

    __test__ = False

    def __init__(self) -> None:
        super().__init__("sketch", provider_name="whatsagent-offline")

    async def generate(
        self,
        prompt: str,
        *,
        images: Sequence[ImageGenerationInput] | None = None,
        settings: ImageGenerationSettings | None = None,
    ) -> ImageGenerationResult:
        result = await super().generate(prompt, images=images, settings=settings)
        picture = GeneratedImage(content=BinaryImage(data=_card(prompt), media_type="image/png"), output_format="png")
        return replace(result, images=[picture])


def _card(prompt: str) -> bytes:
    import hashlib
    import io
    import textwrap

    from PIL import Image, ImageDraw

    hue = hashlib.sha256(prompt.encode()).digest()
    card = Image.new("RGB", (512, 320), (hue[0] // 2, hue[1] // 2, 96 + hue[2] // 3))
    draw = ImageDraw.Draw(card)
    draw.ellipse((380, 30, 470, 120), fill=(250, 210, 80))
    draw.multiline_text((24, 150), textwrap.fill(f"A sketch of: {prompt}", 44), fill=(255, 255, 255), spacing=6)
    out = io.BytesIO()
    card.save(out, format="PNG")
    return out.getvalue()
