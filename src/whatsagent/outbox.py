"""The outbox: every message the bot will send, stored before any is sent.

Each row carries an idempotency key (``turn:<id>:<position>``): a turn replayed after a crash finds its
rows already there and sends only those not yet accepted, so an answer is never sent twice. Rows that
are not part of a turn (a window fallback template, a proactive template, a tool's message) carry keys
of their own (``window:...``, ``proactive:...``).

`status` is the bot's side (`OutboxState`): ``pending`` → ``sent`` (accepted by the provider) or
``failed``, or ``parked`` (held back while the user's 24-hour window is closed; sent when they write
again); an operator may send a failed or parked row again (back to ``pending``) or ``discarded`` it.
`delivery` is WhatsApp's side (`Delivery`), from status webhooks: sent → delivered → read (→ played), or
failed.

Every statement on the `outbox` table is here.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, case, delete, func, insert, or_, select, text, update

from whatsagent import fence
from whatsagent.messages.outbound import OutboundMessage, outbound_adapter
from whatsagent.store.database import Prepared, upsert_insert
from whatsagent.store.schema import outbox


class OutboxState(enum.StrEnum):
    """The bot's side of an outbox row (`outbox.status`)."""

    PENDING = "pending"
    """Stored, not yet accepted by the provider (a send may be under way: see `attempted_at`)."""
    SENT = "sent"
    """Accepted by the provider."""
    FAILED = "failed"
    """Refused for good, or retries ran out; an operator may retry or discard it."""
    PARKED = "parked"
    """Held back while the user's 24-hour window is closed; sent first when they write again."""
    DISCARDED = "discarded"
    """An operator gave up on a failed or parked row: never sent."""


class Delivery(enum.StrEnum):
    """WhatsApp's side of an outbox row, from status webhooks (`outbox.delivery`): it only moves forward."""

    SENT = "sent"
    """On WhatsApp's servers."""
    DELIVERED = "delivered"
    """On the user's phone."""
    READ = "read"
    """Opened by the user."""
    PLAYED = "played"
    """A voice message the user played."""
    FAILED = "failed"
    """Not delivered (final): `error_code` and `error` say why."""


