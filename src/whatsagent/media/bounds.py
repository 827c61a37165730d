"""How much work one medium may cost: caps checked before and while a file is decoded.

A file a WhatsApp user sends is small on the wire but can be huge once decoded: a 1.5 MB ``.docx`` whose
XML inflates to gigabytes, an hour of silent Opus in 1 MB that becomes a 115 MB WAV, a 20 KB one-bit PNG
of 169 million pixels. Every decoder in `whatsagent.media` checks these caps before it allocates (image
dimensions, a container's duration, the zip directory) and again while it streams (inflated bytes,
decoded seconds), and stops with `MediaRejected` at the first one crossed. The model then gets one line
saying why the medium is missing, and the user still gets an answer.

The caps are module constants; change them before serving if your users send bigger files on purpose.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from whatsagent.media.limits import MB, MediaKind, MediaRejected

T = TypeVar("T")

MAX_ARCHIVE_MEMBERS = 5_000
"""Members of a zip (Word, Excel, PowerPoint): a real document has tens to a few hundred."""

MAX_INFLATED_BYTES = 16 * MB
"""XML read out of one Office document in all, however well it compresses."""

MAX_PIXELS = 40_000_000
"""Pixels of an image decoded (a 48-megapixel camera writes 12 Mpx unless asked; WhatsApp sends at most
4096 px a side). Pillow's own limit (89 Mpx, an error only at twice that) lets a 1-bit bomb take 1.4 GB."""

MAX_SECONDS = 30 * 60
"""Seconds of audio or video decoded: a transcoded half hour is already more than models take."""


PARALLEL_DECODES = 2
"""Conversions running at once per process (each in a thread): with the caps above, what one bomb may
cost times this is the most media decoding holds, however many users send bombs together."""

_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in a worker thread, at most `PARALLEL_DECODES` at a time: never on the event loop, so
    webhooks and other conversations go on while a medium is decoded."""
    loop = asyncio.get_running_loop()
    gate = _gates.get(loop)
    if gate is None:
        gate = _gates[loop] = asyncio.Semaphore(PARALLEL_DECODES)
    async with gate:
        return await asyncio.to_thread(fn, *args)


class OverCap(MediaRejected):
    """A medium refused because decoding it would cross one of these caps."""


def zip_members(data: bytes) -> int:
    """How many entries a zip's central directory announces, counted without building it."""
    return data.count(b"PK\x01\x02")


def check_members(data: bytes, kind: MediaKind = "document") -> None:
    count = zip_members(data)
    if count > MAX_ARCHIVE_MEMBERS:
        raise OverCap(
            f"the file is an archive of {count:,} parts, more than the {MAX_ARCHIVE_MEMBERS:,} read here",
            kind=kind,
            size=len(data),
        )


def check_pixels(width: int, height: int, kind: MediaKind = "image") -> None:
    if width * height > MAX_PIXELS:
        raise OverCap(
            f"the image is {width}×{height} pixels, more than the {MAX_PIXELS // 1_000_000} megapixels opened here",
            kind=kind,
        )


def check_seconds(seconds: float | None, kind: MediaKind) -> None:
    if seconds is not None and seconds > MAX_SECONDS:
        raise OverCap(
            f"the recording is over {MAX_SECONDS // 60} minutes long, the most converted here",
            kind=kind,
        )
