"""Turning what a model or a tool produced into what WhatsApp sends, and what a user sent into what a
model provider reads.

Images go through Pillow, audio and video through PyAV (its wheels bundle FFmpeg, so nothing else is
installed). Decoding and encoding hold the CPU for tens to hundreds of milliseconds, so every public
coroutine here runs its work in a thread (`bounds.in_thread`), never on the event loop, and at most
`bounds.PARALLEL_DECODES` at a time.
"""

from __future__ import annotations

import math
import os
import tempfile
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from io import BytesIO
from typing import Any, Literal, NamedTuple

from whatsagent.media import bounds
from whatsagent.media.limits import (
    ANIMATED_STICKER_MAX,
    LIMITS,
    STICKER_SIDE,
    MediaKind,
    MediaRejected,
    check,
    format_size,
    kind_for,
)
from whatsagent.media.sniff import resolve_mime

VOICE_BITRATE = 32_000
"""Opus at 32 kbit/s is transparent for speech and fits 66 minutes into WhatsApp's 16 MB."""

MODEL_AUDIO_RATE = 16_000
"""Speech models resample to 16 kHz anyway; sending more only makes the request bigger."""

VIDEO_MAX_SIDE = 1280
"""Long edge of transcoded video. WhatsApp recompresses to about 720p on delivery anyway."""

_JPEG_QUALITIES = (90, 82, 75)
_DOWNSCALE = 0.75
_MAX_SHRINK_STEPS = 10

_PHOTOS = {"image/jpeg", "image/heic", "image/avif"}

# Types that are text and can go as a WhatsApp text/plain document with their bytes unchanged.
_TEXT_DOCUMENTS = {"text/csv", "text/markdown", "text/html", "application/json", "application/xml"}


class OutputTooLarge(MediaRejected):
    """A conversion stopped because its result grew past the size asked for."""


class SendableMedia(NamedTuple):
    """A medium WhatsApp will accept: its bytes, their real MIME type, and the kind to send it as."""

    data: bytes
    mime_type: str
    kind: MediaKind


async def prepare_outbound(
    data: bytes, mime_type: str | None, kind_hint: MediaKind | None = None, *, voice: bool = False
) -> SendableMedia:
    """Validate a medium for sending, converting it where WhatsApp would refuse it as it is.

    The type is sniffed from the bytes (a declared type is only a hint). `kind_hint` says how the
    caller wants it sent (a ``sticker`` rather than an ``image``, a ``document`` rather than a PDF
    preview); without it the kind follows from the type. `voice` asks for an OGG/Opus voice note
    whatever the audio's format. Raises `MediaRejected` with a reason a user or a model can act on
    when no conversion can make it sendable.
    """
    return await bounds.in_thread(_prepare, data, mime_type, kind_hint, voice)


def _prepare(data: bytes, declared: str | None, kind_hint: MediaKind | None, voice: bool) -> SendableMedia:
    if not data:
        raise MediaRejected("the file is empty (0 bytes)", mime_type=declared, size=0)
    mime = resolve_mime(data, declared)
    natural = kind_for(mime)
    kind: MediaKind = kind_hint or natural
    if voice:
        kind = "audio"
    if kind == "sticker":
        if natural != "image":
            raise MediaRejected(f"a sticker must be an image; this file is {mime}", kind=kind, mime_type=mime)
        return _prepare_sticker(data, mime)
    if kind == "image":
        if natural != "image":
            raise MediaRejected(f"an image was expected, but this file is {mime}", kind=kind, mime_type=mime)
        data, mime = _image_for_whatsapp(data, mime)
    elif kind == "audio":
        if natural not in ("audio", "video"):
            raise MediaRejected(f"audio was expected, but this file is {mime}", kind=kind, mime_type=mime)
        data, mime = _audio_for_whatsapp(data, mime, voice=voice)
    elif kind == "video":
        if natural != "video" and mime != "image/gif":
            raise MediaRejected(f"a video was expected, but this file is {mime}", kind=kind, mime_type=mime)
        data, mime = _video_for_whatsapp(data, mime)
    elif kind == "document":
        if mime in _TEXT_DOCUMENTS or (mime.startswith("text/") and mime != "text/plain"):
            mime = "text/plain"
    check(kind, mime, len(data))
    return SendableMedia(data, mime, kind)


# --- images -------------------------------------------------------------------------------------


async def to_png(data: bytes) -> bytes:
    """Any image Pillow reads (WebP, GIF, BMP, TIFF, AVIF; HEIC with pillow-heif) as a PNG of the same
    size. An animation becomes its first frame."""
    return await bounds.in_thread(_to_png, data)


