"""What goes through the spool and the link: a webhook's events as bytes, and length-prefixed frames.

Events are stored as JSON, each tagged with its kind (a message, a status update, a channel notice):
the three models ignore unknown fields, so without the tag a status could read as a notice.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Sequence

import orjson

from whatsagent.messages import ChannelNotice, Event, StatusUpdate, inbound_adapter

_KINDS: dict[str, type[StatusUpdate] | type[ChannelNotice]] = {"status": StatusUpdate, "notice": ChannelNotice}

_FRAME = struct.Struct(">QdI")  # spool id, when the front spooled it (Unix time), length of the events
_ACK = struct.Struct(">Q")  # stored through this spool id

MAX_FRAME = 64 * 1024 * 1024
"""Largest events blob a frame may carry (a webhook body is capped far below this by its channel)."""


def dump_events(events: Sequence[Event]) -> bytes:
    items = []
    for event in events:
        kind = (
            "status" if isinstance(event, StatusUpdate) else "notice" if isinstance(event, ChannelNotice) else "message"
        )
        items.append((kind, event.model_dump(mode="json")))
    return orjson.dumps(items)


def load_events(blob: bytes) -> list[Event]:
    events: list[Event] = []
    for kind, data in orjson.loads(blob):
        model = _KINDS.get(kind)
        events.append(model.model_validate(data) if model is not None else inbound_adapter.validate_python(data))
    return events


def frame(spool_id: int, spooled_at: float, blob: bytes) -> bytes:
    return _FRAME.pack(spool_id, spooled_at, len(blob)) + blob


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, float, bytes]:
    """The next frame: (spool id, spooled at, events); `asyncio.IncompleteReadError` when the other side
    closed."""
    spool_id, spooled_at, length = _FRAME.unpack(await reader.readexactly(_FRAME.size))
    if length > MAX_FRAME:
        raise ValueError(f"a frame of {length} bytes is over the limit of {MAX_FRAME}")
    return spool_id, spooled_at, await reader.readexactly(length)


def ack(spool_id: int) -> bytes:
    return _ACK.pack(spool_id)


async def read_ack(reader: asyncio.StreamReader) -> int:
    (spool_id,) = _ACK.unpack(await reader.readexactly(_ACK.size))
    return int(spool_id)
