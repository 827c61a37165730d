"""Conversation lanes: one turn at a time per conversation, consuming its messages in arrival order.

A wake-up job (locked on the conversation, so never two at once) claims every message waiting in the
conversation's inbox into one turn — messages that arrived while the previous turn ran, or within the
merge window, become one agent input — runs it, and repeats until nothing waits. A turn left open by a
crash (``running`` or ``answered``) is resumed before any new one starts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic_ai.messages import ModelMessage
from sqlalchemy import Connection, bindparam, case, func, insert, or_, select, text, update

from whatsagent import history
from whatsagent.inbox import wake_job
from whatsagent.messages import InboundMessage, User, inbound_adapter
from whatsagent.store.database import Database, Prepared
from whatsagent.store.schema import conversations, inbox, turns
from whatsagent.workqueue import WorkQueue

log = logging.getLogger("whatsagent.lanes")

OPEN_STATES = ("running", "answered")
# A lane hands its conversation back to the queue after this many turns in a row, so that one very
# chatty user cannot hold a worker forever.
MAX_TURNS_PER_WAKE = 16


@dataclass
class Turn:
    """One agent run over a batch of a conversation's messages.

    States: ``running`` (the agent is answering), ``answered`` (the answer is stored in the outbox,
    sends may remain), ``sent`` (every part accepted), ``failed`` (some part could not be sent).
    """

    id: int
    conversation: str
    session: int
    status: str
    attempts: int
    channel: str
    user: User
    messages: list[InboundMessage]
    history: list[ModelMessage] = field(default_factory=list)
    """Earlier turns of the session (only for a turn still to be answered)."""


_CONVERSATION = Prepared(
    select(
        conversations.c.channel,
        conversations.c.wa_id,
        conversations.c.user_id,
        conversations.c.user_name,
        conversations.c.session,
    ).where(conversations.c.key == bindparam("key"))
)
_OPEN_TURN = Prepared(
    select(turns.c.id, turns.c.session, turns.c.status, turns.c.attempts)
    .where(turns.c.conversation == bindparam("key"), or_(*(turns.c.status == state for state in OPEN_STATES)))
    .order_by(turns.c.id)
    .limit(1)
)
_RETRY_TURN = Prepared(
    update(turns).where(turns.c.id == bindparam("turn")).values(attempts=bindparam("n"), updated_at=bindparam("now"))
)
_WAITING = Prepared(
    select(func.min(inbox.c.seq), func.max(inbox.c.seq), func.max(case((inbox.c.triggers, 1), else_=0))).where(
        inbox.c.conversation == bindparam("key"), inbox.c.turn_id.is_(None)
    )
)
_OPEN = Prepared(
    insert(turns)
    .values(
        conversation=bindparam("key"),
        session=bindparam("session"),
        status="running",
        first_seq=bindparam("first"),
        last_seq=bindparam("last"),
        attempts=1,
        created_at=bindparam("now"),
        updated_at=bindparam("now"),
    )
    .returning(turns.c.id)
)
_ASSIGN = Prepared(
    update(inbox)
    .where(inbox.c.conversation == bindparam("key"), inbox.c.turn_id.is_(None), inbox.c.seq <= bindparam("last"))
    .values(turn_id=bindparam("turn"))
)
_MESSAGES = Prepared(select(inbox.c.payload).where(inbox.c.turn_id == bindparam("turn")).order_by(inbox.c.seq))


def claim(conversation: str, history_turns: Callable[[str], int]) -> Callable[[Connection], Turn | None]:
    """Resume the conversation's open turn, or open a new one over all its waiting messages; with the
    last `history_turns(channel)` turns of context when the agent still has to answer."""

    def op(conn: Connection) -> Turn | None:
        conv = _CONVERSATION.first(conn, key=conversation)
        if conv is None:
            return None
        channel, wa_id, user_id, user_name, session = conv
        user = User(wa_id=wa_id, user_id=user_id, name=user_name)
        now = time.time()
        open_turn = _OPEN_TURN.first(conn, key=conversation)
        if open_turn is not None:
            turn_id, session, status, attempts = open_turn
            attempts += 1 if status == "running" else 0
            _RETRY_TURN.all(conn, turn=turn_id, n=attempts, now=now)
        else:
            first_seq, last_seq, triggers = _WAITING.first(conn, key=conversation)
            if first_seq is None or not triggers:
                return None  # nothing waits, or only messages that do not call for an answer (reactions...)
            turn_id = _OPEN.first(conn, key=conversation, session=session, first=first_seq, last=last_seq, now=now)[0]
            _ASSIGN.all(conn, key=conversation, last=last_seq, turn=turn_id)
            status, attempts = "running", 1
        return Turn(
            id=turn_id,
            conversation=conversation,
            session=session,
            status=status,
            attempts=attempts,
            channel=channel,
            user=user,
            messages=[inbound_adapter.validate_json(payload) for (payload,) in _MESSAGES.all(conn, turn=turn_id)],
            history=history.load(conn, conversation, session, history_turns(channel)) if status == "running" else [],
        )

    return op


# Spelled as the partial indexes' predicates (constants, not parameters), so that PostgreSQL uses them
# even in a prepared statement's generic plan: the sweep then reads only unfinished rows.
_UNFINISHED_TURNS = select(turns.c.conversation).where(text("status IN ('running', 'answered')"))
_WAITING_MESSAGES = select(inbox.c.conversation).where(text("turn_id IS NULL"), inbox.c.triggers.is_(True)).distinct()


def open_conversations(conn: Connection) -> list[str]:
    """Conversations with an open turn or a waiting message that calls for an answer."""
    with_turns = {r[0] for r in conn.execute(_UNFINISHED_TURNS)}
    waiting = {r[0] for r in conn.execute(_WAITING_MESSAGES)}
    return sorted(with_turns | waiting)


class Lanes:
    """The handler of conversation wake-up jobs."""

    def __init__(
        self, db: Database, queue: WorkQueue, run_turn: Callable[[Turn], Any], history_turns: Callable[[str], int]
    ) -> None:
        self.db = db
        self.queue = queue
        self.run_turn = run_turn
        self.history_turns = history_turns

    async def wake(self, args: dict[str, Any]) -> None:
        conversation = args["conversation"]
        for _ in range(MAX_TURNS_PER_WAKE):
            turn = await self.db.write(claim(conversation, self.history_turns))
            if turn is None:
                return
            await self.run_turn(turn)
        await self.queue.defer_many([wake_job(conversation)])

    async def recover(self) -> int:
        """Wake every conversation left with work by a previous run (crash, deploy)."""
        pending = await self.db.read(open_conversations)
        if pending:
            log.info("waking %d conversations with unfinished work", len(pending))
            await self.queue.defer_many([wake_job(c) for c in pending])
        return len(pending)
