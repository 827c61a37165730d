"""Faults the emulator can inject, on both sides of the bot.

On sends (the Graph API): errors at a given rate for a while (429/130429, 131056, 5xx), the next N
sends failing, added latency, slow media. On webhooks: duplicates, out-of-order delivery, dropped
status webhooks. A failed send is not delivered and leaves no reply, exactly as with Meta.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

ErrorSpec = tuple[int, int]
"""(HTTP status, Meta error code)."""

DEFAULT_SEND_ERRORS: tuple[ErrorSpec, ...] = ((429, 130429), (500, 131000))


@dataclass
class _SendFailures:
    probability: float
    errors: tuple[ErrorSpec, ...]
    until: float | None
    include_reads: bool


class Faults:
    """The fault switches of one emulator. Every method returns `self`, so calls chain."""

    def __init__(self) -> None:
        self._rng = random.Random()
        self.clear()

    def clear(self) -> Faults:
        """Back to a healthy WhatsApp."""
        self._failures: _SendFailures | None = None
        self._next: list[ErrorSpec] = []
        self.send_latency = 0.0
        self.media_latency = 0.0
        self.duplicate_probability = 0.0
        self.reorder_window = 0
        self.reorder_hold = 0.5
        self.status_drop_probability = 0.0
        return self

    def fail_sends(
        self,
        probability: float = 1.0,
        errors: Sequence[ErrorSpec] = DEFAULT_SEND_ERRORS,
        *,
        seed: int | None = None,
        duration: float | None = None,
        include_reads: bool = False,
    ) -> Faults:
        """Refuse this share of message sends with one of `errors`, for `duration` seconds (or until
        cleared). Mark-read and typing requests are spared unless `include_reads`."""
        if not 0.0 <= probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        if not errors:
            raise ValueError("give at least one (http_status, code) error")
        if seed is not None:
            self._rng.seed(seed)
        until = time.monotonic() + duration if duration is not None else None
        self._failures = _SendFailures(probability, tuple(errors), until, include_reads)
        return self

    def fail_next(self, count: int = 1, http_status: int = 400, code: int = 131056) -> Faults:
        """Refuse the next `count` message sends with this error."""
        self._next.extend([(http_status, code)] * count)
        return self

    def latency(self, seconds: float) -> Faults:
        """Answer every Graph API request this much later."""
        self.send_latency = max(0.0, seconds)
        return self

    def slow_media(self, seconds: float) -> Faults:
        """Answer media uploads and downloads this much later."""
        self.media_latency = max(0.0, seconds)
        return self

    def duplicate_webhooks(self, probability: float = 1.0, *, seed: int | None = None) -> Faults:
        """Deliver this share of message webhooks twice, concurrently (Meta's retries do this)."""
        if seed is not None:
            self._rng.seed(seed)
        self.duplicate_probability = probability
        return self

    def reorder_webhooks(self, window: int = 2, hold: float = 0.5) -> Faults:
        """Hold message webhooks until `window` are waiting (or `hold` seconds passed), then deliver
        them newest first: Meta delivers concurrently and promises no order."""
        self.reorder_window = window if window > 1 else 0
        self.reorder_hold = hold
        return self

    def drop_statuses(self, probability: float = 1.0, *, seed: int | None = None) -> Faults:
        """Never post this share of status webhooks (the message still advances)."""
        if seed is not None:
            self._rng.seed(seed)
        self.status_drop_probability = probability
        return self

    # -- decisions, used by the emulator ----------------------------------------------------------

    def send_failure(self, *, is_read: bool = False) -> ErrorSpec | None:
        if self._next and not is_read:
            return self._next.pop(0)
        failures = self._failures
        if failures is None or (is_read and not failures.include_reads):
            return None
        if failures.until is not None and time.monotonic() > failures.until:
            self._failures = None
            return None
        if self._rng.random() < failures.probability:
            return self._rng.choice(failures.errors)
        return None

    def duplicate(self) -> bool:
        return self.duplicate_probability > 0 and self._rng.random() < self.duplicate_probability

    def drop_status(self) -> bool:
        return self.status_drop_probability > 0 and self._rng.random() < self.status_drop_probability

    def to_json(self) -> dict[str, Any]:
        failures = self._failures
        remaining = None
        if failures is not None and failures.until is not None:
            remaining = max(0.0, failures.until - time.monotonic())
        return {
            "fail_sends": None
            if failures is None
            else {
                "probability": failures.probability,
                "errors": [list(e) for e in failures.errors],
                "seconds_left": remaining,
            },
            "fail_next": [list(e) for e in self._next],
            "latency": self.send_latency,
            "slow_media": self.media_latency,
            "duplicate_webhooks": self.duplicate_probability,
            "reorder_webhooks": self.reorder_window,
            "drop_statuses": self.status_drop_probability,
        }
