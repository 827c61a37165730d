"""Conversation lanes: one turn at a time per conversation, consuming its messages in the order written.

A wake-up job claims the conversation's lane (`whatsagent.fence`: a fencing token in the database, never a
timer), then claims every message waiting in the conversation's inbox into one turn — messages that
arrived while the previous turn ran, or within the merge window, become one agent input — runs it, and
repeats until nothing waits; the lane is let go in the same transaction that finds nothing waiting, so a
message is either seen by the owner or finds the lane free. A wake-up that finds the lane owned by a live
holder does nothing: that owner takes what waits. A turn left open by a crash (``running`` or
``answered``) is resumed before any new one starts. While a person has the conversation (`whatsagent.handoff`:
mode ``human`` or ``waiting``), waiting messages are claimed into a turn no agent answers.

Order within a merged turn: the provider's timestamp, then arrival. WhatsApp's timestamps have one-second
resolution, so two messages written in the same second keep the order their webhooks arrived in; a
message whose webhook arrives after its successor's turn was claimed (Meta redelivering it late) is
answered in the next turn.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, case, func, insert, or_, select, text, update

from whatsagent import fence, handoff, history, metrics
from whatsagent.fence import FenceLost, Holder, Lease
from whatsagent.inbox import wake_job
from whatsagent.messages import InboundMessage, User, inbound_adapter
from whatsagent.privacy import masked
from whatsagent.queue import WorkQueue
from whatsagent.store.database import Database, Prepared
from whatsagent.store.schema import conversations, inbox, turns

if TYPE_CHECKING:
    from pydantic_ai.messages import ModelMessage

log = logging.getLogger(__name__)


class TurnState(enum.StrEnum):
    RUNNING = "running"
    """Claimed; the agent is answering (or will, when a crashed run is resumed)."""
    ANSWERED = "answered"
    """The answer is stored in the outbox; sends may remain."""
    SENT = "sent"
    """Every part was accepted (or parked for a closed window)."""
    FAILED = "failed"
    """Some part could not be sent."""
    HELD = "human"
    """Its messages went to a person who had taken the conversation over: never answered by the agent."""


OPEN_STATES = (TurnState.RUNNING.value, TurnState.ANSWERED.value)
# A lane hands its conversation back to the queue after this many turns in a row, so that one very
# chatty user cannot hold a worker forever.
MAX_TURNS_PER_WAKE = 16


@dataclass
class Turn:
    """One agent run over a batch of a conversation's messages.

    `status` is a `TurnState`; `attempts` counts the runs started, this one included.
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
        conversations.c.mode,
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
        status=TurnState.RUNNING.value,
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
    .returning(inbox.c.seq)
)
_MESSAGES = Prepared(select(inbox.c.payload).where(inbox.c.turn_id == bindparam("turn")).order_by(inbox.c.seq))


_WAITS = Prepared(
    select(inbox.c.seq)
    .where(inbox.c.conversation == bindparam("key"), inbox.c.turn_id.is_(None), inbox.c.triggers.is_(True))
    .order_by(inbox.c.seq)
    .limit(1)
)
_TAKE = Prepared(
    update(inbox)
    .where(inbox.c.conversation == bindparam("key"), inbox.c.turn_id.is_(None))
    .values(turn_id=bindparam("turn"))
    .returning(inbox.c.seq)
)
_EXTEND = Prepared(
    update(turns)
    .where(turns.c.id == bindparam("turn"), turns.c.status == TurnState.RUNNING.value)
    .values(last_seq=bindparam("last"), updated_at=bindparam("now"))
)


def waits(conn: Connection, conversation: str) -> bool:
    """Whether a message that calls for an answer waits for a turn in the conversation."""
    return _WAITS.first(conn, key=conversation) is not None


def take_new_messages(turn: Turn) -> Callable[[Connection], Turn]:
    """A running turn started again (the user wrote while it thought): it takes every message waiting
    since, and is to be answered with all of them."""

    def op(conn: Connection) -> Turn:
        taken = [seq for (seq,) in _TAKE.all(conn, key=turn.conversation, turn=turn.id)]
        if taken:
            _EXTEND.all(conn, turn=turn.id, last=max(taken), now=time.time())
        return dataclasses.replace(turn, messages=_in_written_order(_MESSAGES.all(conn, turn=turn.id)))

    return op


def _in_written_order(rows: list[Any]) -> list[InboundMessage]:
    """The turn's messages by the provider's timestamp, then arrival (rows come in arrival order and the
    sort is stable)."""
    messages = [inbound_adapter.validate_json(payload) for (payload,) in rows]
    return sorted(messages, key=lambda m: m.timestamp)


