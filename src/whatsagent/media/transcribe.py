"""Speech to text, for voice notes sent to a model that cannot listen.

`OpenAITranscriber` speaks OpenAI's ``POST /v1/audio/transcriptions``, which Groq
(``https://api.groq.com/openai/v1``, model ``whisper-large-v3``), a local faster-whisper server and
others also serve: point `base_url` at any of them.
"""

from __future__ import annotations

import os
from typing import Any, Protocol, runtime_checkable

from whatsagent.errors import ConfigurationError, WhatsAgentError
from whatsagent.media.convert import to_mp3
from whatsagent.media.sniff import extension_for, resolve_mime

# OpenAI's transcription endpoint reads these containers (its docs: flac, mp3, mp4, mpeg, mpga, m4a,
# ogg, wav, webm) and refuses files over 25 MB. WhatsApp voice notes (OGG/Opus) go as they are.
_READABLE = {"audio/flac", "audio/mpeg", "audio/mp4", "video/mp4", "audio/ogg", "audio/wav", "video/webm"}
_MAX_BYTES = 25 * 1024 * 1024


class TranscriptionFailed(WhatsAgentError):
    """The speech-to-text service did not return a transcript. Callers fall back to a description."""


@runtime_checkable
class Transcriber(Protocol):
    """Turns recorded speech into text."""

    async def transcribe(self, data: bytes, mime_type: str) -> str: ...


class OpenAITranscriber:
    """Transcribes through an OpenAI-compatible ``/audio/transcriptions`` endpoint, over aiohttp.

    Pass the process's shared `session` to reuse its connection pool; without one, a session is
    opened per call.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        model: str = "gpt-4o-mini-transcribe",
        language: str | None = None,
        session: Any = None,
        timeout: float = 60.0,
    ) -> None:
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            raise ConfigurationError("OpenAITranscriber needs an API key: pass api_key=... or set OPENAI_API_KEY")
        self.api_key = key
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1").rstrip("/")
        self.model = model
        self.language = language
        self.session = session
        self.timeout = timeout

    async def transcribe(self, data: bytes, mime_type: str) -> str:
        import aiohttp

        mime = resolve_mime(data, mime_type)
        if mime not in _READABLE or len(data) > _MAX_BYTES:
            data, mime = await to_mp3(data, bitrate=32_000), "audio/mpeg"
        form = aiohttp.FormData()
        form.add_field("model", self.model)
        if self.language:
            form.add_field("language", self.language)
        form.add_field("response_format", "json")
        form.add_field("file", data, filename=f"voice{extension_for(mime)}", content_type=mime)
        url = f"{self.base_url}/audio/transcriptions"
        headers = {"Authorization": f"Bearer {self.api_key}"}
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        session = self.session or aiohttp.ClientSession()
        try:
            async with session.post(url, data=form, headers=headers, timeout=timeout) as response:
                if response.status != 200:
                    body = (await response.text())[:300]
                    raise TranscriptionFailed(f"{url} answered HTTP {response.status}: {body}")
                payload = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as error:
            raise TranscriptionFailed(f"could not reach {url}: {error!r}") from error
        finally:
            if self.session is None:
                await session.close()
        text = payload.get("text") if isinstance(payload, dict) else None
        if not isinstance(text, str):
            raise TranscriptionFailed(f"{url} returned no 'text' field")
        return text.strip()
