"""Real media files made on the spot, for tests: nothing is downloaded, nothing is checked in.

They are made with Pillow, the standard library's `wave` and PyAV directly, never with whatsagent's
own conversions, so a conversion test does not grade its own homework.
"""

from __future__ import annotations

import io
import math
import struct
import wave
import zipfile
from fractions import Fraction

import av
from PIL import Image, ImageDraw


def picture(width: int = 320, height: int = 200, mode: str = "RGB") -> Image.Image:
    """A picture with shapes and a gradient, so encoders have something to compress."""
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for x in range(0, width, 4):
        draw.line([(x, 0), (x, height)], fill=(x * 255 // max(width, 1), 80, 255 - x * 255 // max(width, 1)))
    draw.ellipse([width // 4, height // 4, 3 * width // 4, 3 * height // 4], fill=(250, 220, 40))
    if mode == "RGBA":
        image = image.convert("RGBA")
        image.putalpha(Image.linear_gradient("L").resize((width, height)))
    return image.convert(mode) if mode not in ("RGB", "RGBA") else image


def image_bytes(format: str, width: int = 320, height: int = 200, mode: str = "RGB", **options: object) -> bytes:
    out = io.BytesIO()
    picture(width, height, mode).save(out, format=format, **options)
    return out.getvalue()


def noise_png(width: int, height: int) -> bytes:
    """A PNG of random pixels: incompressible, so a few thousand pixels a side exceed WhatsApp's 5 MB."""
    import random

    rng = random.Random(7)
    image = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def animated_gif(frames: int = 6, size: tuple[int, int] = (96, 64)) -> bytes:
    images = [Image.new("RGB", size, (40 * i % 256, 120, 200 - 20 * i)) for i in range(frames)]
    out = io.BytesIO()
    images[0].save(out, format="GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
    return out.getvalue()


def tone(seconds: float = 2.0, rate: int = 44_100, channels: int = 2, frequency: float = 440.0) -> list[int]:
    """16-bit samples of a sine tone sliding up an octave, interleaved for `channels`."""
    samples = []
    for i in range(int(seconds * rate)):
        t = i / rate
        value = int(12_000 * math.sin(2 * math.pi * frequency * (1 + t / seconds) * t))
        samples.extend([value] * channels)
    return samples


def wav_tone(seconds: float = 2.0, rate: int = 44_100, channels: int = 2) -> bytes:
    """A WAV file (PCM, 16-bit), written with the standard library."""
    out = io.BytesIO()
    with wave.open(out, "wb") as file:
        file.setnchannels(channels)
        file.setsampwidth(2)
        file.setframerate(rate)
        samples = tone(seconds, rate, channels)
        file.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return out.getvalue()


def _encode_audio(codec: str, container: str, rate: int, layout: str, seconds: float, sample_format: str) -> bytes:
    channels = 2 if layout == "stereo" else 1
    samples = tone(seconds, rate, channels)
    out = io.BytesIO()
    with av.open(out, "w", format=container) as sink:
        stream = sink.add_stream(codec, rate=rate, layout=layout)  # type: ignore[call-overload]
        frame_size = 960
        pts = 0
        for start in range(0, len(samples) // channels, frame_size):
            chunk = samples[start * channels : (start + frame_size) * channels]
            frame = av.AudioFrame(format="s16", layout=layout, samples=len(chunk) // channels)
            frame.planes[0].update(struct.pack(f"<{len(chunk)}h", *chunk))
            frame.rate = rate
            frame.pts = pts
            frame.time_base = Fraction(1, rate)
            pts += frame.samples
            resampler = av.AudioResampler(format=sample_format, layout=layout, rate=rate)
            for converted in resampler.resample(frame):
                for packet in stream.encode(converted):
                    sink.mux(packet)
        for packet in stream.encode(None):
            sink.mux(packet)
    return out.getvalue()


def voice_note(seconds: float = 2.0) -> bytes:
    """What WhatsApp sends for a recorded voice note: OGG/Opus, mono, 48 kHz."""
    return _encode_audio("libopus", "ogg", 48_000, "mono", seconds, "s16")


def stereo_opus(seconds: float = 1.0) -> bytes:
    return _encode_audio("libopus", "ogg", 48_000, "stereo", seconds, "s16")


def mp3(seconds: float = 2.0) -> bytes:
    return _encode_audio("libmp3lame", "mp3", 44_100, "mono", seconds, "s16p")


def flac(seconds: float = 1.0) -> bytes:
    return _encode_audio("flac", "flac", 44_100, "mono", seconds, "s16")


def video(
    codec: str = "mpeg4", container: str = "mp4", seconds: float = 1.0, size: tuple[int, int] = (320, 240)
) -> bytes:
    """A short video with a moving square and a tone. ``mpeg4``/``mp4`` is a real MP4 WhatsApp would
    not play (it wants H.264); ``libx264``/``mp4`` is one it would."""
    rate = 15
    out = io.BytesIO()
    options = {"movflags": "frag_keyframe+empty_moov"} if container == "mp4" else {}
    with av.open(out, "w", format=container, options=options) as sink:
        stream = sink.add_stream(codec, rate=rate)  # type: ignore[call-overload]
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        audio = sink.add_stream("aac" if container == "mp4" else "libopus", rate=48_000, layout="mono")  # type: ignore[call-overload]
        for index in range(int(seconds * rate)):
            image = Image.new("RGB", size, (20, 20, 60))
            ImageDraw.Draw(image).rectangle([index * 8, 40, index * 8 + 60, 100], fill=(240, 200, 0))
            frame = av.VideoFrame.from_image(image)
            frame.pts = index
            frame.time_base = Fraction(1, rate)
            for packet in stream.encode(frame):
                sink.mux(packet)
        for packet in stream.encode(None):
            sink.mux(packet)
        samples = tone(seconds, 48_000, 1)
        resampler = av.AudioResampler(format="fltp" if container == "mp4" else "s16", layout="mono", rate=48_000)
        step = 1024
        for start in range(0, len(samples), step):
            chunk = samples[start : start + step]
            frame = av.AudioFrame(format="s16", layout="mono", samples=len(chunk))
            frame.planes[0].update(struct.pack(f"<{len(chunk)}h", *chunk))
            frame.rate = 48_000
            frame.pts = start
            frame.time_base = Fraction(1, 48_000)
            for converted in resampler.resample(frame):
                for packet in audio.encode(converted):
                    sink.mux(packet)
        for packet in audio.encode(None):
            sink.mux(packet)
    return out.getvalue()


def pdf(text: str = "Hello") -> bytes:
    """A minimal one-page PDF."""
    stream = f"BT /F1 24 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def docx(*paragraphs: str) -> bytes:
    """A minimal Word document with `paragraphs`."""
    body = "".join(f"<w:p><w:r><w:t>{p}</w:t></w:r></w:p>" for p in paragraphs)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Override PartName="/word/document.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.'
            'wordprocessingml.document.main+xml"/></Types>',
        )
        archive.writestr(
            "word/document.xml",
            '<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
            f"<w:body>{body}</w:body></w:document>",
        )
    return out.getvalue()
