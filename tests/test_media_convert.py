"""What a model or a tool produced becomes something WhatsApp sends, or a reason it cannot."""

from __future__ import annotations

import io

import av
import pytest
from PIL import Image

from fakes import media_files
from whatsagent.media.convert import prepare_outbound, probe, to_mp3, to_png, to_voice_note, to_wav
from whatsagent.media.limits import MB, MediaRejected


def open_image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def audio_stream(data: bytes) -> tuple[str, str, int, int]:
    """(container, codec, channels, sample rate) of the first audio stream, as PyAV reads it."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        return container.format.name, stream.codec_context.name, stream.codec_context.channels, stream.rate


# --- images --------------------------------------------------------------------------------------


async def test_a_webp_becomes_a_png_of_the_same_size() -> None:
    webp = media_files.image_bytes("WEBP", 300, 180, mode="RGBA")
    png = await to_png(webp)
    image = open_image(png)
    assert (image.format, image.size, image.mode) == ("PNG", (300, 180), "RGBA")

    prepared = await prepare_outbound(webp, "image/webp")
    assert (prepared.mime_type, prepared.kind) == ("image/png", "image")
    assert open_image(prepared.data).size == (300, 180)


@pytest.mark.parametrize("format", ["GIF", "BMP", "TIFF"])
async def test_other_image_formats_are_sent_as_png(format) -> None:
    prepared = await prepare_outbound(media_files.image_bytes(format, 120, 90), None)
    image = open_image(prepared.data)
    assert (prepared.mime_type, image.format, image.size) == ("image/png", "PNG", (120, 90))


async def test_an_animated_gif_sent_as_an_image_keeps_its_first_frame() -> None:
    prepared = await prepare_outbound(media_files.animated_gif(), "image/gif")
    assert prepared.mime_type == "image/png"
    assert open_image(prepared.data).size == (96, 64)


async def test_a_jpeg_within_limits_is_sent_untouched_even_if_mislabelled() -> None:
    jpeg = media_files.image_bytes("JPEG")
    prepared = await prepare_outbound(jpeg, "image/png")
    assert prepared == (jpeg, "image/jpeg", "image")


async def test_a_png_that_is_not_8_bit_rgb_is_reencoded() -> None:
    grey = media_files.image_bytes("PNG", mode="L")
    prepared = await prepare_outbound(grey, "image/png")
    assert open_image(prepared.data).mode == "RGB"


async def test_an_image_over_5_mb_is_shrunk_until_it_fits() -> None:
    noisy = media_files.noise_png(1600, 1400)
    assert len(noisy) > 5 * MB
    prepared = await prepare_outbound(noisy, "image/png")
    assert prepared.mime_type == "image/jpeg"
    assert len(prepared.data) <= 5 * MB
    assert open_image(prepared.data).size[0] <= 1600


async def test_any_image_can_become_a_512_pixel_webp_sticker() -> None:
    prepared = await prepare_outbound(media_files.image_bytes("PNG", 400, 200), "image/png", "sticker")
    image = open_image(prepared.data)
    assert (prepared.mime_type, prepared.kind, image.format, image.size) == (
        "image/webp",
        "sticker",
        "WEBP",
        (512, 512),
    )
    assert len(prepared.data) <= 100_000


async def test_an_unreadable_image_is_refused_with_the_reason() -> None:
    with pytest.raises(MediaRejected, match="could not be read"):
        await prepare_outbound(b"RIFF\x10\x00\x00\x00WEBPVP8 garbage", "image/webp")


# --- audio ---------------------------------------------------------------------------------------


async def test_a_wav_becomes_a_mono_ogg_opus_voice_note() -> None:
    wav = media_files.wav_tone(2.0, channels=2)
    prepared = await prepare_outbound(wav, "audio/wav")

    assert (prepared.mime_type, prepared.kind) == ("audio/ogg", "audio")
    assert prepared.data[:4] == b"OggS"
    assert audio_stream(prepared.data) == ("ogg", "opus", 1, 48_000)
    assert (await probe(prepared.data)).duration == pytest.approx(2.0, abs=0.05)
    assert audio_stream(await to_voice_note(wav)) == ("ogg", "opus", 1, 48_000)


async def test_audio_whatsapp_plays_is_sent_as_it_is() -> None:
    for data, mime in ((media_files.mp3(0.5), "audio/mpeg"), (media_files.voice_note(0.5), "audio/ogg")):
        assert await prepare_outbound(data, mime) == (data, mime, "audio")


async def test_stereo_opus_and_flac_are_reencoded_as_mono_opus() -> None:
    for data in (media_files.stereo_opus(), media_files.flac()):
        prepared = await prepare_outbound(data, None)
        assert audio_stream(prepared.data)[1:3] == ("opus", 1)


async def test_an_mp3_can_be_asked_for_as_a_voice_note() -> None:
    prepared = await prepare_outbound(media_files.mp3(0.5), "audio/mpeg", voice=True)
    assert audio_stream(prepared.data)[:3] == ("ogg", "opus", 1)


async def test_an_inbound_voice_note_becomes_wav_or_mp3_for_a_model() -> None:
    voice = media_files.voice_note(1.5)
    wav = await to_wav(voice)
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"
    assert audio_stream(wav) == ("wav", "pcm_s16le", 1, 16_000)
    assert len(wav) == pytest.approx(44 + 1.5 * 16_000 * 2, rel=0.02)

    mp3 = await to_mp3(voice)
    assert audio_stream(mp3)[:3] == ("mp3", "mp3float", 1)


async def test_audio_that_cannot_be_decoded_is_refused() -> None:
    with pytest.raises(MediaRejected):
        await prepare_outbound(b"OggS" + b"\x00" * 200, "audio/ogg")


# --- video and documents -----------------------------------------------------------------------------


async def test_a_20_mb_video_is_refused_with_a_clear_reason() -> None:
    h264 = media_files.video("libx264", seconds=0.2)
    padded = h264 + b"\x00" * (20 * MB - len(h264))
    with pytest.raises(MediaRejected) as caught:
        await prepare_outbound(padded, "video/mp4")
    assert str(caught.value) == "video is 20.0 MB; WhatsApp accepts up to 16 MB"


async def test_an_h264_mp4_is_sent_as_it_is() -> None:
    h264 = media_files.video("libx264", seconds=0.5)
    assert await prepare_outbound(h264, "video/mp4") == (h264, "video/mp4", "video")


@pytest.mark.parametrize(("codec", "container"), [("mpeg4", "mp4"), ("libvpx", "webm")])
async def test_video_whatsapp_would_not_play_is_transcoded_to_h264_mp4(codec, container) -> None:
    prepared = await prepare_outbound(media_files.video(codec, container, seconds=1.0), None)
    assert (prepared.mime_type, prepared.kind) == ("video/mp4", "video")
    found = await probe(prepared.data)
    assert (found.video_codec, found.audio_codec) == ("h264", "aac")
    assert found.duration == pytest.approx(1.0, abs=0.2)
    # faststart: the index (moov) comes before the media data (mdat).
    assert prepared.data.index(b"moov") < prepared.data.index(b"mdat")


async def test_an_animated_gif_can_go_as_a_video() -> None:
    prepared = await prepare_outbound(media_files.animated_gif(), "image/gif", "video")
    assert (await probe(prepared.data)).video_codec == "h264"


async def test_documents_are_checked_and_text_goes_as_plain_text() -> None:
    pdf = media_files.pdf()
    assert await prepare_outbound(pdf, "application/octet-stream") == (pdf, "application/pdf", "document")
    csv = b"name,age\nAda,36\n"
    assert await prepare_outbound(csv, "text/csv", "document") == (csv, "text/plain", "document")
    with pytest.raises(MediaRejected, match="a document must be PDF"):
        await prepare_outbound(b"\x00\x01binary\x02", "application/x-thing")


async def test_asking_for_the_wrong_kind_says_what_the_file_is() -> None:
    with pytest.raises(MediaRejected, match="an image was expected, but this file is application/pdf"):
        await prepare_outbound(media_files.pdf(), "image/png", "image")


@pytest.mark.parametrize(
    ("data", "declared", "kind"),
    [
        (b"RIFF\x10\x00\x00\x00WEBPVP8 garbage", "image/webp", "sticker"),
        (b"\x00\x00\x00\x18ftypisom" + b"\x00" * 64, "video/mp4", None),
        (b"\x1a\x45\xdf\xa3" + b"\x00" * 64, "video/webm", None),
        (b"ID3" + b"\x00" * 64, "audio/mpeg", "audio"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image/png", None),
    ],
)
async def test_broken_files_are_refused_as_media_rejected_never_another_error(data, declared, kind) -> None:
    with pytest.raises(MediaRejected):
        await prepare_outbound(data, declared, kind, voice=kind == "audio")
