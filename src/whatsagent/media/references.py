"""Keeping media bytes out of stored history: each file in pydantic-ai messages becomes a short text
reference to its media-store key, and can be turned back into the file for a later turn.

A turn calls `externalize` on the run's new messages before `history.dump`, and (when earlier media
should be seen again) `restore` after `history.load`. A reference left as it is reads sensibly to a
model: ``[image/jpeg in media store: 3fa2…]``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from whatsagent.media.store import MediaNotFound, MediaStore

if TYPE_CHECKING:
    from pydantic_ai.messages import ModelMessage

_REFERENCE = re.compile(r"^\[(?P<mime>[\w.+-]+/[\w.+-]+) in media store: (?P<key>[0-9a-f]{64})\]$")


def reference(key: str, mime_type: str) -> str:
    """The text that stands for a stored medium in history."""
    return f"[{mime_type} in media store: {key}]"


def parse_reference(text: str) -> tuple[str, str] | None:
    """(key, MIME type) if `text` is a reference made by `reference`, else None."""
    match = _REFERENCE.match(text)
    return (match["key"], match["mime"]) if match else None


async def externalize(messages: Sequence[ModelMessage], store: MediaStore) -> list[ModelMessage]:
    """`messages` with every `BinaryContent` put in `store` and replaced by its reference: in user
    prompts, in tool returns (a file or a list holding files), and files a model answered with."""
    # pydantic-ai loads after ready (the first turn), not at start-up.
    from pydantic_ai.messages import (
        BinaryContent,
        FilePart,
        ModelRequest,
        ModelResponse,
        TextPart,
        ToolReturnPart,
        UserPromptPart,
    )

    async def swap(item: Any) -> Any:
        if isinstance(item, BinaryContent):
            stored = await store.put(item.data, item.media_type)
            return reference(stored.key, item.media_type)
        return item

    async def swap_all(content: Any) -> Any:
        if isinstance(content, list | tuple):
            return [await swap(item) for item in content]
        return await swap(content)

    result: list[ModelMessage] = []
    for message in messages:
        if isinstance(message, ModelRequest):
            parts: list[Any] = []
            for part in message.parts:
                if isinstance(part, UserPromptPart) and not isinstance(part.content, str):
                    part = dataclasses.replace(part, content=await swap_all(part.content))
                elif isinstance(part, ToolReturnPart) and _holds_files(part.content):
                    part = dataclasses.replace(part, content=await swap_all(part.content))
                parts.append(part)
            result.append(dataclasses.replace(message, parts=parts))
        elif isinstance(message, ModelResponse):
            response_parts: list[Any] = []
            for response_part in message.parts:
                if isinstance(response_part, FilePart):
                    response_part = TextPart(await swap(response_part.content))
                response_parts.append(response_part)
            result.append(dataclasses.replace(message, parts=response_parts))
        else:
            result.append(message)
    return result


async def restore(messages: Sequence[ModelMessage], store: MediaStore) -> list[ModelMessage]:
    """`messages` with the references in user prompts turned back into files from `store`. A
    reference whose medium was deleted stays text."""
    from pydantic_ai.messages import BinaryContent, ModelRequest, UserPromptPart

    async def load(item: Any) -> Any:
        if isinstance(item, str) and (found := parse_reference(item)):
            try:
                data, stored = await store.get(found[0])
            except MediaNotFound:
                return item
            return BinaryContent(data=data, media_type=found[1], identifier=stored.key)
        return item

    result: list[ModelMessage] = []
    for message in messages:
        if isinstance(message, ModelRequest) and any(
            isinstance(p, UserPromptPart) and not isinstance(p.content, str) for p in message.parts
        ):
            parts: list[Any] = []
            for part in message.parts:
                if isinstance(part, UserPromptPart) and not isinstance(part.content, str):
                    part = dataclasses.replace(part, content=[await load(item) for item in part.content])
                parts.append(part)
            message = dataclasses.replace(message, parts=parts)
        result.append(message)
    return result


def _holds_files(content: Any) -> bool:
    from pydantic_ai.messages import BinaryContent

    if isinstance(content, BinaryContent):
        return True
    return isinstance(content, list | tuple) and any(isinstance(item, BinaryContent) for item in content)
