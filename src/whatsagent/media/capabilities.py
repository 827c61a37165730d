"""Which media each model provider takes as input, and how a user's medium reaches the model.

The table follows what pydantic-ai's model adapters actually send (pydantic-ai 2.68): a kind an
adapter raises on (`NotImplementedError` for audio in `OpenAIResponsesModel`, `AnthropicModel`,
`GroqModel`, `MistralModel`, `BedrockConverseModel`; an ``assert`` on wav/mp3 in `OpenAIChatModel`)
is a kind the table says the provider cannot take, whatever the provider's own API offers. Where the
adapter would send something only some of a provider's models read (images to a text-only model,
audio to a non-audio GPT), the model name decides, conservatively: a wrong "no" costs the model a
description instead of the medium; a wrong "yes" costs the user an error.

`to_model_input` never raises: what cannot be sent becomes text.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from whatsagent.media import bounds
from whatsagent.media.convert import OutputTooLarge, fit_image, to_mp3, to_mp4, to_wav
from whatsagent.media.limits import MB, MediaKind, format_size
from whatsagent.media.office import office_text
from whatsagent.media.sniff import DOCX, PPTX, resolve_mime
from whatsagent.media.transcribe import Transcriber

if TYPE_CHECKING:
    from pydantic_ai.messages import BinaryContent

logger = logging.getLogger(__name__)

ModelInputKind = Literal["image", "audio", "video", "document"]

ANY = ("*",)
"""Every MIME type of the kind, sent as it is: for models that never serialize (TestModel, FunctionModel)."""

TEXT_DOCUMENT_MAX_CHARS = 60_000
"""A text document longer than this is cut: about 15,000 tokens, a fair share of any context window."""

_IMAGES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_OPENAI_AUDIO = ("audio/wav", "audio/mpeg")
_GEMINI_AUDIO = ("audio/ogg", "audio/wav", "audio/mpeg", "audio/aac", "audio/flac", "audio/aiff")
_GEMINI_VIDEO = (
    "video/mp4",
    "video/mpeg",
    "video/quicktime",
    "video/x-msvideo",
    "video/x-flv",
    "video/webm",
    "video/x-ms-wmv",
    "video/3gpp",
)
_BEDROCK_VIDEO = (
    "video/mp4",
    "video/quicktime",
    "video/x-matroska",
    "video/webm",
    "video/x-flv",
    "video/mpeg",
    "video/x-ms-wmv",
    "video/3gpp",
)
_BEDROCK_DOCUMENTS = (
    "application/pdf",
    "text/csv",
    "application/msword",
    DOCX,
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "text/html",
)


@dataclass(frozen=True)
class Capabilities:
    """What one model takes as input, by kind: the MIME types it reads, in order of preference (the
    first convertible one is the conversion target), and the largest file of each kind it takes.

    An empty tuple means the kind never reaches the model as media; `ANY` passes every type through.
    """

    images: tuple[str, ...] = ()
    audio: tuple[str, ...] = ()
    video: tuple[str, ...] = ()
    documents: tuple[str, ...] = ()
    max_image_bytes: int = 20 * MB
    max_audio_bytes: int = 20 * MB
    max_video_bytes: int = 20 * MB
    max_document_bytes: int = 20 * MB
    source: str = ""
    """Why the row says what it says: the adapter code path or provider limit it follows."""

    def types(self, kind: ModelInputKind) -> tuple[str, ...]:
        by_kind = {"image": self.images, "audio": self.audio, "video": self.video, "document": self.documents}
        return by_kind[kind]

    def max_bytes(self, kind: ModelInputKind) -> int:
        return {
            "image": self.max_image_bytes,
            "audio": self.max_audio_bytes,
            "video": self.max_video_bytes,
            "document": self.max_document_bytes,
        }[kind]

    def accepts(self, kind: ModelInputKind, mime_type: str | None = None) -> bool:
        types = self.types(kind)
        return bool(types) and (mime_type is None or types == ANY or mime_type in types)


TEXT_ONLY = Capabilities(source="no media input known for this provider: descriptions only")
PASS_THROUGH = Capabilities(
    images=ANY,
    audio=ANY,
    video=ANY,
    documents=ANY,
    max_image_bytes=100 * MB,
    max_audio_bytes=100 * MB,
    max_video_bytes=100 * MB,
    max_document_bytes=100 * MB,
    source="TestModel and FunctionModel hand parts to Python code unchanged",
)


# --- model-name rules ---------------------------------------------------------------------------


def _openai_sees(name: str) -> bool:
    # Text-only OpenAI families; every later chat model reads images (and PDFs, which OpenAI feeds
    # to the model as page images plus text).
    text_only = ("gpt-3.5", "o1-mini", "o3-mini", "babbage", "davinci", "gpt-4-0", "gpt-4-32k")
    return not (name.startswith(text_only) or name == "gpt-4" or "audio" in name or "search" in name)


def _openai_hears(name: str) -> bool:
    # Chat Completions takes `input_audio` only on the audio models (gpt-4o-audio-preview,
    # gpt-4o-mini-audio-preview, gpt-audio, gpt-audio-mini); others answer 400.
    return "audio" in name and "realtime" not in name


def _openai_responses(name: str) -> Capabilities:
    sees = _openai_sees(name)
    return Capabilities(
        images=_IMAGES if sees else (),
        documents=("application/pdf",) if sees else (),
        max_document_bytes=32 * MB,
        source="OpenAIResponsesModel: input_image, input_file; audio and video raise NotImplementedError",
    )


def _openai_chat(name: str) -> Capabilities:
    sees = _openai_sees(name)
    return Capabilities(
        images=_IMAGES if sees else (),
        audio=_OPENAI_AUDIO if _openai_hears(name) else (),
        documents=("application/pdf",) if sees else (),
        max_audio_bytes=20 * MB,
        max_document_bytes=32 * MB,
        source="OpenAIChatModel: image_url data URI, input_audio (asserts wav or mp3), file; video raises",
    )


def _azure_chat(name: str) -> Capabilities:
    return replace(_openai_chat(name), documents=(), source="OpenAIChatModel on Azure: its profile turns documents off")


_VISION_HINTS = re.compile(
    r"vision|vl\b|-vl|llava|pixtral|gemma-?3|llama-?4|llama3\.2-vision|scout|maverick|minicpm-v|moondream|"
    r"qwen2\.5vl|qwen2\.5-vl|qwen3-vl|granite3\.2-vision|mistral-small3\.[12]|mistral-medium|gpt-4o|gpt-4\.1|gpt-5"
)


def _openai_compatible(name: str) -> Capabilities:
    return Capabilities(
        images=_IMAGES if _VISION_HINTS.search(name.lower()) else (),
        max_image_bytes=10 * MB,
        source="OpenAIChatModel on an OpenAI-compatible server (Ollama, vLLM, LM Studio): images only for "
        "models whose name says vision; no input_audio, and vLLM's profile turns documents off",
    )


def _openrouter(name: str) -> Capabilities:
    return Capabilities(
        images=_IMAGES if _VISION_HINTS.search(name.lower()) or name.startswith(("anthropic/", "google/")) else (),
        documents=("application/pdf",),
        source="OpenRouterModel: image_url and file parts; PDFs are parsed by OpenRouter for any model",
    )


def _anthropic(name: str) -> Capabilities:
    old = name.startswith(("claude-2", "claude-instant"))
    return Capabilities(
        images=() if old else _IMAGES,
        documents=() if old else ("application/pdf",),
        # Anthropic refuses images over 5 MB and requests over 32 MB.
        max_image_bytes=5 * MB,
        max_document_bytes=24 * MB,
        source="AnthropicModel: image and PDF blocks; audio and video raise NotImplementedError",
    )


def _google(name: str) -> Capabilities:
    if "gemma" in name:
        return Capabilities(images=("image/jpeg", "image/png", "image/webp"), source="Gemma on the Gemini API")
    image_model = "image" in name
    # Inline data counts against the 20 MB request limit after base64 (4/3), so 14 MB raw at most.
    return Capabilities(
        images=("image/jpeg", "image/png", "image/webp", "image/heic"),
        audio=() if image_model else _GEMINI_AUDIO,
        video=() if image_model else _GEMINI_VIDEO,
        documents=("application/pdf",),
        max_image_bytes=14 * MB,
        max_audio_bytes=14 * MB,
        max_video_bytes=14 * MB,
        max_document_bytes=14 * MB,
        source="GoogleModel: every file goes as inline_data; Gemini reads OGG/Opus voice notes natively",
    )


def _groq(name: str) -> Capabilities:
    return Capabilities(
        images=("image/jpeg", "image/png", "image/webp") if _VISION_HINTS.search(name) else (),
        # Groq: base64 images up to 4 MB encoded.
        max_image_bytes=3 * MB,
        source="GroqModel: only images (raises for other BinaryContent), only on vision models",
    )


def _mistral(name: str) -> Capabilities:
    vision = re.search(r"pixtral|mistral-(small|medium)|mistral-large-(3|25)|ministral-3|magistral-medium", name)
    return Capabilities(
        images=("image/jpeg", "image/png", "image/webp", "image/gif") if vision else (),
        documents=("application/pdf",),
        max_image_bytes=10 * MB,
        max_document_bytes=50 * MB,
        source="MistralModel: image_url and document_url (PDF); audio raises NotImplementedError",
    )


def _bedrock(name: str) -> Capabilities:
    sees = (
        ("claude" in name and not re.search(r"claude-(v2|instant)", name))
        or ("nova" in name and "micro" not in name)
        or re.search(r"llama4|llama3-2-(11|90)b|pixtral|mistral-large-3", name) is not None
    )
    watches = "nova" in name and "micro" not in name
    return Capabilities(
        images=_IMAGES if sees else (),
        video=_BEDROCK_VIDEO if watches else (),
        documents=_BEDROCK_DOCUMENTS if sees else (),
        # Converse: images up to 3.75 MB, documents up to 4.5 MB, inline video up to 25 MB.
        max_image_bytes=3_750_000,
        max_document_bytes=4_500_000,
        max_video_bytes=20 * MB,
        source="BedrockConverseModel: image, document, (Nova) video blocks; audio raises NotImplementedError",
    )


def _xai(name: str) -> Capabilities:
    return Capabilities(
        images=("image/jpeg", "image/png"),
        documents=("application/pdf",),
        max_image_bytes=10 * MB,
        source="XaiModel: images, documents uploaded to xAI files; audio and video raise NotImplementedError",
    )


def _huggingface(name: str) -> Capabilities:
    return Capabilities(
        images=_IMAGES if _VISION_HINTS.search(name.lower()) else (),
        source="HuggingFaceModel: images only",
    )


def _fixed(capabilities: Capabilities) -> Callable[[str], Capabilities]:
    return lambda _name: capabilities


CAPABILITIES: dict[str, Callable[[str], Capabilities]] = {
    # `openai:` means the Responses API since pydantic-ai 2.0; `openai-chat:` is Chat Completions.
    "openai": _openai_responses,
    "openai-responses": _openai_responses,
    "azure-responses": _openai_responses,
    "openai-chat": _openai_chat,
    "azure": _azure_chat,
    "openai-compatible": _openai_compatible,
    "ollama": _openai_compatible,
    "vllm": _openai_compatible,
    "lmstudio": _openai_compatible,
    "litellm": _openai_compatible,
    "together": _openai_compatible,
    "fireworks": _openai_compatible,
    "openrouter": _openrouter,
    "anthropic": _anthropic,
    "google": _google,
    "google-gla": _google,
    "google-vertex": _google,
    "google-cloud": _google,
    "groq": _groq,
    "mistral": _mistral,
    "bedrock": _bedrock,
    "xai": _xai,
    "grok": _xai,
    "huggingface": _huggingface,
    "cohere": _fixed(replace(TEXT_ONLY, source="CohereModel: text only")),
    "deepseek": _fixed(replace(TEXT_ONLY, source="DeepSeek: text only")),
    "test": _fixed(PASS_THROUGH),
    "function": _fixed(PASS_THROUGH),
}
"""Provider name (as in a pydantic-ai model string, ``provider:model``) → capabilities by model name.
Add or replace entries to teach whatsagent about another provider or a fine-tuned model."""


def capabilities_for(provider: str, model_name: str = "") -> Capabilities:
    """The media `model_name` on `provider` takes. Unknown providers get `TEXT_ONLY`: safe, if dull."""
    rule = CAPABILITIES.get(provider.lower())
    return rule(model_name.lower()) if rule else TEXT_ONLY


_MODEL_CLASSES = {
    "OpenAIResponsesModel": "openai-responses",
    "AnthropicModel": "anthropic",
    "GoogleModel": "google",
    "GroqModel": "groq",
    "MistralModel": "mistral",
    "BedrockConverseModel": "bedrock",
    "XaiModel": "xai",
    "OpenRouterModel": "openrouter",
    "HuggingFaceModel": "huggingface",
    "CohereModel": "cohere",
    "TestModel": "test",
    "FunctionModel": "function",
    "OpenAIChatModel": "openai-chat",
}


def provider_of(model: Any) -> tuple[str, str]:
    """The (provider, model name) the capability table is keyed by, for a pydantic-ai model string
    (``openai:gpt-4o``, ``test``) or `Model` instance. Classes are matched by name, so no provider
    SDK is imported here."""
    if isinstance(model, str):
        provider, _, name = model.partition(":")
        return (provider, name) if name else (provider, "")
    for cls in type(model).__mro__:
        family = _MODEL_CLASSES.get(cls.__name__)
        if family is None:
            continue
        name = str(getattr(model, "model_name", ""))
        if family == "openai-chat":
            system = str(getattr(model, "system", "openai"))
            if system == "azure":
                return "azure", name
            if system not in ("openai", "openai-chat"):
                return "openai-compatible", name
        return family, name
    return "", str(getattr(model, "model_name", ""))


def capabilities_for_model(model: Any) -> Capabilities:
    """`capabilities_for` a model string or a pydantic-ai `Model`; wrappers are looked through and a
    `FallbackModel` gets only what every one of its models takes."""
    wrapped = getattr(model, "wrapped", None)
    if wrapped is not None and not isinstance(model, str):
        return capabilities_for_model(wrapped)
    models = getattr(model, "models", None)
    if isinstance(models, list | tuple) and models and not isinstance(model, str):
        result = capabilities_for_model(models[0])
        for other in models[1:]:
            result = _intersect(result, capabilities_for_model(other))
        return result
    return capabilities_for(*provider_of(model))


def _intersect(a: Capabilities, b: Capabilities) -> Capabilities:
    def both(x: tuple[str, ...], y: tuple[str, ...]) -> tuple[str, ...]:
        if x == ANY:
            return y
        if y == ANY:
            return x
        return tuple(t for t in x if t in y)

    return Capabilities(
        images=both(a.images, b.images),
        audio=both(a.audio, b.audio),
        video=both(a.video, b.video),
        documents=both(a.documents, b.documents),
        max_image_bytes=min(a.max_image_bytes, b.max_image_bytes),
        max_audio_bytes=min(a.max_audio_bytes, b.max_audio_bytes),
        max_video_bytes=min(a.max_video_bytes, b.max_video_bytes),
        max_document_bytes=min(a.max_document_bytes, b.max_document_bytes),
        source=f"what both take: ({a.source}) and ({b.source})",
    )


# --- the conversion -----------------------------------------------------------------------------

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
