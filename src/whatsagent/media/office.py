"""The text of a Word or PowerPoint file, read within bounds.

The zip directory is counted before it is opened, each XML part is inflated in chunks straight into a
streaming XML parser (expat, which refuses entity-expansion bombs), and reading stops with
`MediaRejected` once `bounds.MAX_INFLATED_BYTES` have come out, so a small file that inflates to
gigabytes costs at most that much work. Call it in a thread: it holds the CPU.
"""

from __future__ import annotations

import re
import zipfile
from io import BytesIO
from xml.parsers import expat

from whatsagent.media import bounds
from whatsagent.media.sniff import DOCX

_CHUNK = 64 * 1024
_SLIDE = re.compile(r"ppt/slides/slide(\d+)\.xml")


def office_text(data: bytes, mime: str) -> str | None:
    """The paragraphs of a ``.docx`` or the slides of a ``.pptx``, one paragraph a line; None when the
    file is not such a document or has no text. Raises `MediaRejected` past a cap."""
    bounds.check_members(data)
    try:
        with zipfile.ZipFile(BytesIO(data)) as archive:
            if mime == DOCX:
                parts = ["word/document.xml"]
            else:
                slides = [(int(m.group(1)), n) for n in archive.namelist() if (m := _SLIDE.fullmatch(n))]
                parts = [name for _, name in sorted(slides)]
            budget = bounds.MAX_INFLATED_BYTES
            lines: list[str] = []
            for part in parts:
                budget = _read_part(archive, part, budget, lines)
                lines.append("")
    except (zipfile.BadZipFile, KeyError, expat.ExpatError, EOFError, ValueError, NotImplementedError):
        return None
    text = "\n".join(lines).strip()
    return text or None


def _read_part(archive: zipfile.ZipFile, part: str, budget: int, lines: list[str]) -> int:
    # expat with callbacks: no tree is built, so memory stays flat whatever the markup holds.
    parser = expat.ParserCreate(namespace_separator="}")
    paragraph: list[str] = []
    in_text = False

    def start(name: str, _attributes: object) -> None:
        nonlocal in_text
        in_text = name.rpartition("}")[2] == "t"

    def end(name: str) -> None:
        nonlocal in_text
        local = name.rpartition("}")[2]
        if local == "t":
            in_text = False
        elif local == "p":
            lines.append("".join(paragraph))
            paragraph.clear()

    def characters(text: str) -> None:
        if in_text:
            paragraph.append(text)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = characters
    with archive.open(part) as member:
        while chunk := member.read(min(_CHUNK, budget + 1)):
            budget -= len(chunk)
            if budget < 0:
                raise bounds.OverCap(
                    f"the document unpacks to more than {bounds.MAX_INFLATED_BYTES // 1_000_000} MB of markup, "
                    "more than is read here",
                    kind="document",
                )
            parser.Parse(chunk, False)
        parser.Parse(b"", True)
    return budget
