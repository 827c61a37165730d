"""Proactive messages: the business writes first, with an approved template.

    POST /messages/template   {"to": "15551234567", "template": "order_update", "params": ["Ana", "#42"]}
    whatsagent send --template order_update --to 15551234567 --param Ana --param '#42'

A template is the only message WhatsApp delivers outside the 24-hour window (reference §3.4). Sending
one also opens the conversation: it is recorded in the conversation's history, so when the user
answers, the agent knows what they are answering. Sends are paced, retried and idempotent (give
``key`` to make a retried API call send once) like every other message.

The API is off (404) unless an operator token is set (``AgentOS(api_token=...)`` or
``WHATSAGENT_API_TOKEN``); calls carry it as ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Connection, bindparam, insert, select

from whatsagent import history as history_store
from whatsagent import identity, outbox
from whatsagent.channels.base import Channel
from whatsagent.inbox import conversation_key
from whatsagent.messages import User
from whatsagent.messages.outbound import TemplateOut
from whatsagent.sender import Outcome, Sender
from whatsagent.store.database import Prepared, upsert_insert
from whatsagent.store.schema import conversations, turns
from whatsagent.store.schema import outbox as outbox_table

if TYPE_CHECKING:
    from pydantic_ai.messages import ModelMessage
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute

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
    sent_id, error = await sender.db.read(lambda conn: _result(conn, row.id))
    return ProactiveResult(outcome, conversation, row.idempotency_key, sent_id, error)


def _describe(template: TemplateOut) -> str:
    params = f" with {', '.join(template.params)}" if template.params else ""
    return f"[Template message {template.name!r}{params}]"


_OPEN = Prepared(
    lambda dialect: (
        upsert_insert(dialect, conversations)
        .values(
            key=bindparam("key"),
            channel=bindparam("channel"),
            account=bindparam("account"),
            user_key=bindparam("user_key"),
            wa_id=bindparam("wa_id"),
            user_id=bindparam("user_id"),
            last_inbound_at=0.0,
            created_at=bindparam("now"),
        )
        .on_conflict_do_nothing(index_elements=["key"])
    )
)
_SESSION = Prepared(select(conversations.c.session).where(conversations.c.key == bindparam("key")))
_TURN = Prepared(
    insert(turns)
    .values(
        conversation=bindparam("key"),
        session=bindparam("session"),
        status="sent",
        first_seq=0,
        last_seq=0,
        attempts=0,
        created_at=bindparam("now"),
        updated_at=bindparam("now"),
    )
    .returning(turns.c.id)
)
_SENT = Prepared(
    select(outbox_table.c.provider_message_id, outbox_table.c.error).where(outbox_table.c.id == bindparam("row"))
)


def _open_conversation(channel: Channel, to: User, conversation: str, said: str) -> Callable[[Connection], None]:
    """The conversation exists (its window closed: the user has not written) and its history holds
    the template, so the agent continues from it."""

    def op(conn: Connection) -> None:
        now = time.time()
        _OPEN.all(
            conn,
            key=conversation,
            channel=channel.name,
            account=channel.account,
            user_key=to.key,
            wa_id=to.wa_id,
            user_id=to.user_id,
            now=now,
        )
        (session,) = _SESSION.first(conn, key=conversation)
        (turn_id,) = _TURN.first(conn, key=conversation, session=session, now=now)
        # The history starts with what the business said; the marker request keeps it a valid exchange
        # for every model provider (some refuse a conversation that opens with the assistant).
        from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, UserPromptPart

        messages: list[ModelMessage] = [
            ModelRequest(parts=[UserPromptPart("[The business wrote to the user first]")]),
            ModelResponse(parts=[TextPart(said)]),
        ]
        history_store.append(conn, conversation, session, turn_id, history_store.dump(messages), now)

    return op


def _result(conn: Connection, row_id: int) -> tuple[str | None, str | None]:
    found = _SENT.first(conn, row=row_id)
    return (found[0], found[1]) if found else (None, None)


# -- the operator's API ------------------------------------------------------------------------------


def authorized(request: Request, token: str | None, what: str) -> Response | None:
    """None when the request carries the operator token; else the response refusing it."""
    from starlette.responses import JSONResponse

    if not token:
        return JSONResponse({"error": f"the {what} API is off: set WHATSAGENT_API_TOKEN"}, status_code=404)
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return JSONResponse({"error": "missing or wrong bearer token"}, status_code=401)
    return None


def proactive_routes(
    sender_of: Callable[[], Sender | None], channels: Sequence[Channel], token: str | None
) -> list[BaseRoute]:
    """``POST /messages/template``: send a template to a user (see the module docstring)."""
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def handle(request: Request) -> Response:
        refused = authorized(request, token, "messages")
        if refused is not None:
            return refused
        try:
            body = TemplateRequest.model_validate_json(await request.body())
            to = user_for(body.to)
        except (ValidationError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if body.channel is None and len(channels) > 1:
            names = ", ".join(c.name for c in channels)
            return JSONResponse({"error": f"several channels serve this OS: name one ({names})"}, status_code=400)
        channel = next((c for c in channels if body.channel in (None, c.name)), None)
        if channel is None:
            return JSONResponse({"error": f"no channel named {body.channel!r}"}, status_code=404)
        sender = sender_of()
        if sender is None:
            return JSONResponse({"error": "whatsagent is starting"}, status_code=503)
        try:
            template = TemplateOut(
                name=body.template,
                language=body.language,
                params=tuple(body.params),
                components=tuple(body.components),
            )
        except ValidationError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        result = await send_template(sender, channel, to, template, text=body.text, key=body.key)
        answer = {
            "status": result.outcome.value,
            "conversation": result.conversation,
            "key": result.key,
            "message_id": result.message_id,
        }
        if result.outcome is Outcome.FAILED:
            answer["error"] = result.error
            return JSONResponse(answer, status_code=422)
        return JSONResponse(answer)

    return [Route("/messages/template", handle, methods=["POST"], name="send_template")]