async def to_jpeg(data: bytes, quality: int = 90) -> bytes:
    """Any image as a JPEG; transparency is flattened onto white."""
    return await bounds.in_thread(_to_jpeg, data, quality)


async def fit_image(data: bytes, accepted: frozenset[str] | tuple[str, ...], max_bytes: int) -> tuple[bytes, str]:
    """`data` as one of the `accepted` image types within `max_bytes`: unchanged when it already is,
    else converted, then recompressed and downscaled until it fits. Raises `MediaRejected`."""
    return await bounds.in_thread(_fit_image, data, resolve_mime(data), tuple(accepted), max_bytes)


def _open_image(data: bytes, mime: str) -> Any:
    from PIL import Image, ImageOps

    if mime == "image/heic":
        try:
            from pillow_heif import register_heif_opener  # type: ignore[import-not-found]
        except ImportError:
            raise MediaRejected(
                "HEIC images need the optional pillow-heif package (pip install pillow-heif); "
                "send a JPEG or PNG instead",
                kind="image",
                mime_type=mime,
                size=len(data),
            ) from None
        register_heif_opener()
    try:
        image = Image.open(BytesIO(data))  # the header only: the size is known before any pixel is decoded
    except Exception as error:
        raise MediaRejected(
            f"the image could not be read ({mime}, {format_size(len(data))}): {error}",
            kind="image",
            mime_type=mime,
            size=len(data),
        ) from error
    bounds.check_pixels(*image.size)
    try:
        image.load()
    except Exception as error:
        raise MediaRejected(
            f"the image could not be read ({mime}, {format_size(len(data))}): {error}",
            kind="image",
            mime_type=mime,
            size=len(data),
        ) from error
    # Phones record rotation as an EXIF tag; WhatsApp shows pixels as they are.
    return ImageOps.exif_transpose(image) or image


def _has_alpha(image: Any) -> bool:
    return bool(image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info))


def _encode(image: Any, mime: str, quality: int = 90) -> bytes:
    out = BytesIO()
    if mime == "image/png":
        image = image.convert("RGBA" if _has_alpha(image) else "RGB")
        image.save(out, format="PNG")
    elif mime == "image/jpeg":
        if _has_alpha(image):
            from PIL import Image

            rgba = image.convert("RGBA")
            flat = Image.new("RGB", rgba.size, (255, 255, 255))
            flat.paste(rgba, mask=rgba.getchannel("A"))
            image = flat
        image.convert("RGB").save(out, format="JPEG", quality=quality, optimize=True)
    elif mime == "image/webp":
        image.save(out, format="WEBP", quality=quality)
    else:
        raise ValueError(f"cannot encode {mime}")
    return out.getvalue()


def _to_png(data: bytes) -> bytes:
    return _encode(_open_image(data, resolve_mime(data)), "image/png")


def _to_jpeg(data: bytes, quality: int) -> bytes:
    return _encode(_open_image(data, resolve_mime(data)), "image/jpeg", quality)


def _image_for_whatsapp(data: bytes, mime: str) -> tuple[bytes, str]:
    return _fit_image(data, mime, LIMITS["image"].mime_types, LIMITS["image"].max_bytes)


def _fit_image(data: bytes, mime: str, accepted: tuple[str, ...], max_bytes: int) -> tuple[bytes, str]:
    if mime in accepted and len(data) <= max_bytes and _plain_pixels(data, mime):
        return data, mime
    image = _open_image(data, mime)
    lossless = "image/png" if "image/png" in accepted else None
    lossy = "image/jpeg" if "image/jpeg" in accepted else ("image/webp" if "image/webp" in accepted else None)
    # Photos stay photos: a camera's JPEG or HEIC is not worth a PNG several times its size.
    photo = mime in _PHOTOS and not _has_alpha(image)
    prefer_lossless = lossless is not None and (lossy is None or not photo)
    if prefer_lossless and lossless:
        encoded = _encode(image, lossless)
        if len(encoded) <= max_bytes:
            return encoded, lossless
    target = lossy or lossless
    if target is None:
        raise MediaRejected(f"no image format is accepted here ({', '.join(accepted)})", kind="image")
    for step in range(_MAX_SHRINK_STEPS):
        if step:
            width, height = image.size
            if min(width, height) < 64:
                break
            image = image.resize((max(1, round(width * _DOWNSCALE)), max(1, round(height * _DOWNSCALE))))
        for quality in _JPEG_QUALITIES if target != "image/png" else (0,):
            encoded = _encode(image, target, quality)
            if len(encoded) <= max_bytes:
                return encoded, target
    raise MediaRejected(
        f"the image is {format_size(len(data))} and could not be made smaller than "
        f"{format_size(max_bytes, exact=True)}; send a smaller image",
        kind="image",
        mime_type=mime,
        size=len(data),
    )


