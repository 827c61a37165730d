"""Conversations: one per channel and user, with who answers it (`ConversationMode`) and its session.

Every statement on the `conversations` table is here. A conversation row is touched by each message
the user sends (`touch`), opened by a proactive template (`open_for_template`), moved between the bot
and a person (`set_mode`, `whatsagent.handoff`), started anew by ``/new`` (`new_session`), and marked
read by an operator (`mark_seen`). The 24-hour window's facts live here too (`window`, `mark_window_closed`;
what they mean is `whatsagent.window`'s).

A conversation's wake-up job is defined here as well: the inbox defers it for a new message, the lanes
(`whatsagent.lanes`) handle it, and handoff and start-up recovery defer it again.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, bindparam, delete, desc, func, or_, select, update

from whatsagent.messages import User
from whatsagent.queue import JobSpec
from whatsagent.store.database import Prepared, upsert_insert
from whatsagent.store.schema import conversations

WAKE_TASK = "conversation.wake"


class ConversationMode(enum.StrEnum):
    """Who answers a conversation (`conversations.mode`)."""

    BOT = "bot"
    """The agent answers (the default)."""
    HUMAN = "human"
    """An operator took it over: the bot stays quiet, its lane holds what the user writes for the person."""
    WAITING = "waiting"
    """The agent or the user asked for a person: the bot stays quiet until someone takes it or hands it back."""


def conversation_key(channel: str, user_key: str) -> str:
    """One conversation per channel and user (each channel is served by one agent)."""
    return f"{channel}|{user_key}"


def wake_job(conversation: str, *, schedule_in: float = 0.0) -> JobSpec:
    """The job that has the conversation's lane take what waits (one at a time per conversation)."""
    return JobSpec(
        WAKE_TASK,
        {"conversation": conversation},
        lock=conversation,
        queueing_lock=conversation,
        schedule_in=schedule_in,
        # Its work is in the inbox and the turns table: a worker's start-up recovery wakes every
        # conversation left with some (`Lanes.recover`), so the job itself need not be stored.
        recovered=True,
    )


@dataclass
class Conversation:
    """Who a conversation is with, in which session, and who answers it."""

    channel: str
    user: User
    session: int
    mode: ConversationMode


def _params(*names: str) -> dict[str, object]:
    return {name: bindparam(name) for name in names}


def _touch(dialect: str) -> object:
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


_TOUCH = Prepared(_touch)
_OPEN = Prepared(
    lambda dialect: (
        upsert_insert(dialect, conversations)
        .values(
            key=bindparam("key"),
            channel=bindparam("channel"),
            account=bindparam("account"),
            user_key=bindparam("user_key"),
            wa_id=bindparam("wa_id"),
            user_id=bindparam("user_id"),
            last_inbound_at=0.0,
            created_at=bindparam("now"),
        )
        .on_conflict_do_nothing(index_elements=["key"])
    )
)
_SESSION = Prepared(select(conversations.c.session).where(conversations.c.key == bindparam("key")))
_FIND = Prepared(
    select(
        conversations.c.channel,
        conversations.c.wa_id,
        conversations.c.user_id,
        conversations.c.user_name,
        conversations.c.session,
        conversations.c.mode,
    ).where(conversations.c.key == bindparam("key"))
)
_SET_MODE = Prepared(
    update(conversations)
    .where(conversations.c.key == bindparam("key"))
    .values(mode=bindparam("mode"), mode_reason=bindparam("reason"), mode_changed_at=bindparam("now"))
)
_NEW_SESSION = Prepared(
    update(conversations)
    .where(conversations.c.key == bindparam("conversation"))
    .values(session=conversations.c.session + 1)
)
_SEEN = Prepared(update(conversations).where(conversations.c.key == bindparam("key")).values(seen_at=bindparam("now")))
_WINDOW = Prepared(
    select(
        conversations.c.channel,
        conversations.c.wa_id,
        conversations.c.user_id,
        conversations.c.user_name,
        conversations.c.last_inbound_at,
        conversations.c.window_closed_at,
    ).where(conversations.c.key == bindparam("key"))
)
_WINDOW_CLOSED = Prepared(
    update(conversations)
    .where(conversations.c.key == bindparam("key"))
    .values(window_closed_at=conversations.c.last_inbound_at)
)


def touch(conn: Connection, key: str, channel: str, account: str, user: User, now: float) -> None:
    """A message from the user: the conversation exists, its window opened now, its user's names are
    the newest known."""
    _TOUCH.all(
        conn,
        key=key,
        channel=channel,
        account=account,
        user_key=user.key,
        wa_id=user.wa_id,
        user_id=user.user_id,
        user_name=user.name,
        last_inbound_at=now,
        created_at=now,
    )


