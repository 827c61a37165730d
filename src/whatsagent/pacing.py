"""Pacing: send no faster than WhatsApp allows, instead of learning the limits from errors.

Two limits apply to every message a business number sends:

- **throughput per number**: 80 messages/s by default, up to 1,000 on Meta's top tier (beyond it Meta
  refuses with a throughput error); https://developers.facebook.com/documentation/business-messaging/whatsapp/throughput
- **pair rate** (one number → one user): about 1 message per 6 s, with bursts borrowed from the future
  (a burst of 20 means ~2 minutes of cool-down); beyond it Meta refuses with its pair rate limit error;
  https://developers.facebook.com/documentation/business-messaging/whatsapp/about-the-platform

Both are paced with GCRA (the "virtual scheduling" form of a token bucket): each key keeps the time its
next message is due; a send waits until then and moves it on by one interval. Waiting for a slot costs
no lock and no polling, and slots are computed from the schedule rather than from when a task woke up,
so timer jitter does not lower the rate. Timer jitter could still bunch sends that woke late, so each
number also keeps the times of its last `rate` sends and holds a send until the oldest is a second old:
no sliding second ever holds more than `rate` sends, by construction. One `Pacing` is shared by every
send of the process (answers, fallback templates, proactive templates, tools through `Sender.send`).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

META_MAX_RATE = 1000.0
"""Meta's highest throughput tier, messages per second per number."""
_SECOND = 1.005
"""The sliding second of the hard cap, with 5 ms to spare for the moments between the cap's clock reading
and the request leaving."""


@dataclass
class _Schedule:
    """GCRA state of one key: when its next message may go."""

    interval: float
    tolerance: float
    due: float = 0.0

    def reserve(self, now: float) -> float:
        """Take the next slot; return how long to wait for it."""
        slot = max(now, self.due - self.tolerance)
        self.due = max(self.due, now) + self.interval
        return slot - now


@dataclass
class Pacing:
    """How fast one process sends.

    `rate`: messages per second per business number (default 80, Meta's default tier; at most 1,000).
    `burst`: messages a number may send at once after being idle (1 keeps every second at or under `rate`).
    `pair_interval`: seconds between two messages to the same user on average (Meta: 6).
    `pair_burst`: messages to one user that may go back to back (a multi-part answer) before pacing.
    `clock`/`sleep` are replaceable for tests.
    """

    rate: float = 80.0
    burst: int = 1
    pair_interval: float = 6.0
    pair_burst: int = 20
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], object] = asyncio.sleep
    _numbers: dict[str, _Schedule] = field(default_factory=dict, init=False, repr=False)
    _pairs: dict[tuple[str, str], _Schedule] = field(default_factory=dict, init=False, repr=False)
    _recent: dict[str, deque[float]] = field(default_factory=dict, init=False, repr=False)
    _last_prune: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.rate <= META_MAX_RATE:
            raise ValueError(f"rate={self.rate}: WhatsApp numbers send between 1 and {META_MAX_RATE:g} messages/s")
        if self.burst < 1 or self.pair_burst < 1:
            raise ValueError("burst and pair_burst must be at least 1")
        if self.pair_interval < 0:
            raise ValueError("pair_interval must be 0 (no pair pacing) or more seconds")

    async def acquire(self, account: str, recipient: str | None = None) -> float:
        """Wait until `account` may send (to `recipient`); return the seconds waited."""
        now = self.clock()
        waited = 0.0
        if recipient and self.pair_interval > 0:
            pair = self._pairs.get((account, recipient))
            if pair is None:
                pair = self._pairs[(account, recipient)] = _Schedule(
                    self.pair_interval, self.pair_interval * (self.pair_burst - 1)
                )
            wait = pair.reserve(now)
            if now - self._last_prune > 60:
                self._prune(now)
            if wait > 0:
                # The number's slot is taken only once the pair allows: a user's paced message must not
                # hold a slot that other users' messages could use now.
                await self.sleep(wait)  # type: ignore[misc]
                waited += wait
                now = self.clock()
        number = self._numbers.get(account)
        if number is None:
            number = self._numbers[account] = _Schedule(1.0 / self.rate, (self.burst - 1) / self.rate)
        wait = number.reserve(now)
        if wait > 0:
            await self.sleep(wait)  # type: ignore[misc]
            waited += wait
        recent = self._recent.get(account)
        if recent is None:
            recent = self._recent[account] = deque(maxlen=max(1, int(self.rate)))
        while len(recent) == recent.maxlen:
            # Nothing is awaited between this check and the append: no other send slips in between.
            gap = recent[0] + _SECOND - self.clock()
            if gap <= 0:
                break
            await self.sleep(gap)  # type: ignore[misc]
            waited += gap
        recent.append(self.clock())
        return waited

    def _prune(self, now: float) -> None:
        # A pair whose schedule is in the past is back to a full burst: forgetting it changes nothing.
        self._last_prune = now
        for key in [k for k, s in self._pairs.items() if s.due < now]:
            del self._pairs[key]
