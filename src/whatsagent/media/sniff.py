"""What a file is, from its first bytes rather than from what a sender or a model declared.

WhatsApp refuses media whose content does not match its declared type (its media upload error: "MIME/
extension mismatch is a common cause"), and models and tools routinely label a WebP as ``image/png`` or a WAV as
``audio/mpeg``. So every medium is sniffed here before it is checked, converted or sent.
"""

from __future__ import annotations

import zipfile
from io import BytesIO

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
DOC = "application/msword"
XLS = "application/vnd.ms-excel"
PPT = "application/vnd.ms-powerpoint"

_MAX_ZIP_ENTRIES = 5_000  # bounds.MAX_ARCHIVE_MEMBERS (bounds imports limits, which imports this module)

_OLE_TYPES = frozenset({DOC, XLS, PPT})
_OLE_MAGIC = bytes.fromhex("d0cf11e0a1b11ae1")

# ISO base media (MP4 family) major brands: `ftyp` box at offset 4.
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}
_AUDIO_MP4_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A "}

# Aliases a sender may use for the same format; the canonical name is what WhatsApp and the model
# providers list.
_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    "audio/mp3": "audio/mpeg",
    "audio/x-mp3": "audio/mpeg",
    "audio/mpeg3": "audio/mpeg",
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/vnd.wave": "audio/wav",
    "audio/x-aac": "audio/aac",
    "audio/x-m4a": "audio/mp4",
    "audio/m4a": "audio/mp4",
    "audio/opus": "audio/ogg",
    "audio/x-flac": "audio/flac",
    "audio/x-aiff": "audio/aiff",
    "video/3gp": "video/3gpp",
    "image/heif": "image/heic",
    "text/x-markdown": "text/markdown",
}


def normalize_mime(mime_type: str | None) -> str | None:
    """`mime_type` lower-cased, without parameters (``audio/ogg; codecs=opus`` → ``audio/ogg``), and
    with common aliases folded (``image/jpg`` → ``image/jpeg``)."""
    if not mime_type:
        return None
    bare = mime_type.split(";", 1)[0].strip().lower()
    return _ALIASES.get(bare, bare) or None


def sniff_mime(data: bytes) -> str | None:
    """The MIME type `data` really has, judged by its magic numbers; None when the bytes say nothing
    recognisable (plain text is reported as ``text/plain`` only when it decodes as UTF-8).

    Containers that hold several kinds are reported by container: any MP4 is ``video/mp4`` unless its
    brand says audio, any Ogg is ``audio/ogg`` unless it carries Theora; `resolve_mime` settles those
    with the declared type.
    """
    head = data[:64]
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and len(head) >= 12:
        form = head[8:12]
        if form == b"WEBP":
            return "image/webp"
        if form == b"WAVE":
            return "audio/wav"
        if form == b"AVI ":
            return "video/x-msvideo"
    if head.startswith(b"BM") and len(head) >= 14 and head[6:10] == b"\x00\x00\x00\x00":
        return "image/bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        compatible = {head[i : i + 4] for i in range(16, min(len(head), 40), 4)}
        if brand in _HEIF_BRANDS or (brand not in _AVIF_BRANDS and compatible & {b"heic", b"heix"}):
            return "image/heic"
        if brand in _AVIF_BRANDS:
            return "image/avif"
        if brand in _AUDIO_MP4_BRANDS:
            return "audio/mp4"
        if brand.startswith(b"3g"):
            return "video/3gpp"
        if brand == b"qt  ":
            return "video/quicktime"
        return "video/mp4"
    if head.startswith(b"OggS"):
        # The first page holds the codec's identification header.
        first_page = data[:512]
        if b"\x80theora" in first_page:
            return "video/ogg"
        return "audio/ogg"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm" if b"webm" in data[:64] else "video/x-matroska"
    if head.startswith(b"#!AMR-WB\n"):
        return "audio/amr-wb"
    if head.startswith(b"#!AMR\n"):
        return "audio/amr"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "audio/aiff"
    if head.startswith(b"ID3"):
        return "audio/mpeg"
    if len(head) >= 2 and head[0] == 0xFF:
        # ADTS (AAC) has layer bits 00; MPEG audio frames (MP3) have a non-zero layer.
        if head[1] & 0xF6 == 0xF0:
            return "audio/aac"
        if head[1] & 0xE0 == 0xE0 and head[1] & 0x06:
            return "audio/mpeg"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"PK\x03\x04"):
        return _sniff_zip(data)
    if head.startswith(_OLE_MAGIC):
        return "application/x-ole-storage"
    if head.startswith(b"{\\rtf"):
        return "application/rtf"
    if _looks_like_text(data):
        return "text/plain"
    return None


