"""Twilio's error codes, and what the core should do about them.

A REST error body is ``{"code": 63016, "message": "...", "more_info": "...", "status": 400}``; the same
codes arrive later as `ErrorCode` in status callbacks
(https://www.twilio.com/docs/messaging/guides/outbound-message-status-in-status-callbacks). Each code is
documented at ``https://www.twilio.com/docs/api/errors/<code>``; WhatsApp's own errors map onto them as
https://www.twilio.com/docs/whatsapp/api/error-code-mapping shows. The core reads only the flags
`send_error` sets on the `SendError`, never a code.
"""

from __future__ import annotations

import math
import time
from email.utils import parsedate_to_datetime
from typing import Any

from whatsagent.channels.templates import refused_template
from whatsagent.errors import SendError
from whatsagent.messages.outbound import TemplateOut

OUTSIDE_WINDOW = 63016
"""Free-form message outside the 24-hour customer service window: send a template instead
(https://www.twilio.com/docs/api/errors/63016)."""
CREDENTIALS_REFUSED = 20003
"""Authentication failed: the Account SID with the Auth Token (or API key) was refused
(https://www.twilio.com/docs/api/errors/20003)."""
TOKEN_HINT = (
    "set a valid TWILIO_AUTH_TOKEN for TWILIO_ACCOUNT_SID (or TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET) "
    "for the Twilio channel"
)

_TITLES = {
    20003: "Twilio rejected the credentials: check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (or the API key)",
    20429: "Too many requests to Twilio's API",
    21211: "The To number is not a valid phone number",
    21408: "The account has no permission to send to this region",
    21610: "The user has opted out (replied STOP)",
    21617: "The message body is over Twilio's 1,600-character limit",
    21658: "A parameter (a template variable or the body) is over Twilio's limit",
    21606: "The From number is not a WhatsApp sender of this account",
    63003: "WhatsApp could not find the recipient",
    63007: "The From number is not a WhatsApp sender of this account (or the sandbox was not joined)",
    63016: "Outside the 24-hour customer service window: only an approved template (ContentSid) can be sent",
    63018: "WhatsApp's rate or messaging limit for this sender was exceeded",
    63021: "WhatsApp rejected the content (a template over 1,024 characters, or an unsupported medium)",
    63024: "The recipient is not a valid WhatsApp user",
    63032: "WhatsApp held the message back (the user takes part in an experiment)",
}

_RETRYABLE_CODES = frozenset({20429, 20500, 20503, 30001, 63018})
"""Rate limits, Twilio's own outages, a full queue: the same send can succeed later."""

_TEMPLATE_PROBLEMS = {
    63016: "the user's 24-hour window is closed and this is not an approved template",
    21656: "the ContentVariables are not valid for this Content template",
    63021: "WhatsApp rejected the template's content",
}


def error_title(code: int) -> str:
    """A readable meaning of a Twilio error code, or an empty string for codes we do not know."""
    return _TITLES.get(code, "")


def send_error(http_status: int, payload: Any, headers: Any) -> SendError:
    """The SendError for a Messages API response that was not a success."""
    code = None
    message = ""
    more_info = ""
    if isinstance(payload, dict):
        raw_code = payload.get("code")
        code = raw_code if isinstance(raw_code, int) else None
        message = str(payload.get("message") or "")
        more_info = str(payload.get("more_info") or "")
    retryable = http_status == 429 or http_status >= 500 or code in _RETRYABLE_CODES
    title = (error_title(code) if code is not None else "") or message or f"Twilio answered HTTP {http_status}"
    details = message if message and message != title else ""
    if more_info:
        details = f"{details} ({more_info})" if details else more_info
    return SendError(
        title,
        code=code,
        http_status=http_status,
        retryable=retryable,
        retry_after=retry_after(headers.get("Retry-After")) if retryable else None,
        details=details,
        trace_id=headers.get("Twilio-Request-Id"),
        token_refused=code == CREDENTIALS_REFUSED,
        window_closed=code == OUTSIDE_WINDOW,
        hint=TOKEN_HINT if code == CREDENTIALS_REFUSED else "",
    )


def is_window_closed(code: int | None) -> bool:
    """Whether a status callback's `ErrorCode` says the 24-hour window was closed."""
    return code == OUTSIDE_WINDOW


def template_failure(template: TemplateOut, error: SendError) -> str:
    """A refused Content template in words: which template, and what the code means."""
    problem = _TEMPLATE_PROBLEMS.get(error.code if error.code is not None else -1)
    return refused_template(template, error, problem)


def retry_after(value: str | None) -> float | None:
    """`Retry-After` in seconds: a number of seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
