"""The outbox: every message the bot will send, stored before any is sent.

Each row carries an idempotency key (``turn:<id>:<position>``): a turn replayed after a crash finds its
rows already there and sends only those not yet accepted, so an answer is never sent twice. Rows that
are not part of a turn (a window fallback template, a proactive template, a tool's message) carry keys
of their own (``window:...``, ``proactive:...``).

`status` is the bot's side: ``pending`` → ``sent`` (accepted by the provider) or ``failed``, or
``parked`` (held back while the user's 24-hour window is closed; sent when they write again).
`delivery` is WhatsApp's side, from status webhooks: sent → delivered → read, or failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, case, insert, select, text, update

from whatsagent import fence
from whatsagent.messages.outbound import OutboundMessage, outbound_adapter
from whatsagent.store.database import Prepared, upsert_insert
from whatsagent.store.schema import inbox, outbox, turns


@dataclass(frozen=True)
class OutboxRow:
    id: int
    idempotency_key: str
    position: int
    message: OutboundMessage
    attempts: int
    turn_id: int | None = None
    attempted_at: float | None = None
    """When a send of this row was last started (None: never, so it cannot have gone out)."""


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
_COLUMNS = (
    outbox.c.id,
    outbox.c.idempotency_key,
    outbox.c.position,
    outbox.c.message,
    outbox.c.attempts,
    outbox.c.turn_id,
    outbox.c.attempted_at,
)
_UNSENT = Prepared(
    select(*_COLUMNS)
    .where(outbox.c.turn_id == bindparam("turn"), outbox.c.status == "pending")
    .order_by(outbox.c.position)
)
_PARKED = Prepared(
    select(*_COLUMNS)
    .where(outbox.c.conversation == bindparam("conversation"), outbox.c.status == "parked")
    .order_by(outbox.c.id)
)
_INSERT_ONE = Prepared(
    lambda dialect: (
        upsert_insert(dialect, outbox)
        .values(
            idempotency_key=bindparam("key"),
            turn_id=None,
            conversation=bindparam("conversation"),
            position=0,
            message=bindparam("message"),
            status="pending",
            attempts=0,
            created_at=bindparam("now"),
            updated_at=bindparam("now"),
        )
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(*_COLUMNS)
    )
)
_BY_KEY = Prepared(select(*_COLUMNS, outbox.c.status).where(outbox.c.idempotency_key == bindparam("key")))
_STATUS_AT = len(_COLUMNS)
_PARK = Prepared(
    update(outbox)
    .where(outbox.c.id == bindparam("row"))
    .values(status="parked", attempts=bindparam("n"), updated_at=bindparam("now"))
)
_PARK_AGAIN = Prepared(
    update(outbox).where(outbox.c.id == bindparam("row")).values(status="parked", updated_at=bindparam("now"))
)
# A parked row goes out again as a new message: forget the old one's id and delivery state, so the
# new message's statuses (same idempotency key) start from scratch.
_RELEASE = Prepared(
    update(outbox)
    .where(outbox.c.id == bindparam("row"), outbox.c.status == "parked")
    .values(status="pending", delivery=None, provider_message_id=None, attempted_at=None, updated_at=bindparam("now"))
)
_ANSWERED = Prepared(
    select(inbox.c.provider_id).where(inbox.c.turn_id == bindparam("turn")).order_by(inbox.c.seq.desc()).limit(1)
)
_DELIVERIES = Prepared(
    select(
        outbox.c.idempotency_key,
        outbox.c.turn_id,
        outbox.c.position,
        outbox.c.message,
        outbox.c.status,
        outbox.c.delivery,
        outbox.c.provider_message_id,
        outbox.c.attempts,
        outbox.c.error_code,
        outbox.c.error,
        outbox.c.created_at,
        outbox.c.updated_at,
        turns.c.error,
    )
    .select_from(outbox.outerjoin(turns, turns.c.id == outbox.c.turn_id))
    .where(outbox.c.conversation == bindparam("conversation"))
    .order_by(outbox.c.id.desc())
    .limit(bindparam("limit"))
)
_SENT = Prepared(
    update(outbox)
    .where(outbox.c.id == bindparam("row"))
    .values(
        # A `failed` status webhook (closed window) can park the row before this bookkeeping lands.
        status=case((outbox.c.status == "parked", "parked"), else_="sent"),
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


def _row(values: tuple) -> OutboxRow:  # type: ignore[type-arg]
    row_id, key, position, message, attempts, turn_id, attempted_at = values[:7]
    return OutboxRow(row_id, key, position, outbound_adapter.validate_json(message), attempts, turn_id, attempted_at)


def unsent(conn: Connection, turn_id: int) -> list[OutboxRow]:
    """The turn's rows still to send, in order."""
    return [_row(r) for r in _UNSENT.all(conn, turn=turn_id)]


