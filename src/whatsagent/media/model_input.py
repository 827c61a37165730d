"""How a user's medium reaches the model: as the medium, converted to a form its provider takes,
transcribed, or described in words.

What each provider takes comes from `whatsagent.media.capabilities`. `to_model_input` never raises:
what cannot be sent becomes text.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from whatsagent.media import bounds
from whatsagent.media.capabilities import ANY, TEXT_DOCUMENT_MAX_CHARS, Capabilities, ModelInputKind, capabilities_for
from whatsagent.media.convert import OutputTooLarge, fit_image, to_mp3, to_mp4, to_wav
from whatsagent.media.limits import MediaKind, format_size
from whatsagent.media.office import office_text
from whatsagent.media.sniff import DOCX, PPTX, resolve_mime
from whatsagent.media.transcribe import Transcriber

if TYPE_CHECKING:
    from pydantic_ai.messages import BinaryContent

logger = logging.getLogger(__name__)

_VERBS = {
    "image": "see images",
    "audio": "listen to audio",
    "video": "watch video",
    "document": "read this file",
}


async def to_model_input(
    provider: str,
    model_name: str,
    kind: MediaKind,
    data: bytes,
    mime_type: str | None,
    description: str,
    *,
    filename: str | None = None,
    identifier: str | None = None,
    transcriber: Transcriber | None = None,
    capabilities: Capabilities | None = None,
) -> BinaryContent | str:
    """What the model gets for a medium the user sent: the medium in a format its provider takes
    (a voice note as WAV for an OpenAI audio model, as it is for Gemini), a transcript when it cannot
    listen and a `transcriber` is given, the text of a text document, or else `description` with a
    note saying why the medium itself is missing. Never raises.

    `identifier` (say, the media-store key) names the file to the model, so a tool call can refer
    to it ("edit image 3fa2…"). `capabilities` overrides the table, e.g. `capabilities_for_model`.
    """
    caps = capabilities or capabilities_for(provider, model_name)
    model_kind: ModelInputKind = "image" if kind == "sticker" else kind
    mime = resolve_mime(data, mime_type)
    try:
        if model_kind == "document" and not (caps.accepts("document", mime) and caps.documents != ANY):
            # Text reaches every model; Word and PowerPoint text too, unless the model reads the file.
            # Unzipping and parsing hold the CPU: in a thread, so webhooks and other turns go on.
            text = await bounds.in_thread(_document_text, data, mime)
            if text is not None:
                return _with_text(description, filename, text)
        converted = await _convert_for(caps, model_kind, data, mime)
        if converted is not None:
            from pydantic_ai.messages import BinaryContent  # pydantic-ai loads after ready, not at start-up

            return BinaryContent(data=converted[0], media_type=converted[1], identifier=identifier)
        if model_kind == "audio" and transcriber is not None:
            try:
                transcript = await transcriber.transcribe(data, mime)
            except Exception as error:
                logger.warning("could not transcribe %s for %s:%s: %r", mime, provider, model_name, error)
                return f"{description} (It could not be transcribed: {error}.)"
            return f"{description}\nTranscript of the recording: {transcript}"
        return _missing(description, model_kind, caps, provider, model_name, data)
    except Exception as error:
        # The user's message still reaches the model; the medium's absence is explained in words.
        logger.warning("could not prepare %s (%s) for %s:%s: %r", kind, mime, provider, model_name, error)
        return f"{description} (The {model_kind} could not be opened: {error}.)"


async def _convert_for(caps: Capabilities, kind: ModelInputKind, data: bytes, mime: str) -> tuple[bytes, str] | None:
    accepted = caps.types(kind)
    limit = caps.max_bytes(kind)
    if not accepted:
        return None
    if (accepted == ANY or mime in accepted) and len(data) <= limit:
        return data, mime
    if kind == "image":
        targets = tuple(t for t in accepted if t in ("image/png", "image/jpeg", "image/webp"))
        return await fit_image(data, targets, limit) if targets else None
    if kind == "audio":
        for target in accepted:
            if target in ("audio/wav", "audio/mpeg"):
                try:
                    if target == "audio/wav":
                        audio = await to_wav(data, max_bytes=limit)
                    else:
                        audio = await to_mp3(data, max_bytes=limit)
                except OutputTooLarge:
                    continue  # over the model's size: the next type, a transcript, else a description
                return audio, target
        return None
    if kind == "video" and "video/mp4" in accepted:
        video = await to_mp4(data)
        return (video, "video/mp4") if len(video) <= limit else None
    return None


def _missing(description: str, kind: ModelInputKind, caps: Capabilities, provider: str, model: str, data: bytes) -> str:
    if caps.types(kind) and len(data) > caps.max_bytes(kind):
        limit = format_size(caps.max_bytes(kind), exact=True)
        why = f"it is {format_size(len(data))}, over the {limit} this model takes"
    else:
        who = f"{provider}:{model}" if model else provider or "this model"
        why = f"{who} cannot {_VERBS[kind]}"
    return f"{description} (Its content is not available to you: {why}.)"


def _with_text(description: str, filename: str | None, text: str) -> str:
    cut = len(text) > TEXT_DOCUMENT_MAX_CHARS
    body = text[:TEXT_DOCUMENT_MAX_CHARS]
    name = f" {filename}" if filename else ""
    note = f"\n[… cut: the document has {len(text):,} characters]" if cut else ""
    return f"{description}\n<document{name}>\n{body}{note}\n</document>"


def _document_text(data: bytes, mime: str) -> str | None:
    """The text of a document that is text, or whose text is easy to lift out (Word, PowerPoint)."""
    if mime.startswith("text/") or mime in ("application/json", "application/xml", "application/yaml"):
        return data.decode("utf-8", errors="replace")
    if mime in (DOCX, PPTX):
        return office_text(data, mime)
    return None
