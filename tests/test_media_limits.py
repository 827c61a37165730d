"""WhatsApp's outbound limits, checked against the bytes' real type, with reasons a person can act on."""

from __future__ import annotations

import pytest

from fakes import media_files
from whatsagent.errors import WhatsAgentError
from whatsagent.media.limits import MB, MediaRejected, check, check_caption, format_size, kind_for
from whatsagent.media.sniff import DOCX, extension_for, normalize_mime, resolve_mime, sniff_mime

# --- sniffing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: media_files.image_bytes("JPEG"), "image/jpeg"),
        (lambda: media_files.image_bytes("PNG"), "image/png"),
        (lambda: media_files.image_bytes("WEBP"), "image/webp"),
        (lambda: media_files.animated_gif(), "image/gif"),
        (lambda: media_files.image_bytes("BMP"), "image/bmp"),
        (lambda: media_files.image_bytes("TIFF"), "image/tiff"),
        (lambda: media_files.wav_tone(0.1), "audio/wav"),
        (lambda: media_files.voice_note(0.2), "audio/ogg"),
        (lambda: media_files.mp3(0.2), "audio/mpeg"),
        (lambda: media_files.flac(0.2), "audio/flac"),
        (lambda: media_files.video("libx264", seconds=0.2), "video/mp4"),
        (lambda: media_files.video("libvpx", "webm", seconds=0.2), "video/webm"),
        (lambda: media_files.pdf(), "application/pdf"),
        (lambda: media_files.docx("hi"), DOCX),
        (lambda: b"#!AMR\n\x3c\x00", "audio/amr"),
        (lambda: b"\xff\xf1\x50\x80\x02\x1f\xfc", "audio/aac"),
        (lambda: "plain words, ünïcode too".encode(), "text/plain"),
    ],
)
def test_the_type_is_read_from_the_bytes(make, expected) -> None:
    assert sniff_mime(make()) == expected


def test_a_declared_type_never_overrides_what_the_bytes_are() -> None:
    # 131053 comes from such mismatches: a WebP labelled PNG must be treated as a WebP.
    assert resolve_mime(media_files.image_bytes("WEBP"), "image/png") == "image/webp"
    assert resolve_mime(media_files.wav_tone(0.1), "audio/mpeg") == "audio/wav"


def test_a_declared_type_settles_what_the_container_cannot_say() -> None:
    h264 = media_files.video("libx264", seconds=0.2)
    assert resolve_mime(h264, "audio/mp4") == "audio/mp4"
    assert resolve_mime(b"a,b\n1,2\n", "text/csv") == "text/csv"
    assert resolve_mime(b"\x00\x01\x02", "application/x-thing") == "application/x-thing"
    assert resolve_mime(b"\x00\x01\x02") == "application/octet-stream"


def test_aliases_and_parameters_are_folded() -> None:
    assert normalize_mime("Audio/OGG; codecs=opus") == "audio/ogg"
    assert normalize_mime("image/jpg") == "image/jpeg"
    assert normalize_mime("audio/mp3") == "audio/mpeg"
    assert extension_for("audio/ogg; codecs=opus") == ".ogg"


# --- limits ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "mime", "largest"),
    [
        ("image", "image/jpeg", 5 * MB),
        ("image", "image/png", 5 * MB),
        ("audio", "audio/aac", 16 * MB),
        ("audio", "audio/amr", 16 * MB),
        ("audio", "audio/mpeg", 16 * MB),
        ("audio", "audio/mp4", 16 * MB),
        ("audio", "audio/ogg", 16 * MB),
        ("video", "video/mp4", 16 * MB),
        ("video", "video/3gpp", 16 * MB),
        ("document", "application/pdf", 100 * MB),
        ("document", "text/plain", 100 * MB),
        ("document", DOCX, 100 * MB),
        ("document", "application/vnd.ms-powerpoint", 100 * MB),
        ("sticker", "image/webp", 100_000),
    ],
)
def test_each_kind_is_accepted_up_to_its_limit_and_refused_past_it(kind, mime, largest) -> None:
    check(kind, mime, largest)
    with pytest.raises(MediaRejected, match=f"^{kind} is .*; WhatsApp accepts up to") as caught:
        check(kind, mime, largest + 1)
    assert (caught.value.kind, caught.value.mime_type, caught.value.size) == (kind, mime, largest + 1)


def test_an_animated_sticker_may_be_500_kb() -> None:
    check("sticker", "image/webp", 500_000, animated=True)
    with pytest.raises(MediaRejected, match="animated sticker is 600 KB; WhatsApp accepts up to 500 KB"):
        check("sticker", "image/webp", 600_000, animated=True)


def test_a_20_mb_video_is_refused_in_words() -> None:
    with pytest.raises(MediaRejected) as caught:
        check("video", "video/mp4", 20 * MB)
    assert str(caught.value) == "video is 20.0 MB; WhatsApp accepts up to 16 MB"
    assert isinstance(caught.value, WhatsAgentError)


@pytest.mark.parametrize(
    ("kind", "mime", "message"),
    [
        ("image", "image/webp", "an image must be JPEG or PNG; this file is image/webp"),
        ("audio", "audio/wav", "audio must be AAC, AMR, MP3, M4A or OGG/Opus (mono); this file is audio/wav"),
        ("video", "video/webm", "a video must be MP4 or 3GP (H.264 with AAC); this file is video/webm"),
        ("document", "application/zip", "a document must be PDF, plain text, or Word, Excel or PowerPoint"),
        ("sticker", "image/png", "a sticker must be WebP; this file is image/png"),
    ],
)
def test_a_type_whatsapp_does_not_take_is_refused_with_what_it_does_take(kind, mime, message) -> None:
    with pytest.raises(MediaRejected, match=message.replace("(", r"\(").replace(")", r"\)")):
        check(kind, mime, 1000)


def test_an_empty_file_and_an_unknown_kind_are_refused() -> None:
    with pytest.raises(MediaRejected, match="empty"):
        check("image", "image/png", 0)
    with pytest.raises(MediaRejected, match="not a kind of WhatsApp media"):
        check("gif", "image/gif", 10)  # type: ignore[arg-type]


def test_captions_stop_at_1024_characters() -> None:
    check_caption("x" * 1024)
    with pytest.raises(MediaRejected, match="the caption is 1,025 characters; WhatsApp allows up to 1,024"):
        check_caption("x" * 1025)


def test_sizes_read_the_way_the_limits_are_written() -> None:
    assert format_size(20 * MB) == "20.0 MB"
    assert format_size(16 * MB, exact=True) == "16 MB"
    assert format_size(120_000) == "120 KB"
    assert format_size(999) == "999 bytes"


def test_the_kind_follows_from_the_type() -> None:
    assert [kind_for(m) for m in ("image/png", "audio/ogg", "video/mp4", "application/pdf")] == [
        "image",
        "audio",
        "video",
        "document",
    ]