def open_for_template(conn: Connection, key: str, channel: str, account: str, user: User, now: float) -> int:
    """The business writes first: the conversation exists (with its window closed: the user has not
    written); its current session."""
    _OPEN.all(
        conn,
        key=key,
        channel=channel,
        account=account,
        user_key=user.key,
        wa_id=user.wa_id,
        user_id=user.user_id,
        now=now,
    )
    (session,) = _SESSION.first(conn, key=key)
    return int(session)


def find(conn: Connection, key: str) -> Conversation | None:
    row = _FIND.first(conn, key=key)
    if row is None:
        return None
    channel, wa_id, user_id, name, session, mode = row
    return Conversation(channel, User(wa_id=wa_id, user_id=user_id, name=name), session, ConversationMode(mode))


def set_mode(conn: Connection, key: str, mode: ConversationMode, reason: str | None, now: float) -> None:
    _SET_MODE.all(conn, key=key, mode=mode.value, reason=reason, now=now)


def new_session(conn: Connection, key: str) -> None:
    """``/new``: later turns open in the next session; earlier rows and history stay stored."""
    _NEW_SESSION.all(conn, conversation=key)


def mark_seen(key: str) -> Callable[[Connection], None]:
    """An operator read the conversation (the console's unread count starts again)."""

    def op(conn: Connection) -> None:
        _SEEN.all(conn, key=key, now=time.time())

    return op


@dataclass(frozen=True)
class Window:
    """What the 24-hour window is judged by (`whatsagent.window`)."""

    channel: str
    user: User
    last_inbound_at: float
    closed_at: float | None


def window(conn: Connection, key: str) -> Window | None:
    found = _WINDOW.first(conn, key=key)
    if found is None:
        return None
    channel, wa_id, user_id, name, last_inbound_at, closed_at = found
    return Window(channel, User(wa_id=wa_id, user_id=user_id, name=name), last_inbound_at, closed_at)


def mark_window_closed(conn: Connection, key: str) -> None:
    """The provider refused a free-form message: the window of the user's latest message is over."""
    _WINDOW_CLOSED.all(conn, key=key)


# -- for the operator API ------------------------------------------------------------------------------


def keys(conn: Connection) -> list[str]:
    """Every conversation's key."""
    return [r[0] for r in conn.execute(select(conversations.c.key))]


def search(conn: Connection, q: str | None, channel: str | None, limit: int) -> list[dict[str, Any]]:
    """Conversations by latest inbound message, newest first: on `channel`, whose user's name, username or
    number matches `q`."""
    query = select(
        conversations.c.key,
        conversations.c.channel,
        conversations.c.wa_id,
        conversations.c.user_id,
        conversations.c.user_name,
        conversations.c.mode,
        conversations.c.mode_reason,
        conversations.c.last_inbound_at,
        conversations.c.window_closed_at,
        conversations.c.seen_at,
    )
    if channel:
        query = query.where(conversations.c.channel == channel)
    if q:
        like = f"%{q.strip()}%"
        digits = "".join(ch for ch in q if ch.isdigit())
        terms: list[ColumnElement[bool]] = [
            conversations.c.user_name.ilike(like),
            conversations.c.user_id.ilike(like),
        ]
        if digits:
            terms.append(conversations.c.wa_id.contains(digits))
        query = query.where(or_(*terms))
    query = query.order_by(desc(conversations.c.last_inbound_at)).limit(limit)
    return [dict(r) for r in conn.execute(query).mappings()]


def row(conn: Connection, key: str) -> dict[str, Any] | None:
    """Every column of one conversation."""
    found = conn.execute(select(conversations).where(conversations.c.key == key)).mappings().first()
    return dict(found) if found is not None else None


# -- erasure (`whatsagent.lifecycle`) --------------------------------------------------------------------


def keys_of_user(conn: Connection, user: str) -> set[str]:
    """The conversations of a user (a wa_id or business-scoped id), on every channel."""
    return set(
        conn.execute(
            select(conversations.c.key).where(
                or_(conversations.c.user_key == user, conversations.c.wa_id == user, conversations.c.user_id == user)
            )
        ).scalars()
    )


def erase(conn: Connection, keys: Collection[str]) -> int:
    return int(conn.execute(delete(conversations).where(conversations.c.key.in_(keys))).rowcount)
