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

    `retryable` says whether trying again later can succeed (rate limits, 5xx, timeouts); `retry_after`
    is the provider's own hint in seconds, when it gave one.
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
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status
        self.retryable = retryable
        self.retry_after = retry_after
        self.details = details
        self.trace_id = trace_id

    def __str__(self) -> str:
        parts = [self.message]
        if self.code is not None:
            parts.append(f"code {self.code}")
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        if self.details:
            parts.append(self.details)
        return " | ".join(parts)
