"""`whatsagent doctor`: check a setup before serving it, one line per check.

    whatsagent doctor myapp:os [--webhook-url https://bot.example.com/whatsapp/webhook]

Checks, in order: the settings (every channel's, every agent's model key and tools, the database path),
each channel's credentials as its provider sees them (Cloud API: the access token and phone number id
against the Graph API, or the emulator when ``WHATSAPP_API_BASE_URL`` points at it), the database and
its migrations, media conversion (PyAV and Pillow encode a voice note and a picture), and, given a
webhook URL, that it answers as the channel's webhook must (Cloud API: Meta's verification with the
verify token). Nothing is changed: the database is not migrated, nothing is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import aiohttp

from whatsagent.errors import ConfigurationError

if TYPE_CHECKING:
    from whatsagent.app import AgentOS
    from whatsagent.channels.base import Channel

Outcome = Literal["ok", "fail", "skip"]


@dataclass(frozen=True)
class Check:
    name: str
    outcome: Outcome
    detail: str

    @property
    def line(self) -> str:
        mark = {"ok": "ok  ", "fail": "FAIL", "skip": "skip"}[self.outcome]
        return f"{mark} {self.name}: {self.detail}"


async def diagnose(agent_os: AgentOS, *, webhook_url: str | None = None, timeout: float = 10.0) -> list[Check]:
    """Every check's result; none raises."""
    checks = [_settings(agent_os)]
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(timeout=client_timeout) as http:
        for channel in agent_os.channels:
            checks.append(await _access_token(channel, http))
        checks.append(await asyncio.to_thread(_database, agent_os.database_url))
        checks.append(await _media())
        for channel in agent_os.channels:
            checks.append(await _webhook(channel, webhook_url, http))
    return checks


def _settings(agent_os: AgentOS) -> Check:
    try:
        agent_os.validate()
    except ConfigurationError as exc:
        return Check("settings", "fail", str(exc).replace("\n", "; "))
    agents = ", ".join(sorted({r.name for r in agent_os.responders.values()}))
    channels = ", ".join(c.name for c in agent_os.channels)
    return Check("settings", "ok", f"channels {channels}; agents {agents}")


async def _access_token(channel: Channel, http: aiohttp.ClientSession) -> Check:
    outcome, detail = await channel.check_credentials(http)
    return Check(f"access token ({channel.name})", outcome, detail)


def _database(url: str) -> Check:
    from whatsagent.app import sqlite_problem
    from whatsagent.privacy import redacted
    from whatsagent.store.migrations import HEAD, revision_of

    name = f"database ({redacted(url)})"
    problem = sqlite_problem(url)
    if problem:
        return Check(name, "fail", problem)
    try:
        revision = revision_of(url)
    except Exception as exc:
        return Check(name, "fail", f"cannot open it: {str(exc).splitlines()[0]}")
    if revision is None:
        return Check(name, "ok", f"empty: created at revision {HEAD} at first start (or `whatsagent db upgrade`)")
    if revision != HEAD:
        return Check(name, "fail", f"at revision {revision}, the code needs {HEAD}: run `whatsagent db upgrade`")
    return Check(name, "ok", f"at revision {HEAD}, the newest")


async def _media() -> Check:
    try:
        from whatsagent.media.convert import to_png, to_voice_note
    except ImportError as exc:
        return Check("media conversion", "fail", f"{exc}: install the media extra (pip install 'whatsagent[media]')")
    try:
        voice = await to_voice_note(_wav_tone())
        picture = await to_png(_bmp())
    except Exception as exc:
        return Check("media conversion", "fail", f"{exc!r}: install the media extra (pip install 'whatsagent[media]')")
    return Check(
        "media conversion", "ok", f"voice note {len(voice)} bytes of OGG/Opus, picture {len(picture)} bytes of PNG"
    )


async def _webhook(channel: Channel, url: str | None, http: aiohttp.ClientSession) -> Check:
    outcome, detail = await channel.check_webhook(http, url)
    return Check(f"webhook verification ({channel.name})", outcome, detail)


def _wav_tone() -> bytes:
    import io
    import math
    import struct
    import wave

    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16_000)
        wav.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(i / 8))) for i in range(8000)))
    return out.getvalue()


def _bmp() -> bytes:
    import struct

    width = height = 4
    row = b"\x00\x80\xff" * width
    pixels = row * height
    header = struct.pack("<2sIHHI", b"BM", 54 + len(pixels), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    return header + info + pixels


def report(checks: list[Check], echo: Callable[[str], None]) -> int:
    """Print one line per check; the exit code: 1 when any failed."""
    for check in checks:
        echo(check.line)
    failed = [c for c in checks if c.outcome == "fail"]
    echo(f"{len(failed)} problem(s) found" if failed else "all checks passed")
    return 1 if failed else 0
