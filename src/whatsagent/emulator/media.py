"""Media the emulator holds: what users send and what the bot uploads.

Meta's rules (reference §2.3): a media id resolves (`GET /{media_id}`) to a download URL that is valid
for 5 minutes and must be fetched with the bearer token (401 without, 404 once expired); uploads are
limited by MIME type and size per kind.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field

from whatsagent.emulator.ids import media_id

MB = 1024 * 1024

KIND_LIMITS: dict[str, tuple[frozenset[str], int]] = {
    "audio": (frozenset({"audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"}), 16 * MB),
    "document": (
        frozenset(
            {
                "text/plain",
                "application/pdf",
                "application/msword",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "application/vnd.ms-excel",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "application/vnd.ms-powerpoint",
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            }
        ),
        100 * MB,
    ),
    "image": (frozenset({"image/jpeg", "image/png"}), 5 * MB),
    # 100 KB static, 500 KB animated; the emulator cannot tell them apart, so it allows the larger one.
    "sticker": (frozenset({"image/webp"}), 500 * 1024),
    "video": (frozenset({"video/mp4", "video/3gpp"}), 16 * MB),
}

URL_TTL = 300.0
"""Seconds a media URL stays valid (reference §2.3: 5 minutes)."""


def base_mime(mime_type: str) -> str:
    """`audio/ogg; codecs=opus` -> `audio/ogg`."""
    return mime_type.split(";", 1)[0].strip().lower()


def kind_of(mime_type: str) -> str | None:
    """The media kind an upload of this MIME type counts as, or None when WhatsApp does not take it."""
    mime = base_mime(mime_type)
    for kind, (types, _) in KIND_LIMITS.items():
        if mime in types:
            return kind
    return None


def fits(message_type: str, mime_type: str) -> bool:
    """Whether a medium of `mime_type` can be sent as a `message_type` message."""
    kind = kind_of(mime_type)
    if message_type == "document":
        return kind is not None
    return kind == message_type


@dataclass(slots=True)
class MediaItem:
    id: str
    data: bytes
    mime_type: str
    filename: str | None = None
    created: float = field(default_factory=time.time)
    sha256_hex: str = ""

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256_b64(self) -> str:
        """The digest as webhooks carry it (base64); `GET /{media_id}` answers it in hex."""
        return base64.b64encode(bytes.fromhex(self.sha256_hex)).decode()


class MediaStore:
    """Media by id, and the short-lived download URLs handed out for them."""

    def __init__(self, url_ttl: float = URL_TTL) -> None:
        self.url_ttl = url_ttl
        self._items: dict[str, MediaItem] = {}
        self._urls: dict[str, tuple[str, float]] = {}

    def put(self, data: bytes, mime_type: str, filename: str | None = None) -> MediaItem:
        mid = media_id()
        while mid in self._items:
            mid = media_id()
        item = MediaItem(mid, data, mime_type, filename, sha256_hex=hashlib.sha256(data).hexdigest())
        self._items[mid] = item
        return item

    def get(self, mid: str) -> MediaItem | None:
        return self._items.get(mid)

    def delete(self, mid: str) -> bool:
        return self._items.pop(mid, None) is not None

    def issue_url(self, item: MediaItem, base_url: str) -> str:
        """A download URL in the shape of Meta's lookaside URLs, valid for `url_ttl` seconds."""
        token = secrets.token_urlsafe(24)
        expires = time.time() + self.url_ttl
        self._urls[token] = (item.id, expires)
        if len(self._urls) > 10_000:
            now = time.time()
            self._urls = {t: v for t, v in self._urls.items() if v[1] > now}
        return f"{base_url}/whatsapp_business/attachments/?mid={item.id}&ext={int(expires)}&hash={token}"

    def resolve(self, token: str) -> MediaItem | None:
        """The item behind a download URL, or None once the URL expired or the media was deleted."""
        entry = self._urls.get(token)
        if entry is None or entry[1] < time.time():
            return None
        return self._items.get(entry[0])

    def expire_urls(self) -> None:
        """Make every URL handed out so far invalid (as if 5 minutes had passed)."""
        self._urls.clear()
