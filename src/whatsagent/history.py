"""Conversation history: append-only, one row per turn, pydantic-ai messages as JSON.

Every statement on the `history` table is here. Media bytes never go in here (only media-store keys);
`/new` starts a new session of the conversation, so old turns stay stored but leave the context.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from sqlalchemy import Connection, bindparam, delete, insert, select

from whatsagent.store.database import Prepared
from whatsagent.store.schema import history

if TYPE_CHECKING:
    from pydantic_ai.messages import ModelMessage

_LAST_TURNS = Prepared(
    select(history.c.messages)
    .where(history.c.conversation == bindparam("conversation"), history.c.session == bindparam("session"))
    .order_by(history.c.id.desc())
    .limit(bindparam("turns"))
)


_APPEND = Prepared(
    insert(history).values(
        conversation=bindparam("conversation"),
        session=bindparam("session"),
        turn_id=bindparam("turn"),
        messages=bindparam("messages"),
        created_at=bindparam("now"),
    )
)


def append(conn: Connection, conversation: str, session: int, turn_id: int, messages_json: str, now: float) -> None:
    """Add one turn's messages (JSON from `dump`) to the conversation's session."""
    _APPEND.all(conn, conversation=conversation, session=session, turn=turn_id, messages=messages_json, now=now)


def load(conn: Connection, conversation: str, session: int, turns: int) -> list[ModelMessage]:
    """The last `turns` turns of a conversation's current session, oldest first."""
    if turns <= 0:
        return []
    from pydantic_ai.messages import ModelMessagesTypeAdapter  # not at start-up: pydantic-ai loads after ready

    rows = _LAST_TURNS.all(conn, conversation=conversation, session=session, turns=turns)
    messages: list[ModelMessage] = []
    for (raw,) in reversed(rows):
        messages.extend(ModelMessagesTypeAdapter.validate_json(raw))
    return messages


def dump(messages: list[ModelMessage]) -> str:
    from pydantic_ai.messages import ModelMessagesTypeAdapter

    return ModelMessagesTypeAdapter.dump_json(messages).decode()


_OF_TURN = Prepared(select(history.c.messages).where(history.c.turn_id == bindparam("turn")))


def of_turn(conn: Connection, turn_id: int) -> str | None:
    """The messages (JSON) one turn stored, if it stored any (a command or an error reply does not)."""
    found = _OF_TURN.first(conn, turn=turn_id)
    return None if found is None else str(found[0])


def expire(conn: Connection, cutoff: float) -> int:
    """Delete what was stored before `cutoff` (`whatsagent.lifecycle`); how many turns' worth."""
    return int(conn.execute(delete(history).where(history.c.created_at < cutoff)).rowcount)


def of_conversations(conn: Connection, conversations: Collection[str]) -> list[str]:
    """Every turn's messages (JSON) of these conversations."""
    return list(conn.execute(select(history.c.messages).where(history.c.conversation.in_(conversations))).scalars())


def erase(conn: Connection, conversations: Collection[str]) -> int:
    return int(conn.execute(delete(history).where(history.c.conversation.in_(conversations))).rowcount)
