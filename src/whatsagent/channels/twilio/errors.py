"""Twilio's error codes, and which of them trying again can cure.

A REST error body is ``{"code": 63016, "message": "...", "more_info": "...", "status": 400}``; the same
codes arrive later as `ErrorCode` in status callbacks (reference §4.7).
"""

from __future__ import annotations

import math
import time
from email.utils import parsedate_to_datetime
from typing import Any

from whatsagent.errors import SendError

OUTSIDE_WINDOW = 63016
"""Free-form message outside the 24-hour customer service window: send a template instead [T:63016]."""

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
    )


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
