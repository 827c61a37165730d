"""The inbox: every webhook's events, committed before the webhook is acknowledged.

`Inbox.accept` runs on the webhook's hot path: one group-committed write (messages deduped on
(channel, provider id), statuses deduped on (message id, status), conversations touched). It returns once
that is durable, so the webhook can be acknowledged; if the store cannot commit it raises
`StoreUnavailable` and the webhook answers 503 so the provider redelivers. Waking each conversation that
got a message to answer follows, off the acknowledgement's path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, bindparam, case, delete, func, select, text, update

from whatsagent import conversations, identity, metrics
from whatsagent import outbox as outbox_rows
from whatsagent import window as windows
from whatsagent.conversations import conversation_key, wake_job
from whatsagent.messages import ChannelNotice, Event, StatusUpdate, inbound_adapter
from whatsagent.messages.outbound import TemplateOut, outbound_adapter
from whatsagent.privacy import masked
from whatsagent.queue import JobSpec, WorkQueue
from whatsagent.store.database import Database, Prepared, upsert_insert
from whatsagent.store.schema import inbox, statuses

log = logging.getLogger(__name__)

WINDOW_TASK = "conversation.window_closed"
"""Send the window's fallback template after a `failed` status reported the window closed (`Sender`)."""


def window_job(conversation: str) -> JobSpec:
    return JobSpec(
        WINDOW_TASK,
        {"conversation": conversation},
        lock=conversation,
        queueing_lock=f"window|{conversation}",
    )


@dataclass(frozen=True)
class DeliveryFailure:
    """A `failed` status webhook for one of the bot's messages."""

    channel: str
    conversation: str
    key: str
    code: int | None
    error: str
    answered: str | None
    """The inbound message id the failed message answered (None outside a turn)."""
    parked: bool
    """It was a free-form message refused for a closed window: parked, and a fallback is due."""


@dataclass
class Accepted:
    """What a webhook added: new messages (duplicates excluded) and new statuses."""

    messages: int
    duplicates: int
    statuses: int
    conversations: list[str]
    failures: list[DeliveryFailure] = field(default_factory=list)


