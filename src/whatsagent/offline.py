"""The offline model: what answers when no AI model is configured.

It is not an AI and says so in every answer. It shows that the channel works end to end (echoing what it
received: the text, the kind and size of a medium, the button pressed) and tells the operator how to
configure a real model. `whatsagent.Agent()` uses it when no model is given and no provider key is in
the environment (see `whatsagent.models`).
"""

from __future__ import annotations

from pydantic_ai.messages import BinaryContent, ModelMessage, ModelRequest, ModelResponse, TextPart, UserPromptPart
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


def _answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    received = _last_prompt(messages).strip() or "(nothing)"
    return ModelResponse(parts=[TextPart(f"{LABEL}\nYou sent: {received}\n\n{HOW_TO}")], model_name=MODEL_NAME)


def offline_model() -> FunctionModel:
    return FunctionModel(_answer, model_name=MODEL_NAME)
