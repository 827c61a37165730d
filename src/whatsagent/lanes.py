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
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, case, func, insert, select, update

from whatsagent.inbox import wake_job
from whatsagent.messages import InboundMessage, User, inbound_adapter
from whatsagent.store.database import Database
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


def claim(conversation: str) -> Callable[[Connection], Turn | None]:
    """Resume the conversation's open turn, or open a new one over all its waiting messages."""

    def op(conn: Connection) -> Turn | None:
        conv = conn.execute(select(conversations).where(conversations.c.key == conversation)).first()
        if conv is None:
            return None
        user = User(wa_id=conv.wa_id, user_id=conv.user_id, name=conv.user_name)
        now = time.time()
        open_turn = conn.execute(
            select(turns.c.id, turns.c.session, turns.c.status, turns.c.attempts)
            .where(turns.c.conversation == conversation, turns.c.status.in_(OPEN_STATES))
            .order_by(turns.c.id)
            .limit(1)
        ).first()
        if open_turn is not None:
            attempts = open_turn.attempts + (1 if open_turn.status == "running" else 0)
            conn.execute(
                update(turns).where(turns.c.id == open_turn.id).values(attempts=attempts, updated_at=now)
            )
            return Turn(
                id=open_turn.id,
                conversation=conversation,
                session=open_turn.session,
                status=open_turn.status,
                attempts=attempts,
                channel=conv.channel,
                user=user,
                messages=_messages(conn, inbox.c.turn_id == open_turn.id),
            )
        waiting = conn.execute(
            select(
                func.min(inbox.c.seq), func.max(inbox.c.seq), func.max(case((inbox.c.triggers, 1), else_=0))
            ).where(inbox.c.conversation == conversation, inbox.c.turn_id.is_(None))
        ).first()
        if waiting is None or waiting[0] is None or not waiting[2]:
            return None  # nothing waits, or only messages that do not call for an answer (reactions...)
        first_seq, last_seq = waiting[0], waiting[1]
        turn_id = conn.execute(
            insert(turns)
            .values(
                conversation=conversation,
                session=conv.session,
                status="running",
                first_seq=first_seq,
                last_seq=last_seq,
                attempts=1,
                created_at=now,
                updated_at=now,
            )
            .returning(turns.c.id)
        ).scalar_one()
        conn.execute(
            update(inbox)
            .where(inbox.c.conversation == conversation, inbox.c.turn_id.is_(None), inbox.c.seq <= last_seq)
            .values(turn_id=turn_id)
        )
        return Turn(
            id=turn_id,
            conversation=conversation,
            session=conv.session,
            status="running",
            attempts=1,
            channel=conv.channel,
            user=user,
            messages=_messages(conn, inbox.c.turn_id == turn_id),
        )

    return op


def _messages(conn: Connection, where: Any) -> list[InboundMessage]:
    rows = conn.execute(select(inbox.c.payload).where(where).order_by(inbox.c.seq)).all()
    return [inbound_adapter.validate_json(r.payload) for r in rows]


def open_conversations(conn: Connection) -> list[str]:
    """Conversations with an open turn or a waiting message that calls for an answer."""
    with_turns = {
        r[0] for r in conn.execute(select(turns.c.conversation).where(turns.c.status.in_(OPEN_STATES)))
    }
    waiting = {
        r[0]
        for r in conn.execute(
            select(inbox.c.conversation)
            .where(inbox.c.turn_id.is_(None), inbox.c.triggers.is_(True))
            .distinct()
        )
    }
    return sorted(with_turns | waiting)


class Lanes:
    """The handler of conversation wake-up jobs."""

    def __init__(self, db: Database, queue: WorkQueue, run_turn: Callable[[Turn], Any]) -> None:
        self.db = db
        self.queue = queue
        self.run_turn = run_turn

    async def wake(self, args: dict[str, Any]) -> None:
        conversation = args["conversation"]
        for _ in range(MAX_TURNS_PER_WAKE):
            turn = await self.db.write(claim(conversation))
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
