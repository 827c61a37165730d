"""The sender: one outbox row to the provider, retried politely until it is accepted or hopeless.

Retryable failures (rate limits 429/130429/80007, Meta's pair limit 131056, 5xx/131000, timeouts) wait
and try again with jitter until a deadline; the pair limit wants 4^n seconds (reference §3.3), and a
provider's Retry-After is honoured. Permanent failures are recorded at once with their code.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass

from whatsagent.channels.base import Channel
from whatsagent.channels.cloudapi.errors import PAIR_RATE_LIMIT
from whatsagent.errors import SendError
from whatsagent.messages import User
from whatsagent.outbox import OutboxRow, mark_confirmed, mark_failed, mark_sent, reported
from whatsagent.store.database import Database

log = logging.getLogger("whatsagent.sender")


@dataclass(frozen=True)
class SendPolicy:
    """How long and how often to retry a send."""

    base: float = 0.5
    """First retry delay in seconds; doubles each attempt."""
    cap: float = 60.0
    """Longest wait between two attempts (except the pair limit's 4^n and Retry-After)."""
    pair_limit_base: float = 1.0
    """Meta's pair rate limit (131056): wait pair_limit_base·4^n seconds, n = 0, 1, 2..."""
    deadline: float = 3600.0
    """Give up on a message this many seconds after its first attempt."""
    in_doubt_wait: float = 5.0
    """A turn resumed after a crash waits this long for a status webhook proving its first unconfirmed
    message went out before sending it (again). Meta's `sent` status comes within about a second."""

    def delay(self, error: SendError, attempt: int) -> float:
        jitter = random.uniform(0.75, 1.25)
        if error.retry_after is not None:
            return error.retry_after + random.uniform(0, self.base)
        if error.code == PAIR_RATE_LIMIT:
            return self.pair_limit_base * 4 ** (attempt - 1) * jitter
        return min(self.cap, self.base * 2 ** (attempt - 1)) * jitter


class Sender:
    def __init__(self, db: Database, policy: SendPolicy | None = None) -> None:
        self.db = db
        self.policy = policy or SendPolicy()

    async def sent_before(self, row: OutboxRow) -> bool:
        """Whether a row that a crashed worker may have sent was accepted: True once a status webhook
        for its idempotency key arrived (the row is then marked sent), False after `in_doubt_wait`
        seconds without one (send it: at worst once more, if the provider reports no statuses)."""
        deadline = time.monotonic() + self.policy.in_doubt_wait
        while True:
            state = await self.db.read(lambda conn: reported(conn, row.id))
            if state is not None:
                await self.db.write(mark_confirmed(row.id))
                log.info(
                    "send %s had gone through before the crash (status %s): not sending it again",
                    row.idempotency_key,
                    state,
                )
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.25)

    async def deliver(self, channel: Channel, to: User, row: OutboxRow, *, conversation: str = "") -> bool:
        """Send `row`; True once the provider accepted it, False when it failed for good."""
        started = time.monotonic()
        attempt = row.attempts
        while True:
            attempt += 1
            try:
                result = await channel.send(to, row.message, callback_data=row.idempotency_key)
            except SendError as exc:
                if exc.retryable:
                    delay = self.policy.delay(exc, attempt)
                    if time.monotonic() - started + delay <= self.policy.deadline:
                        log.info(
                            "send %s attempt %d failed (%s); retrying in %.2fs",
                            row.idempotency_key,
                            attempt,
                            exc,
                            delay,
                        )
                        await asyncio.sleep(delay)
                        continue
                log.error(
                    "send %s for %s failed for good after %d attempts: %s",
                    row.idempotency_key,
                    _masked(conversation),
                    attempt,
                    exc,
                )
                await self.db.write(mark_failed(row.id, exc.code, str(exc), attempt))
                return False
            except ValueError as exc:  # a message breaking WhatsApp's limits: no retry can help
                log.error("send %s refused before sending: %s", row.idempotency_key, exc)
                await self.db.write(mark_failed(row.id, None, str(exc), attempt))
                return False
            await self.db.write(mark_sent(row.id, result.message_id, attempt))
            return True


def _masked(conversation: str) -> str:
    """Phone numbers never appear in logs in full."""
    channel, _, user = conversation.rpartition("|")
    return f"{channel}|…{user[-4:]}" if user else conversation