def resolve_mime(data: bytes, declared: str | None = None) -> str:
    """The MIME type to treat `data` as: the sniffed one, refined by `declared` where sniffing cannot
    tell (an MP4 or Ogg holding only audio, a legacy Office file, a CSV or Markdown file that is text).

    Falls back to `declared`, then to ``application/octet-stream``.
    """
    sniffed = sniff_mime(data)
    declared = normalize_mime(declared)
    if sniffed is None:
        return declared or "application/octet-stream"
    if declared is None:
        return sniffed
    if sniffed == "video/mp4" and declared in ("audio/mp4", "audio/aac", "video/quicktime", "video/3gpp"):
        return "audio/mp4" if declared.startswith("audio/") else declared
    if sniffed == "video/3gpp" and declared.startswith("audio/"):
        return "audio/3gpp"
    if sniffed == "video/webm" and declared == "audio/webm":
        return declared
    if sniffed == "audio/ogg" and declared in ("video/ogg", "application/ogg"):
        return "audio/ogg"
    if sniffed == "application/x-ole-storage" and declared in _OLE_TYPES:
        return declared
    if sniffed == "application/zip" and declared in (DOCX, XLSX, PPTX, "application/epub+zip"):
        return declared
    if sniffed == "text/plain" and _is_text_type(declared):
        return declared
    return sniffed


def extension_for(mime_type: str) -> str:
    """The file extension (with its dot) WhatsApp and most software expect for `mime_type`."""
    return _EXTENSIONS.get(normalize_mime(mime_type) or "", ".bin")


def _sniff_zip(data: bytes) -> str:
    # Office Open XML files are zips whose member names say what they are. The names sit in the local
    # headers near the start, but reading the directory is cheap and exact (when it is of sane size:
    # a directory of a million entries is an attack, not an Office file).
    if data.count(b"PK\x01\x02") > _MAX_ZIP_ENTRIES:
        return "application/zip"
    try:
        with zipfile.ZipFile(BytesIO(data)) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        names = []
    for prefix, mime in (("word/", DOCX), ("xl/", XLSX), ("ppt/", PPTX)):
        if any(name.startswith(prefix) for name in names):
            return mime
    if "mimetype" in names and b"application/epub+zip" in data[:100]:
        return "application/epub+zip"
    return "application/zip"


def _looks_like_text(data: bytes) -> bool:
    sample = data[:4096]
    if not sample or b"\x00" in sample:
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as error:
        # A multi-byte character cut at the sample's end is still text.
        return error.start >= len(sample) - 3
    return True


def _is_text_type(mime_type: str) -> bool:
    return mime_type.startswith("text/") or mime_type in (
        "application/json",
        "application/xml",
        "application/yaml",
        "application/x-yaml",
        "application/toml",
    )


_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "image/bmp": ".bmp",
    "image/tiff": ".tiff",
    "image/heic": ".heic",
    "image/avif": ".avif",
    "audio/ogg": ".ogg",
    "audio/mpeg": ".mp3",
    "audio/mp4": ".m4a",
    "audio/aac": ".aac",
    "audio/amr": ".amr",
    "audio/wav": ".wav",
    "audio/flac": ".flac",
    "audio/aiff": ".aiff",
    "video/mp4": ".mp4",
    "video/3gpp": ".3gp",
    "video/quicktime": ".mov",
    "video/webm": ".webm",
    "application/pdf": ".pdf",
    "text/plain": ".txt",
    "text/csv": ".csv",
    "text/markdown": ".md",
    "application/json": ".json",
    DOC: ".doc",
    DOCX: ".docx",
    XLS: ".xls",
    XLSX: ".xlsx",
    PPT: ".ppt",
    PPTX: ".pptx",
    "application/zip": ".zip",
}
