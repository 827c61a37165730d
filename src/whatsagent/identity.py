"""Who a user is, whichever identifiers a message carries: one user, one conversation.

WhatsApp names a user by the number's `wa_id` and, since April 2026, by a business-scoped user id
(BSUID); from mid-2026 a user with a username may come with the BSUID alone (the number withheld once
no recent contact keeps it in Meta's contact book). Keying conversations on "the wa_id, else the BSUID"
would split such a user in two, losing history and memories. So every identifier seen on a channel is
linked, in `user_identities`, to the key of the conversation it first belonged to, and a message is
filed under that key whichever of its identifiers arrives.

`resolve` runs in the inbox's write transaction, one primary-key lookup per message (plus an insert
when a message links an identifier not seen before).
"""

from __future__ import annotations

import re
from collections.abc import Collection

from sqlalchemy import Connection, bindparam, delete, or_, select

from whatsagent.messages import User
from whatsagent.store.database import Prepared, upsert_insert
from whatsagent.store.schema import user_identities

_BSUID = re.compile(r"^[A-Z]{2}\.")

_LOOKUP = Prepared(
    select(user_identities.c.identifier, user_identities.c.user_key).where(
        user_identities.c.channel == bindparam("channel"),
        or_(user_identities.c.identifier == bindparam("a"), user_identities.c.identifier == bindparam("b")),
    )
)
_LINK = Prepared(
    lambda dialect: (
        upsert_insert(dialect, user_identities)
        .values(
            channel=bindparam("channel"),
            identifier=bindparam("identifier"),
            user_key=bindparam("user_key"),
            created_at=bindparam("now"),
        )
        .on_conflict_do_nothing(index_elements=["channel", "identifier"])
    )
)


def resolve(conn: Connection, channel: str, user: User, now: float) -> User:
    """The user as their conversation knows them: `key` is the key of the conversation any of their
    identifiers already belongs to (else `user.key`), and the identifiers this message brings are
    linked to it. A user first known by BSUID alone stays keyed on it when the number shows up."""
    identifiers = [i for i in (user.wa_id, user.user_id) if i]
    if not identifiers:
        return user
    found = dict(_LOOKUP.all(conn, channel=channel, a=identifiers[0], b=identifiers[-1]))
    # The number's link first: it is what conversations were keyed on before BSUIDs existed.
    key = next((found[i] for i in identifiers if i in found), user.key)
    for identifier in identifiers:
        if identifier not in found:
            _LINK.all(conn, channel=channel, identifier=identifier, user_key=key, now=now)
    if key == user.key:
        return user
    if _BSUID.match(key):
        return user.model_copy(update={"wa_id": None, "user_id": key})
    return user.model_copy(update={"wa_id": key})


def erase(conn: Connection, user_keys: Collection[str]) -> int:
    """Delete every link of these users' identifiers (`whatsagent.lifecycle`)."""
    return int(
        conn.execute(
            delete(user_identities).where(
                or_(user_identities.c.identifier.in_(user_keys), user_identities.c.user_key.in_(user_keys))
            )
        ).rowcount
    )
