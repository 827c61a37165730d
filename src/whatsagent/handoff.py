"""Human handoff: a person takes a conversation over, answers through the bot's own outbox, hands it back.

A conversation is in one of three modes (`conversations.mode`, `ConversationMode`):

- ``bot``: the agent answers (the default);
- ``human``: an operator took it over. The conversation's lane still consumes what the user writes, in
  order, into turns of state ``human`` that are never answered (`lanes.hold`, called by `lanes.claim`), so
  no worker, on any process, runs the agent for it;
- ``waiting``: the agent (its ``handoff`` tool) or the user (a trigger word, `Handoff.triggers`) asked for
  a person. The bot is quiet as in ``human``; the user was told so (`Handoff.message`), a notification went
  out (a log line, and a POST to `Handoff.notify_url`), and the console shows a badge.

A takeover and a hand-back go through the conversation's lane like a turn: the mode is committed first,
then the lane is claimed with `fence.acquire` (and let go at once). A turn running at that moment is let
finish, not fenced off: it answers messages the user sent before the takeover (the model already ran, and
the promise is that every message is answered exactly once); its lane's next claim sees the new mode and
holds what came after. The takeover returns once the lane was claimed, that is once no bot turn runs:
from then on nothing the user writes gets a bot answer.

The operator's replies go through the same outbox and sender as the bot's (pacing, the 24-hour window and
its fallback template, retries, idempotency) and are appended to the conversation's history, as are the
user's messages a person handled: handed back, the agent sees the whole exchange. Every operator action
is recorded in `operator_actions` (who, when, what): every statement on that table is here.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, delete, insert, select

from whatsagent import conversations, fence
from whatsagent import history as history_store
from whatsagent.agents.context import DelegatingResponder
from whatsagent.conversations import Conversation, ConversationMode, wake_job
from whatsagent.errors import WhatsAgentError
from whatsagent.messages import InboundMessage, Text
from whatsagent.privacy import masked
from whatsagent.store.database import Database, Prepared
from whatsagent.store.schema import operator_actions
from whatsagent.turns import TurnState, insert_turn

if TYPE_CHECKING:
    import aiohttp
    from pydantic_ai.messages import ModelMessage

    from whatsagent.agents.context import Reply, Responder, TurnContext
    from whatsagent.channels.base import Channel
    from whatsagent.events import Bus
    from whatsagent.messages.outbound import TemplateOut
    from whatsagent.queue import WorkQueue
    from whatsagent.sender import Outcome, Sender

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Handoff:
    """How a conversation gets to a person.

    `triggers`: messages that ask for a person by themselves (compared whole, case- and
    punctuation-insensitive), e.g. ``("human", "agent")``; none by default. `message`: what the user is
    told when the conversation moves to waiting. `notify_url`: where a JSON notification is POSTed when
    a conversation starts waiting (e.g. a Slack or Teams incoming webhook relay); a log line is written
    either way. `lane_wait`: seconds a takeover waits for a running bot turn to finish."""

    triggers: Sequence[str] = ()
    message: str = "I'm passing you to a person from our team; they will answer here shortly."
    notify_url: str | None = None
    lane_wait: float = 120.0

    def asks_for_person(self, messages: Iterable[InboundMessage]) -> bool:
        words = {_plain(t) for t in self.triggers}
        texts = [m.body for m in messages if isinstance(m, Text)]
        return bool(words) and any(_plain(t) in words for t in texts)


def _plain(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum() or ch.isspace()).strip()


class NotTakenOver(WhatsAgentError):
    """An operator replied to a conversation the bot still answers: take it over first."""


def conversation_id(key: str, secret: str | None) -> str:
    """An opaque, stable id for a conversation (its key holds the user's number)."""
    return hmac.new((secret or "whatsagent").encode(), key.encode(), hashlib.sha256).hexdigest()[:24]


OPERATOR_NOTE = "[A person from the business wrote to the user]"


# -- the desk: operators' actions ----------------------------------------------------------------------

_RECORD = Prepared(
    insert(operator_actions).values(
        conversation=bindparam("key"),
        operator=bindparam("operator"),
        action=bindparam("action"),
        detail=bindparam("detail"),
        created_at=bindparam("now"),
    )
)


def record(
    conn: Connection, conversation: str, operator: str, action: str, detail: str | None = None, now: float | None = None
) -> None:
    """One line of the operators' log."""
    _RECORD.all(conn, key=conversation, operator=operator[:255], action=action, detail=detail, now=now or time.time())


_ACTIONS = Prepared(
    select(
        operator_actions.c.operator,
        operator_actions.c.action,
        operator_actions.c.detail,
        operator_actions.c.created_at,
    )
    .where(operator_actions.c.conversation == bindparam("key"))
    .order_by(operator_actions.c.id.desc())
    .limit(bindparam("limit"))
)


def actions(conn: Connection, conversation: str, limit: int) -> list[dict[str, Any]]:
    """The operators' log of a conversation, newest first."""
    names = ("operator", "action", "detail", "created_at")
    return [dict(zip(names, row, strict=True)) for row in _ACTIONS.all(conn, key=conversation, limit=limit)]


def erase_actions(conn: Connection, conversations_: Collection[str]) -> int:
    """Delete the operators' log of these conversations (`whatsagent.lifecycle`)."""
    return int(
        conn.execute(delete(operator_actions).where(operator_actions.c.conversation.in_(conversations_))).rowcount
    )


def _change_mode(
    conversation: str,
    mode: ConversationMode,
    reason: str | None,
    operator: str,
    action: str,
    only_from: Sequence[ConversationMode] | None,
) -> Callable[[Connection], ConversationMode | None]:
    """Set the mode (if it is one of `only_from`) and log who did it; the mode before, or None."""

    def op(conn: Connection) -> ConversationMode | None:
        found = conversations.find(conn, conversation)
        if found is None:
            return None
        if only_from is not None and found.mode not in only_from:
            return found.mode
        now = time.time()
        conversations.set_mode(conn, conversation, mode, reason, now)
        record(conn, conversation, operator, action, reason, now)
        return found.mode

    return op


def _claim_lane(conversation: str, holder: int) -> Callable[[Connection], bool]:
    """Claim the lane as a turn would and let go at once: True when no live holder ran it."""

    def op(conn: Connection) -> bool:
        lease = fence.acquire(conn, conversation, holder)
        if lease is None:
            return False
        fence.release(conn, lease)
        return True

    return op


@dataclass
class Desk:
    """The operator's side of handoff: takeover, reply, hand back, and asking for a person."""

    db: Database
    holder: Callable[[], fence.Holder | None]
    queue: Callable[[], WorkQueue | None]
    sender: Callable[[], Sender | None]
    channels: Mapping[str, Channel]
    policy: Handoff = field(default_factory=Handoff)
    http: Callable[[], aiohttp.ClientSession | None] = lambda: None
    bus: Bus | None = None
    secret: str | None = None
    available: bool = True
    """Whether a person can take conversations at all (the operator API is on)."""
    _notifications: set[asyncio.Task[None]] = field(default_factory=set)

    async def find(self, conversation: str) -> Conversation | None:
        return await self.db.read(lambda conn: conversations.find(conn, conversation))

    async def takeover(self, conversation: str, operator: str) -> bool:
        """The bot stops answering `conversation`. True once no bot turn runs; False if one still ran
        after `Handoff.lane_wait` seconds (it finishes by itself; nothing after it gets a bot answer)."""
        return await self._switch(conversation, ConversationMode.HUMAN, None, operator, "takeover")

    async def hand_back(self, conversation: str, operator: str) -> bool:
        """The bot answers `conversation` again, with the operator's messages in its history."""
        return await self._switch(conversation, ConversationMode.BOT, None, operator, "hand_back")

    async def _switch(
        self, conversation: str, mode: ConversationMode, reason: str | None, operator: str, action: str
    ) -> bool:
        before = await self.db.write(_change_mode(conversation, mode, reason, operator, action, None))
        if before is None:
            raise LookupError(f"no conversation {masked(conversation)}")
        self._publish(conversation)
        free = await self._through_lane(conversation)
        queue = self.queue()
        if queue is not None:
            # Whatever waits now is the lane's to take: held for a person, or answered by the bot again.
            await queue.defer_many([wake_job(conversation)])
        return free

    async def _through_lane(self, conversation: str) -> bool:
        holder = self.holder()
        if holder is None:
            return True  # nothing runs turns where no holder is (a store without lanes)
        deadline = time.monotonic() + self.policy.lane_wait
        delay = 0.02
        while True:
            # This process's own lane task shares our holder id: only `running` tells it apart.
            if conversation not in holder.running:
                holder.running.add(conversation)
                try:
                    if await self.db.write(_claim_lane(conversation, holder.id)):
                        return True
                finally:
                    holder.running.discard(conversation)
            if time.monotonic() > deadline:
                log.warning(
                    "a bot turn of %s still runs; it finishes, nothing after it is answered by the bot",
                    masked(conversation),
                )
                return False
            await asyncio.sleep(delay)
            delay = min(0.5, delay * 2)

    async def reply(
        self, conversation: str, operator: str, *, text: str | None = None, template: TemplateOut | None = None
    ) -> tuple[Outcome, dict[str, Any]]:
        """Send the operator's text (or template) to the user through the outbox, and into the history."""
        from whatsagent.messages.outbound import TextOut
        from whatsagent.proactive import send_template

        found = await self.find(conversation)
        if found is None:
            raise LookupError(f"no conversation {masked(conversation)}")
        if found.mode == ConversationMode.BOT:
            raise NotTakenOver("the bot answers this conversation: take it over first")
        if found.mode == ConversationMode.WAITING:
            await self.takeover(conversation, operator)
        sender, channel = self.sender(), self.channels.get(found.channel)
        if sender is None or channel is None:
            raise LookupError(f"channel {found.channel!r} is not served here")
        key = f"operator:{uuid.uuid4().hex}"
        if template is not None:
            result = await send_template(sender, channel, found.user, template, key=key)
            await self.db.write(lambda conn: record(conn, conversation, operator, "reply", f"template {template.name}"))
            self._publish(conversation)
            return result.outcome, {"key": result.key, "message_id": result.message_id, "error": result.error}
        assert text is not None
        await self.db.write(self._remember_reply(conversation, found.session, operator, text))
        outcome, row = await sender.send(
            channel, found.user, TextOut(body=text), conversation=conversation, key=key, deadline=30.0
        )
        self._publish(conversation)
        return outcome, {"key": row.idempotency_key, "outbox_id": row.id}

    @staticmethod
    def _remember_reply(conversation: str, session: int, operator: str, text: str) -> Callable[[Connection], None]:
        def op(conn: Connection) -> None:
            now = time.time()
            turn_id = insert_turn(conn, conversation, session, TurnState.OPERATOR, now=now)
            from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, UserPromptPart

            messages: list[ModelMessage] = [
                ModelRequest(parts=[UserPromptPart(OPERATOR_NOTE)]),
                ModelResponse(parts=[TextPart(text)]),
            ]
            history_store.append(conn, conversation, session, turn_id, history_store.dump(messages), now)
            record(conn, conversation, operator, "reply", text[:500], now)

        return op

    async def ask_for_person(self, conversation: str, reason: str, *, by: str) -> bool:
        """Move a bot conversation to waiting and notify; False (nothing done) if no person can take
        it, or a person already has it."""
        if not self.available:
            return False
        before = await self.db.write(
            _change_mode(
                conversation, ConversationMode.WAITING, reason[:1000], by, "ask_for_person", [ConversationMode.BOT]
            )
        )
        if before != ConversationMode.BOT:
            return False
        log.warning("conversation %s waits for a person (asked by the %s): %s", masked(conversation), by, reason)
        self._publish(conversation)
        if self.policy.notify_url:
            task = asyncio.create_task(self._notify(conversation, reason, by))
            self._notifications.add(task)
            task.add_done_callback(self._notifications.discard)
        return True

    async def _notify(self, conversation: str, reason: str, by: str) -> None:
        http = self.http()
        if http is None or not self.policy.notify_url:
            return
        found = await self.find(conversation)
        body = {
            "event": "conversation.waiting",
            "conversation": conversation_id(conversation, self.secret),
            "channel": found.channel if found else None,
            "user": masked(conversation).rpartition("|")[2],
            "name": found.user.name if found else None,
            "reason": reason,
            "asked_by": by,
            "at": time.time(),
        }
        try:
            import aiohttp

            async with http.post(
                self.policy.notify_url,
                data=json.dumps(body),
                headers={"Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=10),
            ) as resp:
                if resp.status >= 300:
                    log.warning("handoff notification refused: HTTP %d", resp.status)
        except Exception as exc:  # a notification must never cost the turn
            log.warning("handoff notification not delivered: %r", exc)

    def _publish(self, conversation: str) -> None:
        if self.bus is not None:
            self.bus.publish(conversation)


# -- in the turn: the agent (or the user) asks for a person ----------------------------------------------


@dataclass
class _Asking:
    desk: Desk
    ctx: TurnContext


_current: contextvars.ContextVar[_Asking | None] = contextvars.ContextVar("whatsagent_handoff", default=None)


async def ask_from_turn(ctx: TurnContext, reason: str) -> str:
    """What the ``handoff`` tool does: the conversation waits for a person, the user is told."""
    from whatsagent.messages.outbound import TextOut

    asking = _current.get()
    if asking is None or not asking.desk.available:
        return "No person can take this conversation now (handoff is not set up): keep helping the user yourself."
    moved = await asking.desk.ask_for_person(ctx.conversation, reason, by="agent")
    if moved:
        ctx.send(TextOut(body=asking.desk.policy.message))
    return (
        "The conversation was handed to a person, and the user was told they will answer here. "
        "End your turn now with no further text."
    )


class HandingResponder(DelegatingResponder):
    """A responder that can hand its conversations to a person: trigger words skip the agent, and the
    ``handoff`` tool reaches the desk during the agent's run."""

    def __init__(self, inner: Responder, desk: Callable[[], Desk | None]) -> None:
        super().__init__(inner)
        self.desk = desk

    async def respond(self, ctx: TurnContext) -> Reply:
        from whatsagent.agents.context import Reply

        desk = self.desk()
        if desk is None:
            return await self.inner.respond(ctx)
        if desk.available and desk.policy.asks_for_person(ctx.messages):
            if await desk.ask_for_person(ctx.conversation, "the user asked for a person", by="user"):
                return Reply(text=desk.policy.message)
        token = _current.set(_Asking(desk, ctx))
        try:
            return await self.inner.respond(ctx)
        finally:
            _current.reset(token)
