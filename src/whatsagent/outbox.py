"""The outbox: every message the bot will send, stored before any is sent.

Each row carries an idempotency key (``turn:<id>:<position>``): a turn replayed after a crash finds its
rows already there and sends only those not yet accepted, so an answer is never sent twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, select, update

from whatsagent.outbound import OutboundMessage, outbound_adapter
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


def insert_rows(
    conn: Connection, *, turn_id: int, conversation: str, parts: Sequence[OutboundMessage]
) -> None:
    now = time.time()
    if not parts:
        return
    conn.execute(
        outbox.insert(),
        [
            {
                "idempotency_key": idempotency_key(turn_id, i),
                "turn_id": turn_id,
                "conversation": conversation,
                "position": i,
                "message": outbound_adapter.dump_json(part).decode(),
                "status": "pending",
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
            for i, part in enumerate(parts)
        ],
    )


def unsent(conn: Connection, turn_id: int) -> list[OutboxRow]:
    """The turn's rows still to send, in order."""
    rows = conn.execute(
        select(outbox.c.id, outbox.c.idempotency_key, outbox.c.position, outbox.c.message, outbox.c.attempts)
        .where(outbox.c.turn_id == turn_id, outbox.c.status == "pending")
        .order_by(outbox.c.position)
    ).all()
    return [
        OutboxRow(r.id, r.idempotency_key, r.position, outbound_adapter.validate_json(r.message), r.attempts)
        for r in rows
    ]


def mark_sent(row_id: int, provider_message_id: str, attempts: int) -> Callable[[Connection], None]:
    def op(conn: Connection) -> None:
        conn.execute(
            update(outbox)
            .where(outbox.c.id == row_id)
            .values(
                status="sent",
                provider_message_id=provider_message_id,
                attempts=attempts,
                updated_at=time.time(),
            )
        )

    return op


def mark_failed(row_id: int, code: int | None, error: str, attempts: int) -> Callable[[Connection], None]:
    def op(conn: Connection) -> None:
        conn.execute(
            update(outbox)
            .where(outbox.c.id == row_id)
            .values(
                status="failed",
                error_code=code,
                error=error[:2000],
                attempts=attempts,
                updated_at=time.time(),
            )
        )

    return op
