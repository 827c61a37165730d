"""Media the emulator holds: what users send and what the bot uploads.

Meta's rules (Cloud API docs, Media: https://developers.facebook.com/documentation/business-messaging/whatsapp/business-phone-numbers/media):
a media id resolves (`GET /{media_id}`) to a download URL that is valid
for 5 minutes and must be fetched with the bearer token (401 without, 404 once expired); uploads are
limited by MIME type and size per kind.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp

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
"""Seconds a media URL stays valid: 5 minutes (Cloud API docs, Media: https://developers.facebook.com/documentation/business-messaging/whatsapp/business-phone-numbers/media)."""


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


LINK_FETCH_TIMEOUT = 30.0
_RESERVED_SUFFIXES = (".invalid", ".test", ".example", ".local")
"""Names that never resolve on the internet (RFC 2606, RFC 6762): Meta cannot fetch them either."""


def link_host_kind(url: str) -> str:
    """How the emulator treats a media `link`: "loopback" (fetched, as Meta would), "unreachable"
    (a reserved name no one can fetch: the send fails with 131053), or "remote" (a real host the
    emulator does not call unless told to, see `Emulator.fetch_remote_links`)."""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    if not host:
        return "unreachable"
    if host == "localhost" or host.endswith(".localhost"):
        return "loopback"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "unreachable" if host.endswith(_RESERVED_SUFFIXES) or "." not in host else "remote"
    return "loopback" if address.is_loopback else "remote"


async def fetch_link(session: aiohttp.ClientSession, url: str, message_type: str) -> str | None:
    """Fetch a medium the bot sent by link, as Meta does before delivering it; None when it arrived
    and fits `message_type`, else why not (the details of the 131053 failure)."""
    try:
        timeout = aiohttp.ClientTimeout(total=LINK_FETCH_TIMEOUT)
        async with session.get(url, timeout=timeout) as resp:
            if resp.status != 200:
                return f"Media download failed: the URL answered HTTP {resp.status}"
            data = await resp.read()
            mime = resp.headers.get("Content-Type", "")
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        return f"Media download failed: {type(exc).__name__}"
    kind = kind_of(mime)
    if kind is None or not fits(message_type, mime):
        return f"Media download failed: {base_mime(mime) or 'no content type'} cannot be sent as {message_type}"
    if not data or len(data) > KIND_LIMITS[kind][1]:
        return f"Media download failed: {len(data)} bytes is not a valid {kind} size"
    return None