def _plain_pixels(data: bytes, mime: str) -> bool:
    """Whether a JPEG or PNG is 8-bit RGB or RGBA, the only pixel formats WhatsApp lists."""
    from PIL import Image

    try:
        with Image.open(BytesIO(data)) as image:  # reads the header only
            if image.getexif().get(0x0112, 1) != 1:  # rotated by EXIF: bake the rotation in
                return False
            return bool(image.mode in ("RGB", "RGBA") or (mime == "image/jpeg" and image.mode == "L"))
    except Exception:
        return False


def _prepare_sticker(data: bytes, mime: str) -> SendableMedia:
    from PIL import Image

    animated = False
    if mime == "image/webp":
        try:
            with Image.open(BytesIO(data)) as image:
                animated = bool(getattr(image, "is_animated", False))
                square = image.size == (STICKER_SIDE, STICKER_SIDE)
        except Exception as error:
            raise MediaRejected(
                f"the sticker could not be read: {error}", kind="sticker", mime_type=mime, size=len(data)
            ) from error
        limit = ANIMATED_STICKER_MAX if animated else LIMITS["sticker"].max_bytes
        if square and len(data) <= limit:
            return SendableMedia(data, mime, "sticker")
        if animated:
            raise MediaRejected(
                f"an animated sticker must be a 512×512 WebP of at most {format_size(limit, exact=True)}; "
                f"this one is {format_size(len(data))}",
                kind="sticker",
                mime_type=mime,
                size=len(data),
            )
    image = _open_image(data, mime).convert("RGBA")
    image.thumbnail((STICKER_SIDE, STICKER_SIDE))
    canvas = Image.new("RGBA", (STICKER_SIDE, STICKER_SIDE), (0, 0, 0, 0))
    canvas.paste(image, ((STICKER_SIDE - image.width) // 2, (STICKER_SIDE - image.height) // 2))
    for quality in (90, 75, 60, 45, 30):
        encoded = _encode(canvas, "image/webp", quality)
        if len(encoded) <= LIMITS["sticker"].max_bytes:
            return SendableMedia(encoded, "image/webp", "sticker")
    raise MediaRejected(
        "the image is too detailed to fit a sticker's 100 KB; send it as an image instead",
        kind="sticker",
        mime_type=mime,
        size=len(data),
    )


# --- audio --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """What PyAV finds in a medium: its container and the codec of its first audio and video stream."""

    container: str
    audio_codec: str | None
    channels: int
    video_codec: str | None
    duration: float | None
    """Seconds, when the container knows."""


async def probe(data: bytes) -> Probe:
    """The container and codecs of an audio or video file. Raises `MediaRejected` if unreadable."""
    return await bounds.in_thread(_probe, data)


def _probe(data: bytes) -> Probe:
    import av

    try:
        with av.open(BytesIO(data), "r") as container:
            audio = container.streams.audio[0] if container.streams.audio else None
            video = container.streams.video[0] if container.streams.video else None
            duration = container.duration / 1_000_000 if container.duration else None
            return Probe(
                container=container.format.name,
                audio_codec=audio.codec_context.name if audio else None,
                channels=audio.codec_context.channels if audio else 0,
                video_codec=video.codec_context.name if video else None,
                duration=duration,
            )
    except (av.error.FFmpegError, ValueError) as error:
        raise MediaRejected(f"the file could not be read as audio or video: {error}", size=len(data)) from error


async def to_voice_note(data: bytes, bitrate: int = VOICE_BITRATE) -> bytes:
    """Any audio (WAV, raw PCM in WAV, MP3, AAC, FLAC, OGG/Vorbis, the sound of a video) as the mono
    OGG/Opus WhatsApp plays as a voice note."""
    return await bounds.in_thread(_transcode_audio, data, "ogg", bitrate)


async def to_wav(data: bytes, rate: int = MODEL_AUDIO_RATE, *, max_bytes: int | None = None) -> bytes:
    """Any audio, e.g. an inbound OGG/Opus voice note, as 16-bit mono PCM WAV at `rate` Hz. Raises
    `MediaRejected` once the WAV would be over `max_bytes`, or the audio over `bounds.MAX_SECONDS`."""
    return await bounds.in_thread(_transcode_audio, data, "wav", rate, max_bytes)


async def to_mp3(data: bytes, bitrate: int = 48_000, *, max_bytes: int | None = None) -> bytes:
    """Any audio as a mono 16 kHz MP3 (speech quality): a fifth of the WAV's size, for long recordings."""
    return await bounds.in_thread(_transcode_audio, data, "mp3", bitrate, max_bytes)


def _decoded_audio(data: bytes, rate: int, sample_format: str) -> Iterator[Any]:
    """Every sample of the first audio stream, resampled to mono `rate` Hz `sample_format` frames.
    Refused before decoding when the container says it is over `bounds.MAX_SECONDS`, and stopped there
    when it does not say."""
    import av

    try:
        with av.open(BytesIO(data), "r") as source:
            if not source.streams.audio:
                raise MediaRejected("the file has no sound to convert", size=len(data))
            bounds.check_seconds(source.duration / 1_000_000 if source.duration else None, "audio")
            stream = source.streams.audio[0]
            resampler = av.AudioResampler(format=sample_format, layout="mono", rate=rate)
            samples = 0
            for frame in source.decode(stream):
                for out in resampler.resample(frame):
                    samples += out.samples
                    bounds.check_seconds(samples / rate, "audio")
                    yield out
            yield from resampler.resample(None)
    except av.error.FFmpegError as error:
        raise MediaRejected(f"the audio could not be decoded: {error}", size=len(data)) from error


def _transcode_audio(
    data: bytes, target: Literal["ogg", "wav", "mp3"], setting: int, max_bytes: int | None = None
) -> bytes:
    """`data` as `target`; with `max_bytes`, stopped with `MediaRejected` as soon as the output is over."""
    import av

    def over(size: int) -> None:
        if max_bytes is not None and size > max_bytes:
            raise OutputTooLarge(
                f"the audio is over {format_size(max_bytes, exact=True)} as {target.upper()}, "
                "more than this model takes",
                kind="audio",
                size=len(data),
            )

    if target == "wav":
        out = BytesIO()
        with wave.open(out, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(setting)
            for frame in _decoded_audio(data, setting, "s16"):
                wav.writeframes(bytes(frame.planes[0])[: frame.samples * 2])
                over(out.tell())
        return out.getvalue()
    codec, container_format, rate, sample_format = {
        # Opus runs at 48 kHz internally; libopus takes s16 or flt.
        "ogg": ("libopus", "ogg", 48_000, "s16"),
        # MPEG-2 Layer III at 16 kHz: what speech models resample to anyway, and 3x faster to encode.
        "mp3": ("libmp3lame", "mp3", MODEL_AUDIO_RATE, "s16p"),
    }[target]
    out = BytesIO()
    with av.open(out, "w", format=container_format) as sink:
        stream: Any = sink.add_stream(codec, rate=rate, layout="mono")
        stream.bit_rate = setting
        for frame in _decoded_audio(data, rate, sample_format):
            frame.pts = None
            for packet in stream.encode(frame):
                sink.mux(packet)
            over(out.tell())
        for packet in stream.encode(None):
            sink.mux(packet)
    return out.getvalue()


def _audio_for_whatsapp(data: bytes, mime: str, *, voice: bool) -> tuple[bytes, str]:
    limit = LIMITS["audio"]
    found = _probe(data)
    if mime == "audio/ogg":
        # WhatsApp plays OGG only as mono Opus (a voice note); Vorbis or stereo is re-encoded.
        keep = found.audio_codec == "opus" and found.channels == 1
    else:
        keep = not voice and mime in limit.mime_types and found.video_codec is None
    if keep and len(data) <= limit.max_bytes:
        return data, mime
    # Too big or not playable as it is: as speech-grade Opus, an hour fits.
    converted = _transcode_audio(data, "ogg", VOICE_BITRATE)
    if len(converted) > limit.max_bytes:
        length = duration_text(found.duration)
        raise MediaRejected(
            f"audio is {format_size(len(converted))} even as a compressed voice note"
            f"{f' ({length} long)' if length else ''}; WhatsApp accepts up to "
            f"{format_size(limit.max_bytes, exact=True)}. Split it into shorter parts",
            kind="audio",
            mime_type=mime,
            size=len(data),
        )
    return converted, "audio/ogg"


# --- video --------------------------------------------------------------------------------------


async def to_mp4(data: bytes) -> bytes:
    """Any video (WebM, MOV, MKV, an animated GIF) as the MP4 WhatsApp plays: H.264 Main without
    B-frames, AAC audio, metadata first (faststart), long edge at most 1280 pixels."""
    return await bounds.in_thread(_transcode_video, data)


def _video_for_whatsapp(data: bytes, mime: str) -> tuple[bytes, str]:
    limit = LIMITS["video"]
    if mime in limit.mime_types:
        # Too big as it is: say so rather than spend a minute of CPU recompressing someone's video.
        check("video", mime, len(data))
        found = _probe(data)
        if found.video_codec == "h264" and found.audio_codec in (None, "aac"):
            return data, mime
    converted = _transcode_video(data)
    if len(converted) > limit.max_bytes:
        raise MediaRejected(
            f"video is {format_size(len(converted))} after conversion to MP4; WhatsApp accepts up to "
            f"{format_size(limit.max_bytes, exact=True)}. Send a shorter clip",
            kind="video",
            mime_type=mime,
            size=len(data),
        )
    return converted, "video/mp4"


def _even(value: float) -> int:
    return max(2, int(value) // 2 * 2)


def _transcode_video(data: bytes) -> bytes:

    # faststart rewrites the file to put the index first, which needs a real file, not a BytesIO.
    with tempfile.TemporaryDirectory(prefix="whatsagent-video-") as directory:
        path = os.path.join(directory, "out.mp4")
        _encode_mp4(data, path)
        with open(path, "rb") as file:
            return file.read()


def _encode_mp4(data: bytes, path: str) -> None:
    import av

    try:
        with (
            av.open(BytesIO(data), "r") as source,
            av.open(path, "w", format="mp4", options={"movflags": "+faststart"}) as sink,
        ):
            if not source.streams.video:
                raise MediaRejected("the file has no video stream", kind="video", size=len(data))
            bounds.check_seconds(source.duration / 1_000_000 if source.duration else None, "video")
            video_in = source.streams.video[0]
            audio_in = source.streams.audio[0] if source.streams.audio else None
            width, height = video_in.codec_context.width, video_in.codec_context.height
            bounds.check_pixels(width, height, "video")
            scale = min(1.0, VIDEO_MAX_SIDE / max(width, height))
            width, height = _even(width * scale), _even(height * scale)
            rate = video_in.average_rate or video_in.guessed_rate or Fraction(25)
            if rate > 60:
                rate = Fraction(30)
            video_out: Any = sink.add_stream(
                "libx264",
                rate=rate,
                options={"preset": "veryfast", "crf": "26", "profile": "main", "x264-params": "bframes=0"},
            )
            video_out.width, video_out.height, video_out.pix_fmt = width, height, "yuv420p"
            audio_out: Any = None
            resampler = None
            if audio_in is not None:
                audio_out = sink.add_stream("aac", rate=44_100, layout="stereo")
                audio_out.bit_rate = 96_000
                resampler = av.AudioResampler(format="fltp", layout="stereo", rate=44_100)
            streams = [video_in] + ([audio_in] if audio_in is not None else [])
            next_pts = 0
            start: float | None = None
            for packet in source.demux(*streams):
                for frame in packet.decode():
                    if isinstance(frame, av.VideoFrame):
                        # Frames are placed by their time at the output rate: variable-rate phone
                        # video and irregular GIF delays both come out constant-rate, in sync.
                        seconds = float(frame.time if frame.time is not None else next_pts / rate)
                        if start is None:
                            start = seconds
                        bounds.check_seconds(seconds - start, "video")
                        pts = round((seconds - start) * rate)
                        if pts < next_pts:
                            continue  # more frames than the output rate has room for
                        image = frame.reformat(width=width, height=height, format="yuv420p")
                        image.pts = pts
                        image.time_base = Fraction(1) / rate
                        next_pts = pts + 1
                        for out_packet in video_out.encode(image):
                            sink.mux(out_packet)
                    elif isinstance(frame, av.AudioFrame) and resampler is not None:
                        for sound in resampler.resample(frame):
                            sound.pts = None
                            for out_packet in audio_out.encode(sound):
                                sink.mux(out_packet)
            for out_packet in video_out.encode(None):
                sink.mux(out_packet)
            if audio_out is not None and resampler is not None:
                for sound in resampler.resample(None):
                    sound.pts = None
                    for out_packet in audio_out.encode(sound):
                        sink.mux(out_packet)
                for out_packet in audio_out.encode(None):
                    sink.mux(out_packet)
    except (av.error.FFmpegError, ValueError) as error:
        raise MediaRejected(f"the video could not be converted: {error}", kind="video", size=len(data)) from error


def duration_text(seconds: float | None) -> str:
    """``1:05`` for 65 seconds; empty when unknown."""
    if seconds is None or math.isnan(seconds):
        return ""
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}:{rest:02d}"
