"""The sender: one outbox row to the provider, paced, retried politely until accepted or hopeless.

Every send first waits for its slot (`whatsagent.pacing`: the number's throughput and the pair rate)
and for the channel's circuit breaker (`whatsagent.breaker`: stopped while the access token is refused).
The channel reads its provider's error codes and says what a failure means through the flags of the
`SendError` it raises; this module reads only those flags. Retryable failures (rate limits, 5xx,
timeouts) wait and try again with jitter until a deadline; a "slow down for this user" failure (Meta's
pair rate limit) wants 4^n seconds, and a provider's Retry-After is honoured. Permanent failures are
recorded at once with their code and logged with the inbound message the row answered.

Free-form messages respect the 24-hour window (`whatsagent.window`): outside it they are parked and the
channel's fallback template goes instead, once per window; a `window_closed` refusal does the same.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from whatsagent import inbox, metrics, outbox
from whatsagent import window as windows
from whatsagent.breaker import CircuitBreaker
from whatsagent.channels.base import Channel
from whatsagent.errors import InvalidMessage, SendError, StoreUnavailable
from whatsagent.fence import Lease, fenced
from whatsagent.messages import User
from whatsagent.messages.outbound import OutboundMessage, TemplateOut
from whatsagent.outbox import OutboxRow, OutboxState, mark_attempted, mark_confirmed, mark_failed, mark_sent, reported
from whatsagent.pacing import Pacing
from whatsagent.privacy import masked
from whatsagent.store.database import Database
from whatsagent.window import WindowPolicy, WindowState

log = logging.getLogger(__name__)


class Unread(enum.Enum):
    """The window of a conversation is not known yet: `deliver` reads it."""

    UNREAD = "unread"


UNREAD = Unread.UNREAD


@dataclass(frozen=True)
class SendPolicy:
    """How long and how often to retry a send."""

    base: float = 0.5
    """First retry delay in seconds; doubles each attempt."""
    cap: float = 60.0
    """Longest wait between two attempts (except the pair limit's 4^n and Retry-After)."""
    pair_limit_base: float = 1.0
    """A failure flagged `slow_down` (Meta's pair rate limit): wait pair_limit_base·4^n seconds, n = 0,
    1, 2... (https://developers.facebook.com/documentation/business-messaging/whatsapp/about-the-platform)."""
    deadline: float = 3600.0
    """Give up on a message this many seconds after its first attempt."""
    in_doubt_wait: float = 20.0
    """A turn resumed after a crash waits this long for a status webhook proving that the one message whose
    send had started (and was not recorded) went out, before sending it again. Meta's `sent` status comes
    within about a second; a busy web tier or a redelivery after a refused webhook delays it, and waiting
    costs only that one row's latency after a crash: 5 s let a duplicate through under a 4x CPU load."""
    token_cool_down: float = 60.0
    """While the access token is refused, probe the API again after this long (doubling, up to 15 min)."""

    def delay(self, error: SendError, attempt: int) -> float:
        jitter = random.uniform(0.75, 1.25)
        if error.retry_after is not None:
            return error.retry_after + random.uniform(0, self.base)
        if error.slow_down:
            return self.pair_limit_base * 4 ** (attempt - 1) * jitter
        return min(self.cap, self.base * 2 ** (attempt - 1)) * jitter


class Outcome(enum.Enum):
    SENT = "sent"
    """The provider accepted the message."""
    FAILED = "failed"
    """Refused for good (recorded with its code)."""
    PARKED = "parked"
    """Held back: the user's 24-hour window is closed. It goes out when they write again."""


class Sender:
    def __init__(
        self,
        db: Database,
        policy: SendPolicy | None = None,
        *,
        pacing: Pacing | None = None,
        window: WindowPolicy | None = None,
        channels: Mapping[str, Channel] | None = None,
    ) -> None:
        self.db = db
        self.policy = policy or SendPolicy()
        self.pacing = pacing or Pacing()
        self.window = window or WindowPolicy()
        self.channels = dict(channels or {})
        self.breakers: dict[str, CircuitBreaker] = {}

    def breaker(self, channel: Channel) -> CircuitBreaker:
        found = self.breakers.get(channel.name)
        if found is None:
            found = self.breakers[channel.name] = CircuitBreaker(channel.name, cool_down=self.policy.token_cool_down)
        return found

    def sending_status(self) -> dict[str, dict[str, Any]]:
        """Per channel: sending, or stopped and why (``/health`` shows this)."""
        names = set(self.channels) | set(self.breakers)
        return {
            name: self.breakers[name].status() if name in self.breakers else {"sending": True} for name in sorted(names)
        }

    # -- one outbox row ---------------------------------------------------------------------------

    async def sent_before(self, row: OutboxRow) -> bool:
        """Whether a row that a crashed worker may have sent was accepted. A row whose send was never
        started (no `attempted_at`) was not: False at once. Otherwise True once a status webhook for its
        idempotency key arrived (the row is then marked sent), False after `in_doubt_wait` seconds
        without one (send it: at worst once more, if the provider reports no statuses)."""
        if row.attempted_at is None:
            return False
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

    async def deliver(
        self,
        channel: Channel,
        to: User,
        row: OutboxRow,
        *,
        conversation: str = "",
        deadline: float | None = None,
        lease: Lease | None = None,
        window: WindowState | Unread | None = UNREAD,
    ) -> bool:
        """Send `row`; True once the provider accepted it (or it was parked for a closed window, to go
        out when the user writes again), False when it failed for good. With a `lease`, nothing goes out
        unless the lease still owns the conversation's lane (`FenceLost` otherwise). `window`: the
        conversation's window as read by the transaction that stored `row`, if the caller has it."""
        outcome = await self.deliver_row(
            channel, to, row, conversation=conversation, deadline=deadline, lease=lease, window=window
        )
        return outcome in (Outcome.SENT, Outcome.PARKED)

    async def deliver_row(
        self,
        channel: Channel,
        to: User,
        row: OutboxRow,
        *,
        conversation: str = "",
        deadline: float | None = None,
        lease: Lease | None = None,
        window: WindowState | Unread | None = UNREAD,
    ) -> Outcome:
        free_form = not isinstance(row.message, TemplateOut)
        if free_form and conversation:
            state = await self.db.read(windows.state(conversation)) if window is UNREAD else window
            if state is not None:
                if not self.window.is_open(state):
                    await self._park(channel, to, row, conversation, state, lease=lease)
                    return Outcome.PARKED
                if state.parked and not await self._release_parked(channel, to, conversation, deadline, lease):
                    # An older message is parked again: this one must not overtake it.
                    await self._park(channel, to, row, conversation, state, fallback=False, lease=lease)
                    return Outcome.PARKED
        outcome = await self._send(channel, to, row, conversation=conversation, deadline=deadline, lease=lease)
        if outcome is Outcome.PARKED:
            state = await self.db.write(_closed(conversation))
            await self._park(channel, to, row, conversation, state, already_parked=True, lease=lease)
        return outcome

    async def send(
        self,
        channel: Channel,
        to: User,
        message: OutboundMessage,
        *,
        conversation: str | None = None,
        key: str | None = None,
        deadline: float | None = None,
    ) -> tuple[Outcome, OutboxRow]:
        """Send one message outside a turn (a tool's message, a proactive template): stored in the
        outbox first, then paced, retried and window-checked like an answer. `key` makes it idempotent."""
        from whatsagent.conversations import conversation_key

        conversation = conversation or conversation_key(channel.name, to.key)
        key = key or f"send:{uuid.uuid4().hex}"
        row = await self.db.write(outbox.insert_one(key, conversation, message))
        if row is None:
            found = await self.db.read(lambda conn: outbox.by_key(conn, key))
            assert found is not None
            existing, status = found
            if status != OutboxState.PENDING:
                settled = status in (OutboxState.SENT, OutboxState.FAILED, OutboxState.PARKED)
                return Outcome(status.value) if settled else Outcome.FAILED, existing
            row = existing
        return await self.deliver_row(channel, to, row, conversation=conversation, deadline=deadline), row

    async def _send(
        self,
        channel: Channel,
        to: User,
        row: OutboxRow,
        *,
        conversation: str,
        deadline: float | None,
        lease: Lease | None = None,
    ) -> Outcome:
        limit = self.policy.deadline if deadline is None else deadline
        breaker = self.breaker(channel)
        started = time.monotonic()
        attempt = row.attempts
        while True:
            probe = await breaker.admit()
            try:
                await self.pacing.acquire(channel.account, to.wa_id or to.user_id)
                attempt += 1
                if lease is not None:
                    # The last word before the provider: the lane is still ours, and the row is marked as
                    # started, so a crash from here on leaves it in doubt rather than unsent.
                    await self.db.write(mark_attempted(row.id, lease))
                result = await channel.send(to, row.message, callback_data=row.idempotency_key)
            except InvalidMessage as exc:  # the channel cannot send it as given: no retry can help (before SendError)
                if probe:
                    breaker.abandon_probe()
                log.error("send %s refused before sending: %s", row.idempotency_key, exc)
                metrics.sends.labels(channel=channel.name, result="failed", code="invalid").inc()
                await self.db.write(mark_failed(row.id, None, str(exc), attempt))
                return Outcome.FAILED
            except SendError as exc:
                if exc.token_refused:
                    breaker.trip(exc)
                    metrics.sends.labels(channel=channel.name, result="token_refused", code=exc.code).inc()
                    if time.monotonic() - started < limit:
                        continue
                    return await self._failed(channel, row, conversation, exc, attempt)
                if exc.http_status is not None:
                    breaker.answered()
                elif probe:
                    breaker.abandon_probe()
                if exc.window_closed and not isinstance(row.message, TemplateOut):
                    metrics.sends.labels(channel=channel.name, result="window_closed", code=exc.code).inc()
                    await self.db.write(outbox.park(row.id, attempt))
                    return Outcome.PARKED
                if exc.retryable:
                    delay = self.policy.delay(exc, attempt)
                    if time.monotonic() - started + delay <= limit:
                        metrics.sends.labels(channel=channel.name, result="retried", code=exc.code).inc()
                        log.info(
                            "send %s attempt %d failed (%s); retrying in %.2fs",
                            row.idempotency_key,
                            attempt,
                            exc,
                            delay,
                        )
                        await asyncio.sleep(delay)
                        continue
                return await self._failed(channel, row, conversation, exc, attempt)
            except BaseException:
                if probe:
                    breaker.abandon_probe()
                raise
            breaker.answered()
            metrics.sends_by(channel.name, "sent", "").inc()
            await self._record_sent(row, result.message_id, attempt)
            return Outcome.SENT

    async def _record_sent(self, row: OutboxRow, provider_message_id: str, attempts: int) -> None:
        """Record an accepted send, waiting out a store outage: this process knows the message went out,
        and forgetting it would send it again. Not fenced: it happened, whoever owns the lane now."""
        delay = 0.1
        while True:
            try:
                await self.db.write(mark_sent(row.id, provider_message_id, attempts))
                return
            except StoreUnavailable as exc:
                log.warning("send %s went out; recording it waits for the store: %s", row.idempotency_key, exc)
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)

    async def _failed(
        self, channel: Channel, row: OutboxRow, conversation: str, exc: SendError, attempts: int
    ) -> Outcome:
        reason = channel.explain(row.message, exc)
        answered = await self.db.read(lambda conn: inbox.answered_message(conn, row.turn_id))
        log.error(
            "send %s for %s (answering %s) failed for good after %d attempts: %s",
            row.idempotency_key,
            masked(conversation),
            answered or "no inbound message",
            attempts,
            reason,
        )
        metrics.sends.labels(channel=channel.name, result="failed", code=exc.code).inc()
        await self.db.write(mark_failed(row.id, exc.code, reason, attempts))
        return Outcome.FAILED

    # -- the 24-hour window -------------------------------------------------------------------------

    async def _park(
        self,
        channel: Channel,
        to: User,
        row: OutboxRow,
        conversation: str,
        state: WindowState | None,
        *,
        fallback: bool = True,
        already_parked: bool = False,
        lease: Lease | None = None,
    ) -> None:
        if not already_parked:
            await self.db.write(fenced(lease, outbox.park(row.id, row.attempts)))
        metrics.parked.labels(channel=channel.name).inc()
        log.warning(
            "message %s for %s parked: the 24-hour window is closed; it goes out when the user writes again",
            row.idempotency_key,
            masked(conversation),
        )
        if fallback and state is not None:
            await self.send_fallback(channel, to, conversation, state, lease=lease)

    async def send_fallback(
        self, channel: Channel, to: User, conversation: str, state: WindowState, *, lease: Lease | None = None
    ) -> Outcome | None:
        """Send the channel's fallback template for this closed window, unless it went already."""
        template = self.window.fallback_for(channel.name, to)
        if template is None:
            log.warning(
                "no fallback template for channel %r (WindowPolicy(fallback=...)): %s is not told that a reply waits",
                channel.name,
                masked(conversation),
            )
            return None
        key = windows.fallback_key(conversation, state.epoch)
        row = await self.db.write(outbox.insert_one(key, conversation, template))
        if row is None:
            return None  # this window's fallback exists: sent, sending or failed — never a second one
        metrics.window_fallbacks.labels(channel=channel.name).inc()
        log.info("window closed for %s: sending fallback template %r", masked(conversation), template.name)
        return await self._send(channel, to, row, conversation=conversation, deadline=None, lease=lease)

    async def _release_parked(
        self, channel: Channel, to: User, conversation: str, deadline: float | None, lease: Lease | None
    ) -> bool:
        """The window is open: send what was parked, in order. False if one was refused again."""
        rows = await self.db.read(lambda conn: outbox.parked(conn, conversation))
        if not rows:
            return True
        log.info("window open again for %s: sending %d parked message(s)", masked(conversation), len(rows))
        await self.db.write(fenced(lease, outbox.release([r.id for r in rows])))
        for i, parked_row in enumerate(rows):
            outcome = await self._send(
                channel, to, parked_row, conversation=conversation, deadline=deadline, lease=lease
            )
            if outcome is Outcome.PARKED:
                await self.db.write(_closed(conversation))
                # Keep the rest behind it, in order; no fallback: the user just wrote.
                await self.db.write(_park_all([r.id for r in rows[i + 1 :]]))
                return False
        return True

    async def on_window_closed(self, args: dict[str, Any]) -> None:
        """The job run after a `failed` status webhook for a closed window parked a message."""
        conversation = args["conversation"]
        state = await self.db.read(windows.state(conversation))
        if state is None:
            return
        channel = self.channels.get(state.channel)
        if channel is None:
            log.warning("window closed on channel %r, which this process does not serve", state.channel)
            return
        await self.send_fallback(channel, state.user, conversation, state)


def _closed(conversation: str) -> Any:
    def op(conn: Any) -> WindowState | None:
        windows.mark_closed(conn, conversation)
        return windows.state(conversation)(conn)

    return op


def _park_all(row_ids: list[int]) -> Any:
    def op(conn: Any) -> None:
        for row_id in row_ids:
            outbox.park(row_id)(conn)

    return op
