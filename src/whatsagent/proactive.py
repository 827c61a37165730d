"""Proactive messages: the business writes first, with an approved template.

    POST /messages/template   {"to": "15551234567", "template": "order_update", "params": ["Ana", "#42"]}
    whatsagent send --template order_update --to 15551234567 --param Ana --param '#42'

A template is the only message WhatsApp delivers outside the 24-hour window (Cloud API docs, Send messages:
https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/send-messages). Sending
one also opens the conversation: it is recorded in the conversation's history, so when the user
answers, the agent knows what they are answering. Sends are paced, retried and idempotent (give
``key`` to make a retried API call send once) like every other message.

The route is part of the operator API (`whatsagent.operator_api`): off (404) unless an operator token is
set (``AgentOS(api_token=...)`` or ``WHATSAGENT_API_TOKEN``); calls carry it as
``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from whatsagent import conversations, identity, outbox
from whatsagent import history as history_store
from whatsagent.channels.base import Channel
from whatsagent.conversations import conversation_key
from whatsagent.messages import User
from whatsagent.messages.outbound import TemplateOut
from whatsagent.sender import Outcome, Sender
from whatsagent.store.database import Connection
from whatsagent.turns import TurnState, insert_turn

if TYPE_CHECKING:
    from pydantic_ai.messages import ModelMessage

API_SEND_DEADLINE = 30.0
"""An API call waits this long for retryable errors to clear before answering that it failed."""


class TemplateRequest(BaseModel):
    """The body of ``POST /messages/template``."""

    model_config = ConfigDict(extra="forbid")

    to: str = Field(min_length=1, description="the user's phone number (any format) or business-scoped id")
    template: str = Field(min_length=1)
    language: str = "en_US"
    params: list[str] = Field(default_factory=list, description="body parameters {{1}}, {{2}}, ...")
    components: list[dict[str, Any]] = Field(default_factory=list, description="Cloud API components instead")
    channel: str | None = Field(default=None, description="the channel's name; needed when the OS has several")
    text: str | None = Field(default=None, description="what the user reads, for the agent's history")
    key: str | None = Field(default=None, description="idempotency key: the same key sends once")


@dataclass(frozen=True)
class ProactiveResult:
    outcome: Outcome
    conversation: str
    key: str
    message_id: str | None
    error: str | None


def user_for(to: str) -> User:
    """A user from a phone number in any format (``+1 555-123-4567``) or a BSUID (``US.1234``)."""
    cleaned = to.strip()
    if "." in cleaned and cleaned[:2].isalpha():
        return User(user_id=cleaned)
    digits = "".join(ch for ch in cleaned if ch.isdigit())
    if not digits:
        raise ValueError(f"{to!r} is neither a phone number nor a business-scoped user id")
    return User(wa_id=digits)


async def send_template(
    sender: Sender,
    channel: Channel,
    to: User,
    template: TemplateOut,
    *,
    text: str | None = None,
    key: str | None = None,
    deadline: float = API_SEND_DEADLINE,
) -> ProactiveResult:
    """Send `template` to `to` and open (or continue) their conversation with it."""
    # A number that belongs to a user known by BSUID continues that user's one conversation.
    to = await sender.db.write(lambda conn: identity.resolve(conn, channel.name, to, time.time()))
    conversation = conversation_key(channel.name, to.key)
    said = text or _describe(template)
    outbox_key = f"proactive:{key}" if key else None
    repeated = None
    if outbox_key is not None:
        repeated = await sender.db.read(lambda conn: outbox.by_key(conn, outbox_key))
    if repeated is None:  # a retried call with the same key adds nothing to the history
        await sender.db.write(_open_conversation(channel, to, conversation, said))
    outcome, row = await sender.send(
        channel, to, template, conversation=conversation, key=outbox_key, deadline=deadline
    )
    sent_id, error = await sender.db.read(lambda conn: outbox.result(conn, row.id))
    return ProactiveResult(outcome, conversation, row.idempotency_key, sent_id, error)


def _describe(template: TemplateOut) -> str:
    params = f" with {', '.join(template.params)}" if template.params else ""
    return f"[Template message {template.name!r}{params}]"


def _open_conversation(channel: Channel, to: User, conversation: str, said: str) -> Callable[[Connection], None]:
    """The conversation exists (its window closed: the user has not written) and its history holds
    the template, so the agent continues from it."""

    def op(conn: Connection) -> None:
        now = time.time()
        session = conversations.open_for_template(conn, conversation, channel.name, channel.account, to, now)
        turn_id = insert_turn(conn, conversation, session, TurnState.SENT, now=now)
        # The history starts with what the business said; the marker request keeps it a valid exchange
        # for every model provider (some refuse a conversation that opens with the assistant).
        from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, UserPromptPart

        messages: list[ModelMessage] = [
            ModelRequest(parts=[UserPromptPart("[The business wrote to the user first]")]),
            ModelResponse(parts=[TextPart(said)]),
        ]
        history_store.append(conn, conversation, session, turn_id, history_store.dump(messages), now)

    return op
