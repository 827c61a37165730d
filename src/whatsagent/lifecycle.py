"""Data lifecycle: a retention policy, and erasing one user.

Operators of a WhatsApp bot are asked two things first: how long is what users send kept, and can a
user's data be erased. Both work the same on SQLite and PostgreSQL.

- `RetentionPolicy(days=30)` on `AgentOS(retention=...)`: every `every` seconds, processes that run
  jobs delete what is older than `days`: inbox payloads already answered, delivery statuses, history
  (what later turns are given as context), finished turns, outbox rows sent, failed or discarded, and media files
  not stored or reused since. Nothing still waiting for an answer or a send is touched.
- `erase_user(db, user, media_store)`: every row about a user (their conversations on every channel,
  inbox, turns, history, outbox, statuses, memories, queued jobs) and the media those rows name. The
  operator API (``DELETE /users/{user}``, `whatsagent.operator_api`) and ``whatsagent erase USER`` call it.
  Each table's owner deletes its own rows.
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

from whatsagent import conversations, fence, history, identity, inbox, outbox, tracing, turns
from whatsagent.agents import memory
from whatsagent.agents.memory import user_ref
from whatsagent.handoff import erase_actions
from whatsagent.media.store import FileMediaStore, MediaStore
from whatsagent.privacy import masked
from whatsagent.queue.embedded import erase_jobs
from whatsagent.store.database import Connection, Database
from whatsagent.store.postgres import erase_queue_jobs, expire_queue_jobs

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
        counts = inbox.expire(conn, cutoff)
        counts["history"] = history.expire(conn, cutoff)
        counts["turns"] = turns.expire(conn, cutoff)
        counts["outbox"] = outbox.expire(conn, cutoff)
        queued = expire_queue_jobs(conn, cutoff)
        if queued is not None:
            counts["queued jobs"] = queued
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
        keys = conversations.keys_of_user(conn, user) | inbox.conversations_ending_in(conn, user)
        sent = outbox.of_conversations(conn, keys)
        said = history.of_conversations(conn, keys)
        received = inbox.payloads_of(conn, keys)
        media = _media_keys(said + [message for _, message in sent]) | _received_media(received)
        provider_ids = [provider_id for provider_id, _ in sent if provider_id]
        refs = {user_ref(user), user}
        counts: dict[str, Any] = {
            "conversations": len(keys),
            "statuses": inbox.erase_statuses(conn, provider_ids),
            "inbox": inbox.erase(conn, keys),
            # What operators did and each turn's details (`whatsagent.handoff`, `whatsagent.tracing`) go too.
            "operator_actions": erase_actions(conn, keys),
            "turn_traces": tracing.erase(conn, turns.ids_of(conn, keys)),
            "turns": turns.erase(conn, keys),
            "history": history.erase(conn, keys),
            "outbox": outbox.erase(conn, keys),
            "jobs": erase_jobs(conn, keys),
            "memories": memory.erase_user(conn, refs),
            # Deleting a lane fences off a turn of the user running right now: it writes and sends nothing more.
            "lanes": fence.erase(conn, keys),
        }
        counts["identities"] = identity.erase(conn, {k.rpartition("|")[2] for k in keys} | {user})
        if keys:
            # The work queue's jobs name the conversation (wake-ups) or the user (memory capture).
            queued = erase_queue_jobs(conn, sorted(keys), sorted(refs))
            if queued is not None:
                counts["queued jobs"] = queued
        conversations.erase(conn, keys)
        return counts, media

    return op


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
