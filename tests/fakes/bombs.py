"""Small files that decode into something huge, built on the spot for the bounded-decoder tests."""

from __future__ import annotations

import struct
import zipfile
import zlib
from io import BytesIO

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def docx_bomb(inflated: int = 400 * 1024 * 1024) -> bytes:
    """A .docx whose ``word/document.xml`` inflates to `inflated` bytes (one paragraph of spaces)."""
    out = BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            member.write(f'<w:document xmlns:w="{W}"><w:body><w:p><w:r><w:t>'.encode())
            block = b" " * (1024 * 1024)
            for _ in range(inflated // len(block)):
                member.write(block)
            member.write(b"</w:t></w:r></w:p></w:body></w:document>")
    return out.getvalue()


def docx(paragraphs: list[str]) -> bytes:
    body = "".join(f"<w:p><w:r><w:t>{p}</w:t></w:r></w:p>" for p in paragraphs)
    out = BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        archive.writestr("word/document.xml", f'<w:document xmlns:w="{W}"><w:body>{body}</w:body></w:document>')
    return out.getvalue()


def silent_opus(seconds: float) -> bytes:
    """`seconds` of silence as a mono OGG/Opus voice note: one encoded 20 ms packet of silence, muxed
    over and over (encoding an hour would take a quarter of a minute)."""
    import av

    out = BytesIO()
    with av.open(out, "w", format="ogg") as sink:
        stream = sink.add_stream("libopus", rate=48_000, layout="mono")
        stream.bit_rate = 6_000
        frame = av.AudioFrame(format="s16", layout="mono", samples=960 * 10)
        frame.planes[0].update(bytes(960 * 10 * 2))
        frame.sample_rate = 48_000
        frame.pts = 0
        packets = [p for p in stream.encode(frame) if p.size]
        silence, time_base = bytes(packets[-1]), packets[-1].time_base
        for index in range(int(seconds * 50)):
            packet = av.Packet(silence)
            packet.stream = stream
            packet.time_base = time_base
            packet.pts = packet.dts = index * 960
            packet.duration = 960
            sink.mux(packet)
    return out.getvalue()


def one_bit_png(width: int, height: int) -> bytes:
    """A black one-bit PNG of `width`×`height`, written row by row (never held as pixels)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes((width + 7) // 8)
    packer = zlib.compressobj(9)
    compressed = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", compressed) + chunk(b"IEND", b"")
