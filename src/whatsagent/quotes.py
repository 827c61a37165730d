"""The text of the messages a turn's messages quote or react to, looked up within their conversation.

A quoted id comes from the user's own message, so it is the user's to choose: looked up across the whole
store it would pull another user's words into this user's turn ("[This is a reply to the message 'my
bank PIN is …']"). Only messages of the same conversation (its key names the channel and the user) are
found: the user's own (inbox) and the bot's answers to them (outbox). Any other id stays an id.
"""

from __future__ import annotations

from collections.abc import Callable

from whatsagent import inbox, outbox
from whatsagent.messages import InboundMessage, inbound_adapter
from whatsagent.messages.outbound import outbound_adapter
from whatsagent.store.database import Connection

QUOTE_CHARS = 200


def quoted_texts(conversation: str, ids: list[str]) -> Callable[[Connection], dict[str, str]]:
    """A store read: short text of the messages `ids` name in `conversation`, by provider id."""

    def op(conn: Connection) -> dict[str, str]:
        found: dict[str, str] = {}
        for provider_id, payload in inbox.by_provider_id(conn, conversation, ids):
            message: InboundMessage = inbound_adapter.validate_json(payload)
            found[provider_id] = _short(message.describe())
        for provider_id, raw in outbox.by_provider_id(conn, conversation, ids):
            said = outbound_adapter.validate_json(raw).said
            if said:
                found[provider_id] = _short(said)
        return found

    return op


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 1] + "…"
