"""Identifiers in Meta's style: wamids, media ids, fbtrace ids.

A wamid is base64 of a small protobuf-like record that starts with the user's wa_id; an inbound one
carries 32 hex digits and the direction byte 0x12, an outbound one 18 hex digits and 0x11 (as seen in
captured webhooks). Bots must treat them as opaque strings; looking real keeps column sizes honest.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import string


def _wamid(wa_id: str, direction: int, hex_digits: int) -> str:
    digits = wa_id.encode()[:40] or b"0"
    raw = (
        b"\x1c\x18"
        + bytes([len(digits)])
        + digits
        + b"\x15\x02\x00"
        + bytes([direction, 0x18, hex_digits])
        + secrets.token_hex(hex_digits // 2).upper().encode()
        + b"\x00"
    )
    return "wamid." + base64.b64encode(raw).decode()


def inbound_wamid(wa_id: str) -> str:
    """A wamid for a message a user sent to the business."""
    return _wamid(wa_id, 0x12, 32)


def outbound_wamid(wa_id: str) -> str:
    """A wamid for a message the business sent, as the send response returns it."""
    return _wamid(wa_id, 0x11, 18)


def media_id() -> str:
    """A numeric media id, 16 digits like Meta's (the media store checks for collisions)."""
    return str(10**15 + secrets.randbelow(9 * 10**15))


_TRACE_ALPHABET = string.ascii_letters + string.digits + "_-"


def fbtrace_id() -> str:
    """The trace id Meta puts in every error body, for support tickets."""
    return "A" + "".join(secrets.choice(_TRACE_ALPHABET) for _ in range(22))


_CALLING_CODES = {
    "1": "US",
    "7": "RU",
    "20": "EG",
    "27": "ZA",
    "31": "NL",
    "33": "FR",
    "34": "ES",
    "39": "IT",
    "44": "GB",
    "49": "DE",
    "52": "MX",
    "54": "AR",
    "55": "BR",
    "57": "CO",
    "61": "AU",
    "62": "ID",
    "81": "JP",
    "86": "CN",
    "91": "IN",
    "234": "NG",
    "351": "PT",
    "972": "IL",
}


def bsuid_for(wa_id: str, portfolio: str) -> str:
    """The business-scoped user id Meta gives the user of this number within one business portfolio:
    the number's two-letter country code, a period, digits (`BR.1502576394655843`). Stable for a
    (number, portfolio) pair, as Meta's are; a new number gets a new BSUID."""
    country = next((_CALLING_CODES[wa_id[:n]] for n in (3, 2, 1) if wa_id[:n] in _CALLING_CODES), "US")
    digest = hashlib.sha256(f"{portfolio}:{wa_id}".encode()).digest()
    return f"{country}.{int.from_bytes(digest[:8], 'big') % 10**19:019d}"