def parked(conn: Connection, conversation: str) -> list[OutboxRow]:
    """The conversation's rows held back by a closed window, oldest first."""
    return [_row(r) for r in _PARKED.all(conn, conversation=conversation)]


def insert_one(key: str, conversation: str, message: OutboundMessage) -> Callable[[Connection], OutboxRow | None]:
    """Store one message outside any turn; None when a row with this key exists (it is sent or sending)."""

    def op(conn: Connection) -> OutboxRow | None:
        found = _INSERT_ONE.first(
            conn,
            key=key,
            conversation=conversation,
            message=outbound_adapter.dump_json(message).decode(),
            now=time.time(),
        )
        return _row(found) if found else None

    return op


def by_key(conn: Connection, key: str) -> tuple[OutboxRow, str] | None:
    """A row and its status, by idempotency key."""
    found = _BY_KEY.first(conn, key=key)
    return (_row(found), found[_STATUS_AT]) if found else None


def park(row_id: int, attempts: int | None = None) -> Callable[[Connection], None]:
    """Hold a row back until the user's window opens again (`attempts` None: keep the count)."""

    def op(conn: Connection) -> None:
        if attempts is None:
            _PARK_AGAIN.all(conn, row=row_id, now=time.time())
        else:
            _PARK.all(conn, row=row_id, n=attempts, now=time.time())

    return op


def release(row_ids: list[int]) -> Callable[[Connection], None]:
    def op(conn: Connection) -> None:
        now = time.time()
        for row_id in row_ids:
            _RELEASE.all(conn, row=row_id, now=now)

    return op


def answered_message(conn: Connection, turn_id: int | None) -> str | None:
    """The provider id of the (last) inbound message a turn's row answers: logs quote it."""
    if turn_id is None:
        return None
    found = _ANSWERED.first(conn, turn=turn_id)
    return found[0] if found else None


def deliveries(conn: Connection, conversation: str, limit: int = 100) -> list[dict[str, object]]:
    """What became of the conversation's latest messages, newest first; `turn_error` says why the turn
    that wrote a message was set aside (the apology of a poison turn), if it was."""
    names = (
        "key",
        "turn_id",
        "position",
        "message",
        "status",
        "delivery",
        "provider_message_id",
        "attempts",
        "error_code",
        "error",
        "created_at",
        "updated_at",
        "turn_error",
    )
    rows = []
    for values in _DELIVERIES.all(conn, conversation=conversation, limit=limit):
        row = dict(zip(names, values, strict=True))
        message = outbound_adapter.validate_json(str(row["message"]))
        row["kind"] = message.kind
        row["message"] = message.model_dump(mode="json", exclude_defaults=True)
        rows.append(row)
    return rows


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


_NO_FLUSH = Prepared(text("SET LOCAL synchronous_commit = off"))
_ATTEMPTED = Prepared(update(outbox).where(outbox.c.id == bindparam("row")).values(attempted_at=bindparam("now")))


def mark_attempted(row_id: int, lease: fence.Lease) -> Callable[[Connection], None]:
    """Just before a turn's send: fail with `FenceLost` unless the lease still owns the lane and its holder
    lives; record that the send started (after a crash, only such a row can have gone out unrecorded)."""

    def op(conn: Connection) -> None:
        if conn.dialect.name == "postgresql":
            # No fsync to wait for: only a crash of PostgreSQL itself (not of a worker, nor a restart) could
            # lose this mark, and then at worst the one message in flight goes twice. It saves a disk flush
            # per send.
            _NO_FLUSH.all(conn)
        fence.verify(conn, lease)
        _ATTEMPTED.all(conn, row=row_id, now=time.time())

    return op
