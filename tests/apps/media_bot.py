"""A bot for the bounded-decoder tests: its model takes JPEG images and WAV audio (so voice notes and
pictures are converted) and reads documents as text; it answers with the prompt it got, in words.

WHATSAPP_* (from the emulator), WHATSAGENT_DATABASE_URL
"""

from __future__ import annotations

from pydantic_ai.messages import BinaryContent, ModelMessage, ModelRequest, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from whatsagent import Agent, AgentOS
from whatsagent.channels import CloudAPI
from whatsagent.media import Capabilities


def _echo(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    request = messages[-1]
    assert isinstance(request, ModelRequest)
    content = [p.content for p in request.parts if isinstance(p, UserPromptPart)][-1]
    items = content if isinstance(content, list) else [content]
    words = [
        f"[{item.media_type}, {len(item.data)} bytes]" if isinstance(item, BinaryContent) else str(item)
        for item in items
    ]
    return ModelResponse(parts=[TextPart("I got: " + " ".join(words)[:2000])])


agent = Agent(
    model=FunctionModel(_echo),
    capabilities=Capabilities(images=("image/jpeg",), audio=("audio/wav",), source="bounded-decoder tests"),
)
os = AgentOS(channels=[CloudAPI(agent=agent)], merge_window=0.0)
