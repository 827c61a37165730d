"""Data lifecycle: a retention policy, and erasing one user.

Operators of a WhatsApp bot are asked two things first: how long is what users send kept, and can a
user's data be erased. Both work the same on SQLite and PostgreSQL.

- `RetentionPolicy(days=30)` on `AgentOS(retention=...)`: every `every` seconds, processes that run
  jobs delete what is older than `days`: inbox payloads already answered, delivery statuses, history
  (what later turns are given as context), finished turns, outbox rows sent or failed, and media files
  not stored or reused since. Nothing still waiting for an answer or a send is touched.
- `erase_user(db, user, media_store)`: every row about a user (their conversations on every channel,
  inbox, turns, history, outbox, statuses, memories, queued jobs) and the media those rows name. The
  operator API (``DELETE /users/{user}``, bearer token) and ``whatsagent erase USER`` call it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, delete, or_, select, text
from starlette.routing import BaseRoute

from whatsagent.agents.memory import user_ref
from whatsagent.lanes import OPEN_STATES
from whatsagent.media.store import FileMediaStore, MediaStore
from whatsagent.privacy import masked
from whatsagent.store.database import Database
from whatsagent.store.schema import (
    conversations,
    history,
    inbox,
    jobs,
    lanes,
    memories,
    operator_actions,
    outbox,
    statuses,
    turn_traces,
    turns,
    user_identities,
)

log = logging.getLogger(__name__)

_MEDIA_KEY = re.compile(r"in media store: ([0-9a-f]{64})\]|\"stored\":\s*\"([0-9a-f]{64})\"")
DAY = 86_400.0


@dataclass(frozen=True)
class RetentionPolicy:
    """Keep what users sent and what was answered for `days`; check every `every` seconds."""

    days: float = 30.0
    every: float = 3600.0

    def __post_init__(self) -> None:
        if self.days <= 0 or self.every <= 0:
            raise ValueError("RetentionPolicy needs days > 0 and every > 0")


def _media_keys(texts: list[str]) -> set[str]:
    """Media-store keys named in history (references) and outbox rows (``stored``)."""
    return {a or b for text in texts for a, b in _MEDIA_KEY.findall(text)}


def _received_media(payloads: list[str]) -> set[str]:
    """Media-store keys of what users sent: the store keys media by SHA-256, which Meta's webhooks
    give (base64) with each medium."""
    keys = set()
    for payload in payloads:
        digest = (orjson.loads(payload).get("media") or {}).get("sha256")
        if not isinstance(digest, str):
            continue
        if re.fullmatch(r"[0-9a-f]{64}", digest):
            keys.add(digest)
            continue
        with contextlib.suppress(ValueError):
            raw = base64.b64decode(digest, validate=True)
            if len(raw) == 32:
                keys.add(raw.hex())
    return keys


# --- retention ----------------------------------------------------------------------------------


def expire(cutoff: float) -> Callable[[Connection], dict[str, int]]:
    """A store write deleting what finished before `cutoff` (epoch seconds); counts per table."""

    def op(conn: Connection) -> dict[str, int]:
        counts = {
            "inbox": conn.execute(
                delete(inbox).where(inbox.c.turn_id.is_not(None), inbox.c.received_at < cutoff)
            ).rowcount,
            "statuses": conn.execute(delete(statuses).where(statuses.c.received_at < cutoff)).rowcount,
            "history": conn.execute(delete(history).where(history.c.created_at < cutoff)).rowcount,
            "turns": conn.execute(
                delete(turns).where(turns.c.status.not_in(OPEN_STATES), turns.c.updated_at < cutoff)
            ).rowcount,
            "outbox": conn.execute(
                delete(outbox).where(outbox.c.status.in_(("sent", "failed")), outbox.c.updated_at < cutoff)
            ).rowcount,
        }
        if conn.dialect.name == "postgresql":
            # Finished work-queue jobs (successful ones are deleted at once; failed ones stay to be looked at)
            # with no event since the cutoff; their events go with them.
            counts["queued jobs"] = conn.execute(
                text(
                    "DELETE FROM procrastinate_jobs j WHERE j.status IN ('failed', 'succeeded', 'cancelled', "
                    "'aborted') AND NOT EXISTS (SELECT 1 FROM procrastinate_events e WHERE e.job_id = j.id "
                    "AND e.at >= to_timestamp(:cutoff))"
                ),
                {"cutoff": cutoff},
            ).rowcount
        return counts

    return op


async def apply_retention(
    db: Database, policy: RetentionPolicy, media_store: MediaStore | None, *, now: float | None = None
) -> dict[str, int]:
    """Delete what `policy` no longer keeps; counts per table (and ``media`` files)."""
    cutoff = (time.time() if now is None else now) - policy.days * DAY
    counts = await db.write(expire(cutoff))
    if isinstance(media_store, FileMediaStore):
        counts["media"] = await media_store.prune(cutoff)
    return counts


async def retention_loop(db: Database, policy: RetentionPolicy, media_store: MediaStore | None) -> None:
    """`apply_retention` now and every `policy.every` seconds until cancelled; failures are logged."""
    while True:
        try:
            counts = await apply_retention(db, policy, media_store)
            if any(counts.values()):
                log.info("retention (%g days) deleted %s", policy.days, counts)
        except Exception as exc:  # the next round tries again; nothing is lost by waiting
            log.warning("retention run failed: %r", exc)
        await asyncio.sleep(policy.every)


# --- erasure ------------------------------------------------------------------------------------


def erase(user: str) -> Callable[[Connection], tuple[dict[str, int], set[str]]]:
    """A store write deleting every row about `user` (a wa_id or business-scoped id, on any channel):
    counts per table, and the media keys those rows named."""

    def op(conn: Connection) -> tuple[dict[str, int], set[str]]:
        keys = set(
            conn.execute(
                select(conversations.c.key).where(
                    or_(
                        conversations.c.user_key == user, conversations.c.wa_id == user, conversations.c.user_id == user
                    )
                )
            ).scalars()
        )
        # Inbox rows of a conversation that never got its row (a crash between the two) end in "|user".
        pattern = inbox.c.conversation.like(f"%|{_escaped(user)}", escape="\\")
        keys |= {
            k
            for k in conn.execute(select(inbox.c.conversation).where(pattern)).scalars()
            if k.rpartition("|")[2] == user
        }
        sent = [
            row
            for row in conn.execute(
                select(outbox.c.provider_message_id, outbox.c.message).where(outbox.c.conversation.in_(keys))
            )
        ]
        said = [m for m in conn.execute(select(history.c.messages).where(history.c.conversation.in_(keys))).scalars()]
        received = list(conn.execute(select(inbox.c.payload).where(inbox.c.conversation.in_(keys))).scalars())
        media = _media_keys(said + [row.message for row in sent]) | _received_media(received)
        provider_ids = [row.provider_message_id for row in sent if row.provider_message_id]
        counts: dict[str, Any] = {
            "conversations": len(keys),
            "statuses": conn.execute(delete(statuses).where(statuses.c.message_id.in_(provider_ids))).rowcount
            if provider_ids
            else 0,
            "inbox": conn.execute(delete(inbox).where(inbox.c.conversation.in_(keys))).rowcount,
            # What operators did and each turn's details (`whatsagent.handoff`, `whatsagent.tracing`) go too.
            "operator_actions": conn.execute(
                delete(operator_actions).where(operator_actions.c.conversation.in_(keys))
            ).rowcount,
            "turn_traces": conn.execute(
                delete(turn_traces).where(
                    turn_traces.c.turn_id.in_(select(turns.c.id).where(turns.c.conversation.in_(keys)))
                )
            ).rowcount,
            "turns": conn.execute(delete(turns).where(turns.c.conversation.in_(keys))).rowcount,
            "history": conn.execute(delete(history).where(history.c.conversation.in_(keys))).rowcount,
            "outbox": conn.execute(delete(outbox).where(outbox.c.conversation.in_(keys))).rowcount,
            "jobs": conn.execute(
                delete(jobs).where(or_(jobs.c.lock.in_(keys), jobs.c.queueing_lock.in_(keys)))
            ).rowcount,
            "memories": conn.execute(delete(memories).where(memories.c.user_ref.in_({user_ref(user), user}))).rowcount,
            # Deleting a lane fences off a turn of the user running right now: it writes and sends nothing more.
            "lanes": conn.execute(delete(lanes).where(lanes.c.conversation.in_(keys))).rowcount,
        }
        user_keys = {k.rpartition("|")[2] for k in keys} | {user}
        counts["identities"] = conn.execute(
            delete(user_identities).where(
                or_(user_identities.c.identifier.in_(user_keys), user_identities.c.user_key.in_(user_keys))
            )
        ).rowcount
        if conn.dialect.name == "postgresql" and keys:
            # The work queue's jobs name the conversation (wake-ups) or the user (memory capture).
            counts["queued jobs"] = conn.execute(
                text(
                    "DELETE FROM procrastinate_jobs WHERE status <> 'doing' AND (lock = ANY(:keys) "
                    "OR queueing_lock = ANY(:keys) OR args->>'conversation' = ANY(:keys) OR args->>'user' = ANY(:refs))"
                ),
                {"keys": sorted(keys), "refs": sorted({user_ref(user), user})},
            ).rowcount
        conn.execute(delete(conversations).where(conversations.c.key.in_(keys)))
        return counts, media

    return op


def _escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def erase_user(db: Database, user: str, media_store: MediaStore | None) -> dict[str, int]:
    """Erase `user` everywhere; counts per table and of media files deleted."""
    counts, media = await db.write(erase(user))
    deleted = 0
    if media_store is not None:
        for key in sorted(media):
            with contextlib.suppress(Exception):
                await media_store.delete(key)
                deleted += 1
    counts["media"] = deleted
    log.info("erased user %s: %s", masked(f"|{user}"), counts)
    return counts


def erase_routes(
    db_of: Callable[[], Database | None], media_of: Callable[[], MediaStore | None], token: str | None
) -> list[BaseRoute]:
    """``DELETE /users/{user}``: erase a user (bearer token; off, 404, without one)."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def handle(request: Request) -> Response:
        from whatsagent.proactive import authorized

        refused = authorized(request, token, "operator")
        if refused is not None:
            return refused
        db = db_of()
        if db is None:
            return JSONResponse({"error": "starting"}, status_code=503)
        user = request.path_params["user"].lstrip("+")
        return JSONResponse({"erased": await erase_user(db, user, media_of())})

    return [Route("/users/{user}", handle, methods=["DELETE"], name="erase_user")]
