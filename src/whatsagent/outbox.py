"""The outbox: every message the bot will send, stored before any is sent.

Each row carries an idempotency key (``turn:<id>:<position>``): a turn replayed after a crash finds its
rows already there and sends only those not yet accepted, so an answer is never sent twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, insert, select, update

from whatsagent.outbound import OutboundMessage, outbound_adapter
from whatsagent.store.database import Prepared
from whatsagent.store.schema import outbox


@dataclass(frozen=True)
class OutboxRow:
    id: int
    idempotency_key: str
    position: int
    message: OutboundMessage
    attempts: int


def idempotency_key(turn_id: int, position: int) -> str:
    return f"turn:{turn_id}:{position}"


_INSERT = Prepared(
    insert(outbox).values(
        idempotency_key=bindparam("key"),
        turn_id=bindparam("turn"),
        conversation=bindparam("conversation"),
        position=bindparam("position"),
        message=bindparam("message"),
        status="pending",
        attempts=0,
        created_at=bindparam("now"),
        updated_at=bindparam("now"),
    )
)
_UNSENT = Prepared(
    select(outbox.c.id, outbox.c.idempotency_key, outbox.c.position, outbox.c.message, outbox.c.attempts)
    .where(outbox.c.turn_id == bindparam("turn"), outbox.c.status == "pending")
    .order_by(outbox.c.position)
)
_SENT = Prepared(
    update(outbox)
    .where(outbox.c.id == bindparam("row"))
    .values(
        status="sent",
        provider_message_id=bindparam("provider_id"),
        attempts=bindparam("n"),
        updated_at=bindparam("now"),
    )
)
_FAILED = Prepared(
    update(outbox)
    .where(outbox.c.id == bindparam("row"))
    .values(
        status="failed",
        error_code=bindparam("code"),
        error=bindparam("reason"),
        attempts=bindparam("n"),
        updated_at=bindparam("now"),
    )
)


def insert_rows(conn: Connection, *, turn_id: int, conversation: str, parts: Sequence[OutboundMessage]) -> None:
    now = time.time()
    _INSERT.many(
        conn,
        [
            {
                "key": idempotency_key(turn_id, i),
                "turn": turn_id,
                "conversation": conversation,
                "position": i,
                "message": outbound_adapter.dump_json(part).decode(),
                "now": now,
            }
            for i, part in enumerate(parts)
        ],
    )


def unsent(conn: Connection, turn_id: int) -> list[OutboxRow]:
    """The turn's rows still to send, in order."""
    return [
        OutboxRow(row_id, key, position, outbound_adapter.validate_json(message), attempts)
        for row_id, key, position, message, attempts in _UNSENT.all(conn, turn=turn_id)
    ]


def mark_sent(row_id: int, provider_message_id: str, attempts: int) -> Callable[[Connection], None]:
    def op(conn: Connection) -> None:
        _SENT.all(conn, row=row_id, provider_id=provider_message_id, n=attempts, now=time.time())

    return op


def mark_failed(row_id: int, code: int | None, error: str, attempts: int) -> Callable[[Connection], None]:
    def op(conn: Connection) -> None:
        _FAILED.all(conn, row=row_id, code=code, reason=error[:2000], n=attempts, now=time.time())

    return op


# A worker killed between the provider accepting a message and recording it leaves the row `pending`:
# the turn's replay must not send it again. WhatsApp's status webhooks name the row by its idempotency
# key (biz_opaque_callback_data), and the inbox records their state in `delivery` even on a pending row.
_REPORTED = Prepared(select(outbox.c.delivery).where(outbox.c.id == bindparam("row")))
_CONFIRMED = Prepared(
    update(outbox)
    .where(outbox.c.id == bindparam("row"), outbox.c.status == "pending")
    .values(status="sent", updated_at=bindparam("now"))
)


def reported(conn: Connection, row_id: int) -> str | None:
    """The delivery state a status webhook reported for the row, if any came: proof it was accepted."""
    found = _REPORTED.first(conn, row=row_id)
    return found[0] if found else None


def mark_confirmed(row_id: int) -> Callable[[Connection], None]:
    """A pending row that status webhooks prove was accepted: sent, without sending it again."""

    def op(conn: Connection) -> None:
        _CONFIRMED.all(conn, row=row_id, now=time.time())

    return op
