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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, bindparam, case, func, or_, select, update

from whatsagent import identity, metrics
from whatsagent import outbox as outbox_rows
from whatsagent import window as windows
from whatsagent.messages import ChannelNotice, Event, StatusUpdate, inbound_adapter
from whatsagent.messages.outbound import TemplateOut, outbound_adapter
from whatsagent.privacy import masked
from whatsagent.queue import JobSpec, WorkQueue
from whatsagent.store.database import Database, Prepared, upsert_insert
from whatsagent.store.schema import conversations, inbox, outbox, statuses

log = logging.getLogger(__name__)

WAKE_TASK = "conversation.wake"
WINDOW_TASK = "conversation.window_closed"
"""Send the window's fallback template after a `failed` status reported the window closed (`Sender`)."""

DELIVERY_RANK = {"sent": 1, "delivered": 2, "read": 3, "played": 4}


def conversation_key(channel: str, user_key: str) -> str:
    """One conversation per channel and user (each channel is served by one agent)."""
    return f"{channel}|{user_key}"


def wake_job(conversation: str, *, schedule_in: float = 0.0) -> JobSpec:
    return JobSpec(
        WAKE_TASK,
        {"conversation": conversation},
        lock=conversation,
        queueing_lock=conversation,
        schedule_in=schedule_in,
    )


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
        accepted = await self.db.write(_store(events, self.clock()))
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


def _touch_conversation(dialect: str) -> object:
    stmt = upsert_insert(dialect, conversations).values(
        _params(
            "key", "channel", "account", "user_key", "wa_id", "user_id", "user_name", "last_inbound_at", "created_at"
        )
    )
    return stmt.on_conflict_do_update(
        index_elements=["key"],
        set_={
            "last_inbound_at": stmt.excluded.last_inbound_at,
            "user_name": func.coalesce(stmt.excluded.user_name, conversations.c.user_name),
            "wa_id": func.coalesce(stmt.excluded.wa_id, conversations.c.wa_id),
            "user_id": func.coalesce(stmt.excluded.user_id, conversations.c.user_id),
        },
    )


_TOUCH_CONVERSATION = Prepared(_touch_conversation)

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

_RANK = case(
    *((outbox.c.delivery == name, rank) for name, rank in DELIVERY_RANK.items()),
    (outbox.c.delivery == "failed", 99),
    else_=0,
)
# Statuses name the outbox row by the idempotency key echoed in biz_opaque_callback_data when present
# (it exists before the send, so a fast `sent` webhook never races the send's own bookkeeping), else by
# the provider's message id. A row parked and sent again keeps its key: a late status of the first
# message (another provider id) must not move the new one, hence the id check once the id is known.
_SAME_MESSAGE = or_(outbox.c.provider_message_id.is_(None), outbox.c.provider_message_id == bindparam("mid"))
_ADVANCE = {
    by: Prepared(
        update(outbox)
        .where(column == bindparam("ref"), _SAME_MESSAGE, _RANK < bindparam("rank"))
        .values(delivery=bindparam("delivery"), updated_at=bindparam("now"))
    )
    for by, column in (("key", outbox.c.idempotency_key), ("id", outbox.c.provider_message_id))
}
_FAIL = {
    by: Prepared(
        update(outbox)
        .where(column == bindparam("ref"), _SAME_MESSAGE)
        .values(delivery="failed", error_code=bindparam("code"), error=bindparam("error"), updated_at=bindparam("now"))
        .returning(
            outbox.c.id,
            outbox.c.idempotency_key,
            outbox.c.conversation,
            outbox.c.turn_id,
            outbox.c.status,
            outbox.c.message,
        )
    )
    for by, column in (("key", outbox.c.idempotency_key), ("id", outbox.c.provider_message_id))
}


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
            _TOUCH_CONVERSATION.all(
                conn,
                key=key,
                channel=e.channel,
                account=e.account,
                user_key=user.key,
                wa_id=user.wa_id,
                user_id=user.user_id,
                user_name=user.name,
                last_inbound_at=now,
                created_at=now,
            )
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
    by, ref = ("key", s.callback_data) if s.callback_data else ("id", s.message_id)
    if s.status != "failed":
        _ADVANCE[by].all(conn, ref=ref, mid=s.message_id, rank=DELIVERY_RANK[s.status], delivery=s.status, now=now)
        return None
    err = s.errors[0] if s.errors else None
    code = err.code if err else None
    error = f"{err.title}: {err.details or err.message}" if err else "failed"
    row = _FAIL[by].first(conn, ref=ref, mid=s.message_id, code=code, error=error, now=now)
    if row is None:
        return None  # not one of ours, or a late status of a message already sent again
    row_id, key, conversation, turn_id, status, message = row
    parked = False
    # `pending`: the status beat the send's own bookkeeping (mark_sent then leaves the row parked).
    if err is not None and err.window_closed and status in ("pending", "sent"):
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
        answered=outbox_rows.answered_message(conn, turn_id),
        parked=parked,
    )
