"""Media in and out: where bytes are kept, what WhatsApp accepts, how to convert to it, and what each
model provider reads.

    store.py         MediaStore seam; FileMediaStore on disk, MemoryMediaStore for tests
    sniff.py         a file's real MIME type, from its magic numbers
    limits.py        WhatsApp's outbound types and sizes; MediaRejected
    convert.py       prepare_outbound, and image/audio/video conversions (Pillow, PyAV)
    capabilities.py  per-provider model input table
    model_input.py   a medium as the model takes it (to_model_input)
    transcribe.py    Transcriber seam; OpenAITranscriber
    references.py    media in pydantic-ai messages <-> store keys, so history JSON holds no bytes

Pillow and PyAV are imported only when a conversion runs (the ``media`` extra installs them).
"""

from whatsagent.media.capabilities import Capabilities, capabilities_for, capabilities_for_model
from whatsagent.media.convert import SendableMedia, prepare_outbound
from whatsagent.media.limits import CAPTION_MAX, LIMITS, MediaKind, MediaRejected, check, check_caption
from whatsagent.media.model_input import to_model_input
from whatsagent.media.references import externalize, restore
from whatsagent.media.sniff import resolve_mime, sniff_mime
from whatsagent.media.store import FileMediaStore, MediaNotFound, MediaStore, MemoryMediaStore, StoredMedia
from whatsagent.media.transcribe import OpenAITranscriber, Transcriber, TranscriptionFailed

__all__ = [
    "CAPTION_MAX",
    "LIMITS",
    "Capabilities",
    "FileMediaStore",
    "MediaKind",
    "MediaNotFound",
    "MediaRejected",
    "MediaStore",
    "MemoryMediaStore",
    "OpenAITranscriber",
    "SendableMedia",
    "StoredMedia",
    "Transcriber",
    "TranscriptionFailed",
    "capabilities_for",
    "capabilities_for_model",
    "check",
    "check_caption",
    "externalize",
    "prepare_outbound",
    "resolve_mime",
    "restore",
    "sniff_mime",
    "to_model_input",
]