DELIVERY_RANK = {Delivery.SENT: 1, Delivery.DELIVERED: 2, Delivery.READ: 3, Delivery.PLAYED: 4}
"""A status of a lower rank never overwrites a higher one (webhooks arrive out of order); failed is final."""


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
        status=OutboxState.PENDING.value,
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
    .where(outbox.c.turn_id == bindparam("turn"), outbox.c.status == OutboxState.PENDING.value)
    .order_by(outbox.c.position)
)
_PARKED = Prepared(
    select(*_COLUMNS)
    .where(outbox.c.conversation == bindparam("conversation"), outbox.c.status == OutboxState.PARKED.value)
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
            status=OutboxState.PENDING.value,
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
    .values(status=OutboxState.PARKED.value, attempts=bindparam("n"), updated_at=bindparam("now"))
)
_PARK_AGAIN = Prepared(
    update(outbox)
    .where(outbox.c.id == bindparam("row"))
    .values(status=OutboxState.PARKED.value, updated_at=bindparam("now"))
)
# A parked row goes out again as a new message: forget the old one's id and delivery state, so the
# new message's statuses (same idempotency key) start from scratch.
_RELEASE = Prepared(
    update(outbox)
    .where(outbox.c.id == bindparam("row"), outbox.c.status == OutboxState.PARKED.value)
    .values(
        status=OutboxState.PENDING.value,
        delivery=None,
        provider_message_id=None,
        attempted_at=None,
        updated_at=bindparam("now"),
    )
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
    )
    .where(outbox.c.conversation == bindparam("conversation"))
    .order_by(outbox.c.id.desc())
    .limit(bindparam("limit"))
)
_SENT = Prepared(
    update(outbox)
    .where(outbox.c.id == bindparam("row"))
    .values(
        # A `failed` status webhook (closed window) can park the row before this bookkeeping lands.
        status=case(
            (outbox.c.status == OutboxState.PARKED.value, OutboxState.PARKED.value), else_=OutboxState.SENT.value
        ),
        provider_message_id=bindparam("provider_id"),
        attempts=bindparam("n"),
        updated_at=bindparam("now"),
    )
)
_FAILED = Prepared(
    update(outbox)
    .where(outbox.c.id == bindparam("row"))
    .values(
        status=OutboxState.FAILED.value,
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


def by_key(conn: Connection, key: str) -> tuple[OutboxRow, OutboxState] | None:
    """A row and its status, by idempotency key."""
    found = _BY_KEY.first(conn, key=key)
    return (_row(found), OutboxState(found[_STATUS_AT])) if found else None


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


def deliveries(conn: Connection, conversation: str, limit: int = 100) -> list[dict[str, object]]:
    """What became of the conversation's latest messages, newest first."""
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
    .where(outbox.c.id == bindparam("row"), outbox.c.status == OutboxState.PENDING.value)
    .values(status=OutboxState.SENT.value, updated_at=bindparam("now"))
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


# -- status webhooks (`whatsagent.inbox`) -----------------------------------------------------------------


@dataclass(frozen=True)
class StatusRef:
    """How a status webhook names a row: the idempotency key echoed in biz_opaque_callback_data when
    present (it exists before the send, so a fast `sent` webhook never races the send's own bookkeeping),
    else the provider's message id."""

    key: str | None
    message_id: str

    @property
    def by(self) -> str:
        return "key" if self.key else "id"

    @property
    def ref(self) -> str:
        return self.key or self.message_id


_RANK = case(
    *((outbox.c.delivery == state.value, rank) for state, rank in DELIVERY_RANK.items()),
    (outbox.c.delivery == Delivery.FAILED.value, 99),
    else_=0,
)
# A row parked and sent again keeps its key: a late status of the first message (another provider id) must
# not move the new one, hence the id check once the id is known.
_SAME_MESSAGE = or_(outbox.c.provider_message_id.is_(None), outbox.c.provider_message_id == bindparam("mid"))
_ADVANCE = {
    by: Prepared(
        update(outbox)
        .where(column == bindparam("ref"), _SAME_MESSAGE, _RANK < bindparam("rank"))
        .values(delivery=bindparam("delivery"), updated_at=bindparam("now"))
    )
    for by, column in (("key", outbox.c.idempotency_key), ("id", outbox.c.provider_message_id))
}
_DELIVERY_FAILED = {
    by: Prepared(
        update(outbox)
        .where(column == bindparam("ref"), _SAME_MESSAGE)
        .values(
            delivery=Delivery.FAILED.value,
            error_code=bindparam("code"),
            error=bindparam("error"),
            updated_at=bindparam("now"),
        )
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


def advance_delivery(conn: Connection, ref: StatusRef, delivery: Delivery, now: float) -> None:
    """Move the row's delivery state forward to `delivery` (never back: a read message was delivered)."""
    _ADVANCE[ref.by].all(
        conn, ref=ref.ref, mid=ref.message_id, rank=DELIVERY_RANK[delivery], delivery=delivery.value, now=now
    )


def delivery_failed(
    conn: Connection, ref: StatusRef, code: int | None, error: str, now: float
) -> tuple[int, str, str, int | None, OutboxState, str] | None:
    """Record that the provider could not deliver the row: its id, key, conversation, turn, status and
    message; None when no row of ours is named."""
    found = _DELIVERY_FAILED[ref.by].first(conn, ref=ref.ref, mid=ref.message_id, code=code, error=error, now=now)
    if found is None:
        return None
    row_id, key, conversation, turn_id, status, message = found
    return row_id, key, conversation, turn_id, OutboxState(status), message


# -- other readers: the window, quotes, proactive sends, the operator API ------------------------------

_HAS_PARKED = Prepared(
    select(outbox.c.id)
    .where(outbox.c.conversation == bindparam("conversation"), outbox.c.status == OutboxState.PARKED.value)
    .limit(1)
)
_RESULT = Prepared(select(outbox.c.provider_message_id, outbox.c.error).where(outbox.c.id == bindparam("row")))
_LAST = Prepared(
    select(outbox.c.message, outbox.c.created_at, outbox.c.status)
    .where(outbox.c.conversation == bindparam("key"))
    .order_by(outbox.c.id.desc())
    .limit(1)
)
_BY_ID = Prepared(select(*_COLUMNS, outbox.c.conversation, outbox.c.status).where(outbox.c.id == bindparam("row")))
_REOPEN = Prepared(
    update(outbox)
    .where(
        outbox.c.id == bindparam("row"),
        or_(outbox.c.status == OutboxState.FAILED.value, outbox.c.status == OutboxState.PARKED.value),
    )
    .values(status=bindparam("status"), updated_at=bindparam("now"))
)


def count_pending(conn: Connection) -> int:
    """How many rows wait to be sent, in every conversation."""
    return int(
        conn.execute(
            select(func.count()).select_from(outbox).where(outbox.c.status == OutboxState.PENDING.value)
        ).scalar_one()
    )


def has_parked(conn: Connection, conversation: str) -> bool:
    """Whether messages of the conversation wait for its window to open."""
    return _HAS_PARKED.first(conn, conversation=conversation) is not None


def result(conn: Connection, row_id: int) -> tuple[str | None, str | None]:
    """The provider's message id and the error of a row, if any."""
    found = _RESULT.first(conn, row=row_id)
    return (found[0], found[1]) if found else (None, None)


def last_of(conn: Connection, conversation: str) -> tuple[str, float, OutboxState] | None:
    """The conversation's latest row: its message (JSON), when it was stored, its status."""
    found = _LAST.first(conn, key=conversation)
    return None if found is None else (found[0], found[1], OutboxState(found[2]))


def by_id(conn: Connection, row_id: int) -> tuple[OutboxRow, str, OutboxState] | None:
    """A row, its conversation and its status."""
    found = _BY_ID.first(conn, row=row_id)
    if found is None:
        return None
    return _row(found), found[_STATUS_AT], OutboxState(found[_STATUS_AT + 1])


def reopen(row_id: int, status: OutboxState) -> Callable[[Connection], None]:
    """A failed or parked row, by an operator: `pending` to send it again, or `discarded`."""

    def op(conn: Connection) -> None:
        _REOPEN.all(conn, row=row_id, status=status.value, now=time.time())

    return op


def ids_by_key(conn: Connection, conversation: str) -> dict[str, int]:
    """The conversation's row ids by idempotency key."""
    return {
        r[0]: r[1]
        for r in conn.execute(
            select(outbox.c.idempotency_key, outbox.c.id).where(outbox.c.conversation == conversation)
        )
    }


def by_provider_id(conn: Connection, conversation: str, ids: list[str]) -> list[tuple[str, str]]:
    """The conversation's rows the provider knows by these ids: (provider id, message JSON)."""
    return [
        (r[0], r[1])
        for r in conn.execute(
            select(outbox.c.provider_message_id, outbox.c.message).where(
                outbox.c.conversation == conversation, outbox.c.provider_message_id.in_(ids)
            )
        )
    ]


# -- retention and erasure (`whatsagent.lifecycle`) -------------------------------------------------------


def expire(conn: Connection, cutoff: float) -> int:
    """Delete finished rows (sent, failed, discarded) last changed before `cutoff`; how many."""
    finished = (OutboxState.SENT.value, OutboxState.FAILED.value, OutboxState.DISCARDED.value)
    return int(conn.execute(delete(outbox).where(outbox.c.status.in_(finished), outbox.c.updated_at < cutoff)).rowcount)


def of_conversations(conn: Connection, conversations: Collection[str]) -> list[tuple[str | None, str]]:
    """Every row of these conversations: (provider message id, message JSON)."""
    return [
        (r[0], r[1])
        for r in conn.execute(
            select(outbox.c.provider_message_id, outbox.c.message).where(outbox.c.conversation.in_(conversations))
        )
    ]


def erase(conn: Connection, conversations: Collection[str]) -> int:
    return int(conn.execute(delete(outbox).where(outbox.c.conversation.in_(conversations))).rowcount)
