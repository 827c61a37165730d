"""The inbox: every webhook's events, committed before the webhook is acknowledged.

`Inbox.accept` runs on the webhook's hot path: one batched write (messages deduped on
(channel, provider id), statuses deduped on (message id, status), conversations touched), then one
wake-up per conversation that got a message to answer. It returns only when both are durable; if the
store cannot commit it raises `StoreUnavailable` and the webhook answers 503 so the provider redelivers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, case, func, update
from sqlalchemy.dialects import postgresql, sqlite

from whatsagent.messages import ChannelNotice, Event, StatusUpdate, inbound_adapter
from whatsagent.store.database import Database
from whatsagent.store.schema import conversations, inbox, outbox, statuses
from whatsagent.workqueue import JobSpec, WorkQueue

log = logging.getLogger("whatsagent.inbox")

WAKE_TASK = "conversation.wake"

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


@dataclass
class Accepted:
    """What a webhook added: new messages (duplicates excluded) and new statuses."""

    messages: int
    duplicates: int
    statuses: int
    conversations: list[str]


class Inbox:
    def __init__(self, db: Database, queue: WorkQueue, *, merge_window: float = 0.0) -> None:
        self.db = db
        self.queue = queue
        self.merge_window = merge_window

    async def accept(self, events: Sequence[Event]) -> Accepted:
        accepted = await self.db.write(_store(events, self.db.dialect))
        if accepted.conversations:
            await self.queue.defer_many(
                [wake_job(c, schedule_in=self.merge_window) for c in accepted.conversations]
            )
        for notice in (e for e in events if isinstance(e, ChannelNotice)):
            for err in notice.errors:
                log.warning(
                    "WhatsApp reports for %s: %s %s %s", notice.account, err.code, err.title, err.details
                )
        return accepted


def _insert(dialect: str):  # type: ignore[no-untyped-def]
    return (sqlite if dialect == "sqlite" else postgresql).insert


def _store(events: Sequence[Event], dialect: str) -> Callable[[Connection], Accepted]:
    insert = _insert(dialect)

    def op(conn: Connection) -> Accepted:
        now = time.time()
        rows = []
        people: dict[str, dict[str, object]] = {}
        status_rows = []
        for e in events:
            if isinstance(e, StatusUpdate):
                status_rows.append(e)
                continue
            if isinstance(e, ChannelNotice):
                continue
            key = conversation_key(e.channel, e.user.key)
            rows.append(
                {
                    "channel": e.channel,
                    "provider_id": e.id,
                    "conversation": key,
                    "kind": e.kind,
                    "triggers": e.triggers_reply,
                    "payload": inbound_adapter.dump_json(e).decode(),
                    "received_at": now,
                }
            )
            people[key] = {
                "key": key,
                "channel": e.channel,
                "account": e.account,
                "user_key": e.user.key,
                "wa_id": e.user.wa_id,
                "user_id": e.user.user_id,
                "user_name": e.user.name,
                "last_inbound_at": now,
                "created_at": now,
            }
        woken: list[str] = []
        new = 0
        if rows:
            # Dedup in the same transaction: a redelivered message (any batching) inserts nothing.
            inserted = conn.execute(
                insert(inbox)
                .values(rows)
                .on_conflict_do_nothing(index_elements=["channel", "provider_id"])
                .returning(inbox.c.conversation, inbox.c.triggers)
            ).all()
            new = len(inserted)
            seen: set[str] = set()
            for conv, triggers in inserted:
                if triggers and conv not in seen:
                    seen.add(conv)
                    woken.append(conv)
            touched = {conv for conv, _ in inserted}
            if touched:
                stmt = insert(conversations).values([people[k] for k in people if k in touched])
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["key"],
                        set_={
                            "last_inbound_at": stmt.excluded.last_inbound_at,
                            "user_name": func.coalesce(stmt.excluded.user_name, conversations.c.user_name),
                            "wa_id": func.coalesce(stmt.excluded.wa_id, conversations.c.wa_id),
                            "user_id": func.coalesce(stmt.excluded.user_id, conversations.c.user_id),
                        },
                    )
                )
        new_statuses = 0
        if status_rows:
            inserted_statuses = conn.execute(
                insert(statuses)
                .values(
                    [
                        {
                            "channel": s.channel,
                            "message_id": s.message_id,
                            "status": s.status,
                            "payload": s.model_dump_json(),
                            "received_at": now,
                        }
                        for s in status_rows
                    ]
                )
                .on_conflict_do_nothing(index_elements=["channel", "message_id", "status"])
                .returning(statuses.c.message_id, statuses.c.status)
            ).all()
            new_statuses = len(inserted_statuses)
            fresh = {(m, st) for m, st in inserted_statuses}
            for s in status_rows:
                if (s.message_id, s.status) in fresh:
                    fresh.discard((s.message_id, s.status))
                    _apply_status(conn, s, now)
        return Accepted(messages=new, duplicates=len(rows) - new, statuses=new_statuses, conversations=woken)

    return op


def _apply_status(conn: Connection, s: StatusUpdate, now: float) -> None:
    """Move an outbox row's delivery state forward: sent < delivered < read; `failed` is final.
    Statuses arrive out of order (read before delivered), so a lower rank never overwrites a higher."""
    target = (
        outbox.c.idempotency_key == s.callback_data
        if s.callback_data
        else outbox.c.provider_message_id == s.message_id
    )
    if s.status == "failed":
        err = s.errors[0] if s.errors else None
        conn.execute(
            update(outbox)
            .where(target)
            .values(
                delivery="failed",
                error_code=err.code if err else None,
                error=(f"{err.title}: {err.details or err.message}" if err else "failed"),
                updated_at=now,
            )
        )
        return
    rank = DELIVERY_RANK[s.status]
    current = case(
        *((outbox.c.delivery == name, r) for name, r in DELIVERY_RANK.items()),
        (outbox.c.delivery == "failed", 99),
        else_=0,
    )
    conn.execute(update(outbox).where(target, current < rank).values(delivery=s.status, updated_at=now))
