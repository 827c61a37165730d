"""Errors a user can act on. Each says what went wrong and what to do about it."""

from __future__ import annotations


class WhatsAgentError(Exception):
    """Base class of every error whatsagent raises on purpose."""


class ConfigurationError(WhatsAgentError):
    """A setting is missing or wrong; raised at start-up, never at the first message."""


class MalformedWebhook(WhatsAgentError):
    """A signed webhook whose body is not what the provider sends. Answered with 400 and this reason."""


class StoreUnavailable(WhatsAgentError):
    """The store could not commit. Webhooks answer 503 so the provider redelivers."""


class SendError(WhatsAgentError):
    """A provider refused or failed a send.

    The channel that raises it reads its provider's error code and sets the flags the core acts on, so
    no module outside a channel needs to know a provider's codes:

    - `retryable`: trying again later can succeed (rate limits, 5xx, timeouts); `retry_after` is the
      provider's own hint in seconds, when it gave one.
    - `token_refused`: the credentials were refused; every send fails the same way until the operator
      fixes them, and `hint` names the setting to change.
    - `window_closed`: a free-form message outside the user's 24-hour customer service window; only an
      approved template can go now.
    - `slow_down`: too many messages to this one user too fast; back off much longer than usual.
    """

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        http_status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        details: str = "",
        trace_id: str | None = None,
        token_refused: bool = False,
        window_closed: bool = False,
        slow_down: bool = False,
        hint: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status
        self.retryable = retryable
        self.retry_after = retry_after
        self.details = details
        self.trace_id = trace_id
        self.token_refused = token_refused
        self.window_closed = window_closed
        self.slow_down = slow_down
        self.hint = hint

    def __str__(self) -> str:
        parts = [self.message]
        if self.code is not None:
            parts.append(f"code {self.code}")
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        if self.details:
            parts.append(self.details)
        return " | ".join(parts)


class InvalidMessage(SendError, ValueError):
    """An outbound message the channel cannot send as given (a button title over WhatsApp's limit, a
    kind of message the provider does not carry). Raised by `Channel.check` and `Channel.send` before
    anything is sent; the text says what to change, so a model calling a tool can correct itself. No
    retry can help."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)
