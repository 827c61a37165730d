"""Rendering: a turn's reply becomes the WhatsApp messages the outbox will send.

Markdown from the model is turned into WhatsApp formatting (`formatting`), long text is split by code
points at natural breaks under the channel's limit (`splitting`). Order: the reasoning (when shown) as a
separate italic message, then what tools sent during the run, then the text, then the reply's other
messages. A short text becomes the caption of the first medium that has none (WhatsApp shows it under
the picture, ≤ 1,024 characters); a text that only repeats what a tool already sent is not sent again.

Media are made sendable first (`prepare_media`): validated against WhatsApp's limits, converted where
possible (WebP → PNG, WAV → OGG/Opus...), and what cannot be sent is replaced by words saying so.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from whatsagent.agents.context import Reply
from whatsagent.channels.base import Channel
from whatsagent.media.convert import prepare_outbound
from whatsagent.media.limits import CAPTION_MAX, MediaRejected
from whatsagent.media.store import MediaNotFound, MediaStore
from whatsagent.messages.outbound import MediaOut, OutboundMessage, TextOut
from whatsagent.render.markdown import italic_verbatim, to_whatsapp
from whatsagent.render.splitting import split_message

log = logging.getLogger(__name__)

_CAPTIONED = ("image", "video", "document")
_NOUNS = {
    "image": "an image",
    "audio": "an audio file",
    "video": "a video",
    "document": "a document",
    "sticker": "a sticker",
}


def render(reply: Reply, channel: Channel) -> list[OutboundMessage]:
    """The reply as WhatsApp messages: Markdown rendered, long text split at natural breaks."""
    parts: list[OutboundMessage] = []
    if reply.reasoning and reply.reasoning.strip():
        parts.extend(TextOut(body=chunk) for chunk in split_message(italic(reply.reasoning), channel.text_limit))
    before, after = list(reply.tool_messages), list(reply.messages)
    text = to_whatsapp(reply.text) if reply.text and reply.text.strip() else None
    if text is not None and _repeats(text, before + after):
        text = None
    if text is not None and len(text) <= channel.caption_limit:
        for group in (before, after):
            for i, message in enumerate(group):
                if isinstance(message, MediaOut) and message.media_type in _CAPTIONED and not message.caption:
                    group[i] = message.model_copy(update={"caption": text})
                    text = None
                    break
            if text is None:
                break
    parts.extend(before)
    if text is not None:
        parts.extend(TextOut(body=chunk) for chunk in split_message(text, channel.text_limit))
    parts.extend(after)
    return parts


def italic(text: str) -> str:
    """Every line in WhatsApp italics, the text verbatim (see `formatting.italic_verbatim`)."""
    return italic_verbatim(text)


def _norm(text: str) -> str:
    return " ".join(text.replace("*", "").replace("_", "").split()).casefold()


def _repeats(text: str, messages: Sequence[OutboundMessage]) -> bool:
    said = [_norm(s) for m in messages if (s := m.said)]
    mine = _norm(text)
    return bool(mine) and any(mine == s or mine in s for s in said)


async def prepare_media(messages: Sequence[OutboundMessage], store: MediaStore | None) -> list[OutboundMessage]:
    """`messages` with every stored medium made sendable: checked against WhatsApp's limits and converted
    where it can be (the converted bytes are stored under their own key); a medium that cannot be sent
    becomes a text telling the user why."""
    prepared: list[OutboundMessage] = []
    for message in messages:
        if not isinstance(message, MediaOut) or not message.stored:
            prepared.append(message)
            continue
        if store is None:
            prepared.append(_cannot_send(message, "no media store is configured"))
            continue
        try:
            data, stored = await store.get(message.stored)
            ready = await prepare_outbound(
                data, message.mime_type or stored.mime_type, message.media_type, voice=message.voice
            )
        except (MediaRejected, MediaNotFound) as exc:
            log.info("medium %s cannot be sent: %s", message.stored, exc)
            prepared.append(_cannot_send(message, str(exc)))
            continue
        if ready.data is not data:
            stored = await store.put(ready.data, ready.mime_type, message.filename)
        caption = message.caption if ready.kind in _CAPTIONED and len(message.caption or "") <= CAPTION_MAX else None
        update = {"stored": stored.key, "mime_type": ready.mime_type, "media_type": ready.kind, "caption": caption}
        prepared.append(message.model_copy(update=update))
        if message.caption and caption is None:
            # Audio and stickers show no caption, and captions stop at 1,024 characters: the words follow.
            prepared.append(TextOut(body=message.caption))
    return prepared


def _cannot_send(message: MediaOut, reason: str) -> TextOut:
    what = _NOUNS.get(message.media_type, "a file")
    caption = f"\n\n{message.caption}" if message.caption else ""
    return TextOut(body=f"I could not send you {what}: {reason}{caption}")