class Inbox:
    def __init__(
        self,
        db: Database,
        queue: WorkQueue,
        *,
        merge_window: float = 0.0,
        clock: Callable[[], float] = time.time,
        on_stored: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.db = db
        self.queue = queue
        self.merge_window = merge_window
        self.on_stored = on_stored
        """Told the conversations that got new messages calling for an answer, once they are committed
        (a turn thinking in one of them may start again: `whatsagent.interrupts`)."""
        self.clock = clock
        """Stamps `last_inbound_at`: the same clock the `WindowPolicy` judges the 24-hour window by."""
        self._follow_ups: set[asyncio.Task[None]] = set()

    async def accept(self, events: Sequence[Event]) -> Accepted:
        accepted = await self.db.write(_store(events, self.clock()), urgent=True)  # the webhook waits for it
        if accepted.conversations and self.on_stored is not None:
            self.on_stored(accepted.conversations)
        # Durable from here: the webhook can be acknowledged. Waking conversations is recoverable work
        # (start-up recovery, the PostgreSQL sweep, and any redelivery find messages left without a
        # wake-up), so the acknowledgement does not wait for it: one commit per webhook, not two.
        if accepted.conversations or accepted.failures:
            task = asyncio.get_running_loop().create_task(self._follow_up(accepted))
            self._follow_ups.add(task)
            task.add_done_callback(self._follow_ups.discard)
        for notice in (e for e in events if isinstance(e, ChannelNotice)):
            for err in notice.errors:
                log.warning("WhatsApp reports for %s: %s %s %s", notice.account, err.code, err.title, err.details)
        return accepted

    async def _follow_up(self, accepted: Accepted) -> None:
        try:
            if accepted.conversations:
                await self.queue.defer_many(
                    [wake_job(c, schedule_in=self.merge_window) for c in accepted.conversations]
                )
            if accepted.failures:
                await self._report(accepted.failures)
        except Exception as exc:
            log.error(
                "could not wake %d conversations after storing their messages (they wake at the next "
                "redelivery, sweep or start): %s",
                len(accepted.conversations),
                exc,
            )

    async def drain(self, timeout: float = 5.0) -> None:
        """Let wake-ups of already acknowledged webhooks be stored (at shutdown)."""
        if self._follow_ups:
            await asyncio.wait(set(self._follow_ups), timeout=timeout)

    async def _report(self, failures: list[DeliveryFailure]) -> None:
        for f in failures:
            log.error(
                "message %s for %s (answering %s) failed after it was accepted: %s%s",
                f.key,
                masked(f.conversation),
                f.answered or "no inbound message",
                f.error,
                "; parked until the user writes again" if f.parked else "",
            )
        windows_closed = sorted({f.conversation for f in failures if f.parked})
        if windows_closed:
            await self.queue.defer_many([window_job(c) for c in windows_closed])


def _params(*names: str) -> dict[str, object]:
    return {name: bindparam(name) for name in names}


_INSERT_MESSAGE = Prepared(
    lambda dialect: (
        upsert_insert(dialect, inbox)
        .values(_params("channel", "provider_id", "conversation", "kind", "triggers", "payload", "received_at"))
        .on_conflict_do_nothing(index_elements=["channel", "provider_id"])
        .returning(inbox.c.conversation, inbox.c.triggers)
    )
)


_STILL_WAITING = Prepared(
    select(inbox.c.seq).where(
        inbox.c.channel == bindparam("channel"), inbox.c.provider_id == bindparam("id"), inbox.c.turn_id.is_(None)
    )
)

_INSERT_STATUS = Prepared(
    lambda dialect: (
        upsert_insert(dialect, statuses)
        .values(_params("channel", "message_id", "status", "payload", "received_at"))
        .on_conflict_do_nothing(index_elements=["channel", "message_id", "status"])
        .returning(statuses.c.id)
    )
)


def _store(events: Sequence[Event], now: float) -> Callable[[Connection], Accepted]:
    def op(conn: Connection) -> Accepted:
        new = duplicates = new_statuses = 0
        woken: list[str] = []
        failures: list[DeliveryFailure] = []
        for e in events:
            if isinstance(e, ChannelNotice):
                continue
            if isinstance(e, StatusUpdate):
                # Dedup on (message id, status): a redelivered status changes nothing.
                if _INSERT_STATUS.first(
                    conn,
                    channel=e.channel,
                    message_id=e.message_id,
                    status=e.status,
                    payload=e.model_dump_json(),
                    received_at=now,
                ):
                    new_statuses += 1
                    metrics.delivery_statuses.labels(channel=e.channel, status=e.status).inc()
                    failure = _apply_status(conn, e, now)
                    if failure is not None:
                        failures.append(failure)
                continue
            user = identity.resolve(conn, e.channel, e.user, now)  # one user, one conversation
            key = conversation_key(e.channel, user.key)
            # Dedup in the same transaction: a redelivered message (any batching) inserts nothing.
            inserted = _INSERT_MESSAGE.first(
                conn,
                channel=e.channel,
                provider_id=e.id,
                conversation=key,
                kind=e.kind,
                triggers=e.triggers_reply,
                payload=inbound_adapter.dump_json(e).decode(),
                received_at=now,
            )
            if inserted is None:
                duplicates += 1
                # A redelivery of a message still waiting for its turn wakes its conversation again: if
                # the first wake-up was lost (a crash between commit and defer), the redelivery heals it.
                if e.triggers_reply and key not in woken and _STILL_WAITING.first(conn, channel=e.channel, id=e.id):
                    woken.append(key)
                continue
            new += 1
            conversations.touch(conn, key, e.channel, e.account, user, now)
            if e.triggers_reply and key not in woken:
                woken.append(key)
        return Accepted(
            messages=new, duplicates=duplicates, statuses=new_statuses, conversations=woken, failures=failures
        )

    return op


def _apply_status(conn: Connection, s: StatusUpdate, now: float) -> DeliveryFailure | None:
    """Move an outbox row's delivery state forward: sent < delivered < read (a read message was
    delivered, even when `delivered` never arrives); `failed` is final. Statuses arrive out of order
    (read before delivered, sent after failed), so a lower rank never overwrites a higher.

    A free-form message that failed for a closed window (the channel flags its error `window_closed`) is
    parked, to be sent when the user writes again, and the conversation's window is marked closed; the
    caller then has the fallback template sent, once."""
    ref = outbox_rows.StatusRef(s.callback_data, s.message_id)
    if s.status != outbox_rows.Delivery.FAILED:
        outbox_rows.advance_delivery(conn, ref, outbox_rows.Delivery(s.status), now)
        return None
    err = s.errors[0] if s.errors else None
    code = err.code if err else None
    error = f"{err.title}: {err.details or err.message}" if err else "failed"
    row = outbox_rows.delivery_failed(conn, ref, code, error, now)
    if row is None:
        return None  # not one of ours, or a late status of a message already sent again
    row_id, key, conversation, turn_id, status, message = row
    parked = False
    # `pending`: the status beat the send's own bookkeeping (mark_sent then leaves the row parked).
    if (
        err is not None
        and err.window_closed
        and status
        in (
            outbox_rows.OutboxState.PENDING,
            outbox_rows.OutboxState.SENT,
        )
    ):
        if not isinstance(outbound_adapter.validate_json(message), TemplateOut):
            outbox_rows.park(row_id)(conn)
            windows.mark_closed(conn, conversation)
            parked = True
    return DeliveryFailure(
        channel=s.channel,
        conversation=conversation,
        key=key,
        code=code,
        error=error,
        answered=answered_message(conn, turn_id),
        parked=parked,
    )


# -- the inbox as turns consume it (`whatsagent.lanes`, `whatsagent.turns`) ----------------------------------

_WAITING = Prepared(
    select(func.min(inbox.c.seq), func.max(inbox.c.seq), func.max(case((inbox.c.triggers, 1), else_=0))).where(
        inbox.c.conversation == bindparam("key"), inbox.c.turn_id.is_(None)
    )
)
_ASSIGN = Prepared(
    update(inbox)
    .where(inbox.c.conversation == bindparam("key"), inbox.c.turn_id.is_(None), inbox.c.seq <= bindparam("last"))
    .values(turn_id=bindparam("turn"))
    .returning(inbox.c.payload)
)
# With the conversation, the messages of a turn are a range of ix_inbox_pending (conversation, turn_id, seq),
# already in order; by turn_id alone the query read the whole inbox at every turn.
_OF_TURN = Prepared(
    select(inbox.c.payload)
    .where(inbox.c.conversation == bindparam("key"), inbox.c.turn_id == bindparam("turn"))
    .order_by(inbox.c.seq)
)
_FIRST_WAITING = Prepared(
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
# Spelled as the partial index's predicate (a constant, not a parameter), so that PostgreSQL uses it even in
# a prepared statement's generic plan: the sweep then reads only waiting rows.
_WAITING_CONVERSATIONS = (
    select(inbox.c.conversation).where(text("turn_id IS NULL"), inbox.c.triggers.is_(True)).distinct()
)
_LAST_PROVIDER_ID = Prepared(
    select(inbox.c.provider_id).where(inbox.c.turn_id == bindparam("turn")).order_by(inbox.c.seq.desc()).limit(1)
)


def waiting(conn: Connection, conversation: str) -> tuple[int, int, bool] | None:
    """The first and last seq of the messages no turn took yet, and whether one calls for an answer."""
    first_seq, last_seq, triggers = _WAITING.first(conn, key=conversation)
    return None if first_seq is None else (first_seq, last_seq, bool(triggers))


def first_waiting(conn: Connection, conversation: str) -> int | None:
    """The seq of the first waiting message that calls for an answer."""
    found = _FIRST_WAITING.first(conn, key=conversation)
    return None if found is None else int(found[0])


def count_waiting(conn: Connection) -> int:
    """How many messages that call for an answer wait for a turn, in every conversation."""
    return int(
        conn.execute(
            select(func.count()).select_from(inbox).where(inbox.c.turn_id.is_(None), inbox.c.triggers.is_(True))
        ).scalar_one()
    )


def waits(conn: Connection, conversation: str) -> bool:
    """Whether a message that calls for an answer waits for a turn in the conversation."""
    return first_waiting(conn, conversation) is not None


def assign(conn: Connection, conversation: str, last_seq: int, turn_id: int) -> list[str]:
    """Give the waiting messages up to `last_seq` to the turn; their payloads."""
    return [payload for (payload,) in _ASSIGN.all(conn, key=conversation, last=last_seq, turn=turn_id)]


def take(conn: Connection, conversation: str, turn_id: int) -> list[int]:
    """Give every waiting message to the turn; their seqs."""
    return [seq for (seq,) in _TAKE.all(conn, key=conversation, turn=turn_id)]


def payloads_of_turn(conn: Connection, conversation: str, turn_id: int) -> list[str]:
    """The messages of the conversation's turn (as stored), in arrival order."""
    return [payload for (payload,) in _OF_TURN.all(conn, key=conversation, turn=turn_id)]


def waiting_conversations(conn: Connection) -> set[str]:
    """Conversations with a waiting message that calls for an answer."""
    return {r[0] for r in conn.execute(_WAITING_CONVERSATIONS)}


def answered_message(conn: Connection, turn_id: int | None) -> str | None:
    """The provider id of the (last) inbound message a turn answers: logs quote it."""
    if turn_id is None:
        return None
    found = _LAST_PROVIDER_ID.first(conn, turn=turn_id)
    return found[0] if found else None


# -- reads for the operator API and quotes ------------------------------------------------------------------

_LAST_IN = Prepared(
    select(inbox.c.payload, inbox.c.received_at)
    .where(inbox.c.conversation == bindparam("key"))
    .order_by(inbox.c.seq.desc())
    .limit(1)
)
_UNREAD = Prepared(
    select(func.count())
    .select_from(inbox)
    .where(inbox.c.conversation == bindparam("key"), inbox.c.received_at > bindparam("since"))
)


def last_received(conn: Connection, conversation: str) -> tuple[str, float] | None:
    """The conversation's latest message (as stored) and when it arrived."""
    found = _LAST_IN.first(conn, key=conversation)
    return None if found is None else (found[0], found[1])


def received_since(conn: Connection, conversation: str, since: float) -> int:
    return int(_UNREAD.first(conn, key=conversation, since=since)[0])


def of_conversation(conn: Connection, conversation: str, limit: int) -> list[tuple[int, str, float, int | None]]:
    """The conversation's latest messages, newest first: seq, payload, received_at, turn_id."""
    return [
        (r[0], r[1], r[2], r[3])
        for r in conn.execute(
            select(inbox.c.seq, inbox.c.payload, inbox.c.received_at, inbox.c.turn_id)
            .where(inbox.c.conversation == conversation)
            .order_by(inbox.c.seq.desc())
            .limit(limit)
        )
    ]


def by_provider_id(conn: Connection, conversation: str, ids: list[str]) -> list[tuple[str, str]]:
    """The conversation's messages with these provider ids: (provider id, payload)."""
    return [
        (r[0], r[1])
        for r in conn.execute(
            select(inbox.c.provider_id, inbox.c.payload).where(
                inbox.c.conversation == conversation, inbox.c.provider_id.in_(ids)
            )
        )
    ]


# -- retention and erasure (`whatsagent.lifecycle`) -----------------------------------------------------------


def expire(conn: Connection, cutoff: float) -> dict[str, int]:
    """Delete answered messages and statuses received before `cutoff`; counts per table."""
    return {
        "inbox": conn.execute(delete(inbox).where(inbox.c.turn_id.is_not(None), inbox.c.received_at < cutoff)).rowcount,
        "statuses": conn.execute(delete(statuses).where(statuses.c.received_at < cutoff)).rowcount,
    }


def conversations_ending_in(conn: Connection, user: str) -> set[str]:
    """Conversation keys of inbox rows ending in ``|user`` (rows whose conversation never got its row: a crash
    between the two)."""
    pattern = inbox.c.conversation.like(f"%|{_escaped(user)}", escape="\\")
    return {
        k for k in conn.execute(select(inbox.c.conversation).where(pattern)).scalars() if k.rpartition("|")[2] == user
    }


def _escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def payloads_of(conn: Connection, conversations_: Collection[str]) -> list[str]:
    return list(conn.execute(select(inbox.c.payload).where(inbox.c.conversation.in_(conversations_))).scalars())


def erase(conn: Connection, conversations_: Collection[str]) -> int:
    return int(conn.execute(delete(inbox).where(inbox.c.conversation.in_(conversations_))).rowcount)


def erase_statuses(conn: Connection, provider_ids: Collection[str]) -> int:
    """Delete the statuses of these sent messages."""
    if not provider_ids:
        return 0
    return int(conn.execute(delete(statuses).where(statuses.c.message_id.in_(provider_ids))).rowcount)