def claim(
    conversation: str, history_turns: Callable[[str], int], *, one_per_turn: bool = False
) -> Callable[[Connection], Turn | None]:
    """Resume the conversation's open turn, or open a new one over all its waiting messages (or, with
    `one_per_turn`, those up to the first that calls for an answer); with the last
    `history_turns(channel)` turns of context when the agent still has to answer."""

    def op(conn: Connection) -> Turn | None:
        conv = _CONVERSATION.first(conn, key=conversation)
        if conv is None:
            return None
        channel, wa_id, user_id, user_name, session, mode = conv
        user = User(wa_id=wa_id, user_id=user_id, name=user_name)
        now = time.time()
        open_turn = _OPEN_TURN.first(conn, key=conversation)
        if open_turn is not None:
            turn_id, session, status, attempts = open_turn
            attempts += 1 if status == TurnState.RUNNING else 0
            _RETRY_TURN.all(conn, turn=turn_id, n=attempts, now=now)
        else:
            first_seq, last_seq, triggers = _WAITING.first(conn, key=conversation)
            if first_seq is None or not triggers:
                return None  # nothing waits, or only messages that do not call for an answer (reactions...)
            if mode != handoff.BOT:  # a person has the conversation: its messages are theirs, unanswered
                handoff.hold(conn, conversation, session, first_seq, last_seq, now)
                return None
            if one_per_turn:
                last_seq = _WAITS.first(conn, key=conversation)[0]
            turn_id = _OPEN.first(conn, key=conversation, session=session, first=first_seq, last=last_seq, now=now)[0]
            if not _ASSIGN.all(conn, key=conversation, last=last_seq, turn=turn_id):
                raise AssertionError(f"turn {turn_id} of {conversation!r} claimed no message")  # never runs empty
            status, attempts = TurnState.RUNNING.value, 1
        return Turn(
            id=turn_id,
            conversation=conversation,
            session=session,
            status=status,
            attempts=attempts,
            channel=channel,
            user=user,
            messages=_in_written_order(_MESSAGES.all(conn, turn=turn_id)),
            history=history.load(conn, conversation, session, history_turns(channel))
            if status == TurnState.RUNNING
            else [],
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


def _next_turn(
    conversation: str,
    holder: int,
    lease: Lease | None,
    history_turns: Callable[[str], int],
    one_per_turn: bool,
) -> Callable[[Connection], tuple[Lease | None, Turn | None]]:
    """One transaction: claim the lane (first time) or check the lease (later), then claim the next turn;
    when nothing waits, let go of the lane in the same transaction."""
    claim_turn = claim(conversation, history_turns, one_per_turn=one_per_turn)

    def op(conn: Connection) -> tuple[Lease | None, Turn | None]:
        held = lease
        if held is None:
            held = fence.acquire(conn, conversation, holder)
            if held is None:
                return None, None  # a live holder owns the lane: it takes what waits
        else:
            fence.guard(conn, held)
        turn = claim_turn(conn)
        if turn is None:
            fence.release(conn, held)
        return held, turn

    return op


class Lanes:
    """The handler of conversation wake-up jobs."""

    def __init__(
        self,
        db: Database,
        queue: WorkQueue,
        run_turn: Callable[[Turn, Lease], Any],
        history_turns: Callable[[str], int],
        holder: Holder,
        *,
        one_per_turn: bool = False,
    ) -> None:
        self.db = db
        self.queue = queue
        self.run_turn = run_turn
        self.history_turns = history_turns
        self.holder = holder
        self.one_per_turn = one_per_turn
        """`TurnPolicy(on_new_message="queue")`: each message that calls for an answer gets its own turn."""

    async def wake(self, args: dict[str, Any]) -> None:
        conversation = args["conversation"]
        if conversation in self.holder.running:
            return  # this process runs the lane right now, and takes what waits before it lets go
        self.holder.running.add(conversation)
        try:
            await self._run(conversation)
        finally:
            self.holder.running.discard(conversation)

    async def _run(self, conversation: str) -> None:
        lease: Lease | None = None
        try:
            for _ in range(MAX_TURNS_PER_WAKE):
                lease, turn = await self.db.write(
                    _next_turn(conversation, self.holder.id, lease, self.history_turns, self.one_per_turn)
                )
                if lease is None:
                    log.debug("lane %s is owned by a live holder: leaving it to its owner", conversation)
                    return
                if turn is None:
                    return  # let go: nothing waits
                await self.run_turn(turn, lease)
            await self.db.write(lambda conn: fence.release(conn, lease))  # type: ignore[arg-type]
            lease = None
            await self.queue.defer_many([wake_job(conversation)])
        except FenceLost as exc:
            metrics.lanes_lost.inc()
            # The lane's new owner resumes from what was committed; nothing more is written or sent here.
            log.warning("stopped a turn of %s: %s", masked(conversation), exc)
        except Exception:
            if lease is not None:
                # Let another worker (or this one's retry) take the lane now rather than at this process's end.
                with contextlib.suppress(Exception):
                    await self.db.write(lambda conn: fence.release(conn, lease))  # type: ignore[arg-type]
            raise

    async def recover(self) -> int:
        """Wake every conversation left with work by a previous run (crash, deploy)."""
        pending = await self.db.read(open_conversations)
        if pending:
            log.info("waking %d conversations with unfinished work", len(pending))
            await self.queue.defer_many([wake_job(c) for c in pending])
        return len(pending)
