"""What goes to the model and what comes back: a turn's prompt, the reasoning and files of a run.

What the model sees of a turn: text as written; media the user sent in a form its provider takes
(`media.model_input.to_model_input`: converted, transcribed, or described in words); locations,
contacts, button and list replies, reactions and quoted replies as readable text.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from whatsagent.agents.context import MEDIA_TYPES, TurnContext, describe
from whatsagent.media.capabilities import Capabilities
from whatsagent.media.limits import kind_for
from whatsagent.media.model_input import to_model_input
from whatsagent.messages.outbound import MediaOut, OutboundMessage

if TYPE_CHECKING:
    from pydantic_ai.messages import ModelMessage, UserContent

    from whatsagent.media.transcribe import Transcriber

log = logging.getLogger(__name__)


async def build_prompt(
    ctx: TurnContext,
    provider: str,
    model_name: str,
    capabilities: Capabilities,
    *,
    transcriber: Transcriber | None = None,
) -> str | list[UserContent]:
    """The user prompt for a turn: one string when it is all text, else text and media in order."""
    parts: list[UserContent] = []
    for message in ctx.messages:
        text = describe(message, ctx)
        medium = ctx.media.get(message.id) if isinstance(message, MEDIA_TYPES) else None
        if medium is None:
            parts.append(text)
            continue
        if medium.key is None or ctx.media_store is None:
            # Why stays in the logs (internal URLs, paths); the model hears only what a user may.
            parts.append(f"{text} (It could not be downloaded{download_note(medium.error)}.)")
            continue
        try:
            data, stored = await ctx.media_store.get(medium.key)
        except Exception as exc:
            log.warning("medium %s of message %s is not in the media store: %s", medium.key, message.id, exc)
            parts.append(f"{text} (It is no longer stored.)")
            continue
        content = await to_model_input(
            provider,
            model_name,
            medium.kind,
            data,
            stored.mime_type,
            text,
            filename=medium.filename,
            identifier=medium.key,
            transcriber=transcriber,
            capabilities=capabilities,
        )
        if not isinstance(content, str):  # a BinaryContent
            # The description goes along, so the model knows the caption and what the file is.
            parts.append(f"{text} [media key {medium.key}]")
        parts.append(content)
    merged: list[UserContent] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] = f"{merged[-1]}\n{part}"
        else:
            merged.append(part)
    if len(merged) == 1 and isinstance(merged[0], str):
        return merged[0]
    return merged


_SIZE_CAP = re.compile(r"(?:more|larger) than the (\d+) bytes? allowed|more than the (\d+) allowed")


def download_note(error: str | None) -> str:
    """What a model may hear of why a medium could not be downloaded: that it is over the size cap
    (whatsagent's own wording, with the cap), else nothing: error texts can name internal hosts."""
    found = _SIZE_CAP.search(error or "")
    if found:
        return f": it is larger than the {found.group(1) or found.group(2)} bytes this bot accepts"
    return ""


def reasoning_of(messages: Sequence[ModelMessage]) -> str | None:
    """The model's reasoning (thinking parts) of a run, as one text."""
    from pydantic_ai.messages import ModelResponse, ThinkingPart  # pydantic-ai loads after ready

    thoughts = [
        part.content.strip()
        for m in messages
        if isinstance(m, ModelResponse)
        for part in m.parts
        if isinstance(part, ThinkingPart) and part.content.strip()
    ]
    return "\n\n".join(thoughts) or None


async def files_from(messages: Sequence[ModelMessage], ctx: TurnContext) -> list[OutboundMessage]:
    """Files the model answered with (an image model's pictures), stored and ready to send."""
    from pydantic_ai.messages import FilePart, ModelResponse

    found: list[OutboundMessage] = []
    for m in messages:
        if not isinstance(m, ModelResponse):
            continue
        for part in m.parts:
            if isinstance(part, FilePart) and ctx.media_store is not None:
                stored = await ctx.media_store.put(part.content.data, part.content.media_type)
                found.append(MediaOut(media_type=kind_for(stored.mime_type), stored=stored.key))
    return found
