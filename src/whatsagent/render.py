"""Rendering: a turn's reply becomes the WhatsApp messages the outbox will send.

Markdown from the model is turned into WhatsApp formatting (`formatting`), long text is split by code
points at natural breaks under the channel's limit (`splitting`), and other messages follow in order.
"""

from __future__ import annotations

from whatsagent.agent import Reply
from whatsagent.channels.base import Channel
from whatsagent.formatting import to_whatsapp
from whatsagent.outbound import OutboundMessage, TextOut
from whatsagent.splitting import split_message


def render(reply: Reply, channel: Channel) -> list[OutboundMessage]:
    """The reply as WhatsApp messages: Markdown rendered, long text split at natural breaks."""
    parts: list[OutboundMessage] = []
    if reply.text and reply.text.strip():
        parts.extend(TextOut(body=chunk) for chunk in split_message(to_whatsapp(reply.text), channel.text_limit))
    parts.extend(reply.messages)
    return parts
