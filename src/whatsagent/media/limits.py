"""What WhatsApp accepts as outbound media, and the error that says why a medium was refused.

Types and sizes are Meta's Media API table (developers.facebook.com/docs/whatsapp/cloud-api/reference/
media, "Supported media types"; our reference section 2.3). Meta writes "MB" without saying which;
we read decimal megabytes, the stricter reading, so a file we pass is never refused for its size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from whatsagent.errors import WhatsAgentError
from whatsagent.media.sniff import DOC, DOCX, PPT, PPTX, XLS, XLSX, normalize_mime

MediaKind = Literal["image", "audio", "video", "document", "sticker"]
"""The kinds of media a WhatsApp message carries; the same words as `MediaOut.media_type`."""

MEDIA_KINDS: tuple[MediaKind, ...] = get_args(MediaKind)

MB = 1_000_000
KB = 1_000

CAPTION_MAX = 1024
"""Characters in a media caption (Meta: image, video and document messages)."""


@dataclass(frozen=True)
class Limit:
    """The MIME types WhatsApp takes for one kind of medium, and the largest file it takes."""

    kind: MediaKind
    mime_types: tuple[str, ...]
    max_bytes: int
    described: str
    """The accepted types as a person would say them, for error messages."""


LIMITS: dict[MediaKind, Limit] = {
    # 8-bit RGB or RGBA only; convert.py re-encodes anything else.
    "image": Limit("image", ("image/jpeg", "image/png"), 5 * MB, "JPEG or PNG"),
    # audio/ogg must carry Opus and be mono; prepare_outbound probes the stream to make sure.
    "audio": Limit(
        "audio",
        ("audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"),
        16 * MB,
        "AAC, AMR, MP3, M4A or OGG/Opus (mono)",
    ),
    # H.264 video and AAC audio, at most one audio stream.
    "video": Limit("video", ("video/mp4", "video/3gpp"), 16 * MB, "MP4 or 3GP (H.264 with AAC)"),
    "document": Limit(
        "document",
        ("text/plain", "application/pdf", DOC, DOCX, XLS, XLSX, PPT, PPTX),
        100 * MB,
        "PDF, plain text, or Word, Excel or PowerPoint files",
    ),
    "sticker": Limit("sticker", ("image/webp",), 100 * KB, "WebP"),
}

ANIMATED_STICKER_MAX = 500 * KB
STICKER_SIDE = 512
"""Stickers are 512×512 pixels (Meta's sticker requirements)."""


class MediaRejected(WhatsAgentError):
    """A medium WhatsApp would not accept and that could not be converted into one it does.

    The message says what was wrong and what would work, in words a user or a model can act on:
    "video is 20.0 MB; WhatsApp accepts up to 16 MB".
    """

    def __init__(
        self,
        reason: str,
        *,
        kind: str | None = None,
        mime_type: str | None = None,
        size: int | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.mime_type = mime_type
        self.size = size


def kind_for(mime_type: str) -> MediaKind:
    """The kind of message a medium of `mime_type` is sent as, before any conversion."""
    mime = normalize_mime(mime_type) or ""
    if mime.startswith("image/"):
        return "image"
    if mime.startswith("audio/"):
        return "audio"
    if mime.startswith("video/"):
        return "video"
    return "document"


def check(kind: MediaKind, mime_type: str, size: int, *, animated: bool = False) -> None:
    """Raise `MediaRejected` unless WhatsApp accepts a `kind` medium of `mime_type` and `size` bytes.

    `mime_type` should be the sniffed type (`sniff.resolve_mime`), not a declared one.
    """
    if kind not in LIMITS:
        raise MediaRejected(
            f"{kind!r} is not a kind of WhatsApp media; use one of {', '.join(MEDIA_KINDS)}",
            kind=kind,
            mime_type=mime_type,
            size=size,
        )
    limit = LIMITS[kind]
    mime = normalize_mime(mime_type) or "application/octet-stream"
    if mime not in limit.mime_types:
        raise MediaRejected(
            f"{_NOUNS[kind]} must be {limit.described}; this file is {mime}",
            kind=kind,
            mime_type=mime,
            size=size,
        )
    max_bytes = ANIMATED_STICKER_MAX if kind == "sticker" and animated else limit.max_bytes
    if size > max_bytes:
        what = "animated sticker" if kind == "sticker" and animated else kind
        raise MediaRejected(
            f"{what} is {format_size(size)}; WhatsApp accepts up to {format_size(max_bytes, exact=True)}",
            kind=kind,
            mime_type=mime,
            size=size,
        )
    if size == 0:
        raise MediaRejected(f"the {kind} is empty (0 bytes)", kind=kind, mime_type=mime, size=size)


def check_caption(caption: str) -> None:
    """Raise `MediaRejected` when `caption` is longer than WhatsApp allows (1,024 characters)."""
    length = len(caption)
    if length > CAPTION_MAX:
        raise MediaRejected(
            f"the caption is {length:,} characters; WhatsApp allows up to {CAPTION_MAX:,}. "
            "Shorten it or send the rest as a separate message"
        )


def format_size(size: int, *, exact: bool = False) -> str:
    """`size` bytes the way WhatsApp's limits are written: ``20.0 MB``, ``120 KB`` (``16 MB`` if exact)."""
    if size >= MB:
        value = size / MB
        return f"{value:.0f} MB" if exact and value == int(value) else f"{value:.1f} MB"
    if size >= KB:
        value = size / KB
        return f"{value:.0f} KB" if exact or value >= 10 else f"{value:.1f} KB"
    return f"{size} bytes"


_NOUNS: dict[str, str] = {
    "image": "an image",
    "audio": "audio",
    "video": "a video",
    "document": "a document",
    "sticker": "a sticker",
}
