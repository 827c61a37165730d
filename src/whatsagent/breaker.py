"""The circuit breaker that stops a channel's sends while its access token is rejected.

An expired or revoked token (the channel flags the `SendError` `token_refused`) fails every send the same way:
retrying each message would hammer the API and bury the one thing the operator must do, rotate the
token. So the first such error stops the channel's sending: messages wait (they stay in the outbox),
the logs and ``/health`` say why, and after a cool-down one send probes the API. Sending resumes as soon
as any send gets an answer other than a token error; a failed probe doubles the cool-down (up to a cap).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from whatsagent import metrics
from whatsagent.errors import SendError

log = logging.getLogger(__name__)


class CircuitBreaker:
    """One channel's sending switch: closed (sending), open (stopped until `retry_at`), or probing."""

    def __init__(
        self,
        channel: str,
        *,
        cool_down: float = 60.0,
        max_cool_down: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.channel = channel
        self.base_cool_down = cool_down
        self.max_cool_down = max_cool_down
        self.clock = clock
        self.state = "closed"
        self.cool_down = cool_down
        self.retry_at = 0.0
        self.error: SendError | None = None
        self.stopped_since: float | None = None
        self._changed = asyncio.Event()

    @property
    def sending(self) -> bool:
        return self.state == "closed"

    async def admit(self) -> bool:
        """Wait until a send may go. True when this send is the probe after a cool-down."""
        while True:
            if self.state == "closed":
                return False
            changed = self._changed
            if self.state == "open":
                remaining = self.retry_at - self.clock()
                if remaining <= 0:
                    self._set("probing")
                    return True
                try:
                    await asyncio.wait_for(changed.wait(), remaining)
                except TimeoutError:
                    pass
            else:
                await changed.wait()

    def trip(self, error: SendError) -> None:
        """A send was refused for its credentials: stop (again) and wait out a cool-down."""
        if self.state == "probing":
            self.cool_down = min(self.max_cool_down, self.cool_down * 2)
        elif self.state == "closed":
            self.cool_down = self.base_cool_down
            self.stopped_since = time.time()
            metrics.sending_stopped.labels(channel=self.channel).set(1)
        else:
            return  # already stopped: sends that were in flight when it tripped add nothing
        self.error = error
        self.retry_at = self.clock() + self.cool_down
        log.error(
            "SENDING STOPPED on channel %r: the access token was refused (%s). Messages wait in the outbox; "
            "%s — one send probes again in %.0fs.",
            self.channel,
            error,
            error.hint or "set valid credentials for the channel",
            self.cool_down,
        )
        self._set("open")

    def answered(self) -> None:
        """The provider answered a send with anything but a token error: the token works."""
        if self.state == "closed":
            return
        log.warning("sending resumed on channel %r: the access token is accepted again", self.channel)
        self.error = None
        self.stopped_since = None
        self.cool_down = self.base_cool_down
        metrics.sending_stopped.labels(channel=self.channel).set(0)
        self._set("closed")

    def abandon_probe(self) -> None:
        """The probe ended without an answer (cancelled, network error): let the next send probe."""
        if self.state == "probing":
            self.retry_at = self.clock()
            self._set("open")

    def status(self) -> dict[str, Any]:
        if self.state == "closed":
            return {"sending": True}
        return {
            "sending": False,
            "reason": f"access token refused: {self.error}" if self.error else "access token refused",
            "stopped_since": self.stopped_since,
            "next_probe_in": max(0.0, round(self.retry_at - self.clock(), 1)),
        }

    def _set(self, state: str) -> None:
        self.state = state
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
