"""Graph API errors, typed, with what the core should do about them.

Meta gives each error a code and fix text, not a retry flag; the classification below is ours, from the
meaning of each code on Meta's error code page
(https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes). Branch on `code`, never on
titles. The core reads only the flags `graph_error` sets on the `SendError` (`retryable`,
`token_refused`, `window_closed`, `slow_down`), never a code.
"""

from __future__ import annotations

from typing import Any

import orjson

from whatsagent.channels.templates import refused_template
from whatsagent.errors import SendError
from whatsagent.messages.outbound import TemplateOut

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
TOKEN_REFUSED = frozenset({0, 190})
"""The access token expired or was invalidated
(https://developers.facebook.com/documentation/business-messaging/whatsapp/access-tokens)."""
WINDOW_CLOSED = 131047
"""More than 24 hours since the user last wrote: only a template can go
(https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/send-messages)."""
PAIR_RATE_LIMIT = 131056
"""Too many messages to one user too fast; Meta asks for a wait of 4^n seconds
(https://developers.facebook.com/documentation/business-messaging/whatsapp/about-the-platform)."""
TOKEN_HINT = "set a valid WHATSAPP_ACCESS_TOKEN (or access_token=) for the Cloud API channel"

_TEMPLATE_PROBLEMS = {
    132000: "the number of parameters does not match the template's placeholders",
    132001: "the template does not exist in this language, or is not approved yet",
    132005: "the text with its parameters filled in is too long",
    132007: "the template's content breaks WhatsApp's content policy",
    132008: "a parameter's value is not valid for its type",
    132012: "a parameter's format is not what the template expects",
    132015: "the template is paused by Meta for low quality: edit it or use another",
    132016: "the template is disabled by Meta for low quality: use another",
    132068: "the template's Flow is blocked",
    132069: "the template's Flow is throttled (10 sends per hour)",
}
"""Meta answers a bad template send with a bare code; these say what to change."""
_PARAMETER_COUNT = 132000
_NOT_IN_LANGUAGE = 132001


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
    token_refused = code in TOKEN_REFUSED
    return GraphAPIError(
        message,
        code=code,
        http_status=http_status,
        retryable=retryable,
        retry_after=_seconds(retry_after),
        details=str(details or ""),
        trace_id=error.get("fbtrace_id"),
        token_refused=token_refused,
        window_closed=code == WINDOW_CLOSED,
        slow_down=code == PAIR_RATE_LIMIT,
        hint=TOKEN_HINT if token_refused else "",
    )


def is_window_closed(code: int | None) -> bool:
    """Whether a status webhook's error code says the 24-hour window was closed."""
    return code == WINDOW_CLOSED


def template_failure(template: TemplateOut, error: SendError) -> str:
    """``template 'order_update' (en_US) was refused: the number of parameters ... (sent 1 body
    parameter(s)); WhatsApp says: ... | code 132000``."""
    problem = _TEMPLATE_PROBLEMS.get(error.code if error.code is not None else -1)
    if problem is not None and error.code == _PARAMETER_COUNT:
        problem += f" (sent {template.parameter_counts()})"
    elif problem is not None and error.code == _NOT_IN_LANGUAGE:
        problem += f": check its name and that a {template.language} translation is approved"
    return refused_template(template, error, problem)


def _seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
