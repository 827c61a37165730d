"""Meta's webhook signature: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>``, keyed
with the app secret. Checked on the bytes exactly as received, in constant time."""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "sha256="


def sign(app_secret: str, body: bytes) -> str:
    """The header value Meta would send for `body`."""
    return PREFIX + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def is_valid(app_secret: str, body: bytes, header: str) -> bool:
    """Whether `header` signs `body`. Anything that is not ``sha256=`` and ASCII is simply not valid
    (compare_digest refuses non-ASCII text with a TypeError, which must never reach the client as a 500)."""
    if not header.startswith(PREFIX) or not header.isascii():
        return False
    expected = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header[len(PREFIX) :].strip().lower().encode())
