"""Graph API errors, typed, with whether trying again can help.

Meta gives each error a code and fix text, not a retry flag; the classification below is ours, from the
meaning of each code (see reference/whatsapp-protocol.md §3.2). Branch on `code`, never on titles.
"""

from __future__ import annotations

from typing import Any

import orjson

from whatsagent.errors import SendError

# Codes where waiting and sending again can succeed.
RETRYABLE_CODES = frozenset(
    {
        1,  # API unknown: sometimes a server error
        2,  # API service: temporary downtime or overload
        4,  # app-level call rate limit
        80007,  # WABA rate limit
        130429,  # phone-number throughput exceeded
        131000,  # something went wrong (retry a few times)
        131016,  # service temporarily unavailable
        131056,  # pair rate limit: same recipient too fast; wait 4^n s
        131057,  # account in maintenance (throughput upgrade, about a minute)
    }
)
PAIR_RATE_LIMIT = 131056
TOKEN_INVALID = frozenset({0, 190})
WINDOW_CLOSED = 131047


class GraphAPIError(SendError):
    """The Graph API refused a request. `code` is Meta's error code (e.g. 131047), `trace_id` its
    fbtrace_id, worth quoting to Meta support."""


def graph_error(http_status: int, raw: bytes, retry_after: str | None = None) -> GraphAPIError:
    """Build the typed error for a non-200 Graph API answer."""
    error: dict[str, Any] = {}
    try:
        decoded = orjson.loads(raw)
        if isinstance(decoded, dict) and isinstance(decoded.get("error"), dict):
            error = decoded["error"]
    except orjson.JSONDecodeError:
        pass
    code = error.get("code")
    code = code if isinstance(code, int) else None
    data = error.get("error_data")
    details = data.get("details", "") if isinstance(data, dict) else (data if isinstance(data, str) else "")
    message = str(error.get("message") or f"Graph API answered HTTP {http_status}")
    retryable = (code in RETRYABLE_CODES) or http_status == 429 or http_status >= 500 or bool(error.get("is_transient"))
    if code is not None and code not in RETRYABLE_CODES and 400 <= http_status < 500 and http_status != 429:
        retryable = False
    return GraphAPIError(
        message,
        code=code,
        http_status=http_status,
        retryable=retryable,
        retry_after=_seconds(retry_after),
        details=str(details or ""),
        trace_id=error.get("fbtrace_id"),
    )


def _seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
