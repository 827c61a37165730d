"""A long answer becomes several WhatsApp messages, cut where a reader would pause.

WhatsApp takes at most 4,096 characters in a text body and 1,024 in a media caption (Cloud API
reference, messages: text.body and image.caption). It counts characters, so lengths here are Python
`str` lengths: code points, never UTF-16 units or bytes.

`split_message` cuts at the last paragraph break that fits, else the last line break, else the last
sentence end, else the last space; only a single word longer than the whole limit is cut inside. A cut
inside a ```` ``` ```` code block closes the block at the end of that part and reopens it, with its info
string, at the start of the next, so every part shows as code. A hard cut never separates a character
from what is drawn with it: combining accents, emoji modifiers and variation selectors, the members of
a ZWJ sequence (👨‍👩‍👧), the two halves of a flag, a CR LF pair; it backs off to the nearest boundary
before the limit instead.

`chat_bubbles` is the optional chat style: one message per paragraph, as a person types.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from typing import NamedTuple

__all__ = ["CAPTION_LIMIT", "MIN_LIMIT", "TEXT_LIMIT", "chat_bubbles", "split_message"]

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
MIN_LIMIT = 32
"""Below this a part has no room for a reopened code fence, its closing fence and a `(k/n)` marker."""

_FENCE_OPEN = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")
_FENCE_CLOSE = re.compile(r" {0,3}(`{3,}|~{3,})\s*")
_NONSPACE = re.compile(r"\S")
_PARAGRAPH = re.compile(r"\n[^\S\n]*\n")
_BLANK_RUN = re.compile(r"\n(?:[^\S\n]*\n)+")
_LINE = re.compile(r"\n")
_SENTENCE = re.compile(r"[.!?…]+[\"'”’»)\]]*(?=\s)|[。！？]+[\"'”’」』)\]]*")
_WORD = re.compile(r"(?<=\S)[^\S\n]+")
_LIST_ITEM = re.compile(r"[^\S\n]*(?:[-*+•]|\d{1,9}[.)])[^\S\n]")
_HEADING = re.compile(r"(?:\*[^*\n]+\*|#{1,6}[^\S\n][^\n]*)[^\S\n]*")


class _Fence(NamedTuple):
    start: int  # first character of the opening line
    header_end: int  # just past the opening line's text
    close_start: int  # first character of the closing line (len(text) when never closed)
    end: int  # just past the closing fence characters
    header: str  # the opening line, e.g. "```python"
    closer: str  # the fence characters, e.g. "```"


def split_message(text: str, limit: int = TEXT_LIMIT, *, numbered: bool = False) -> list[str]:
    """Split `text` into parts of at most `limit` characters, in order, losing no content.

    A text that already fits comes back as the only part, unchanged; a blank one gives no parts.
    Whitespace at a cut is dropped. With `numbered`, each part of a split answer ends with a line
    `(k/n)`, counted within `limit`.
    """
    _check(limit)
    if not text.strip():
        return []
    if len(text) <= limit:
        return [text]
    if not numbered:
        return _split(text, limit)
    digits = 1
    while True:
        widest = 10**digits - 1
        parts = _split(text, limit - len(_marker(widest, widest)))
        if len(str(len(parts))) <= digits:
            break
        digits = len(str(len(parts)))
    if len(parts) == 1:
        return parts
    return [part + _marker(k, len(parts)) for k, part in enumerate(parts, 1)]


def chat_bubbles(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """One message per paragraph, as a person types in a chat.

    A code block and a list stay in one bubble while they fit within `limit`, and a heading line goes
    with the paragraph after it; a paragraph longer than `limit` is split as `split_message` does.
    """
    _check(limit)
    groups: list[tuple[int, int, str]] = []  # (start, end, kind: text, list or heading)
    for start, end in _paragraphs(text):
        kind = _kind(text[start:end])
        group_kind = groups[-1][2] if groups else "text"
        if kind == "indented":  # a list item's second paragraph, or just indented text
            kind = "list" if group_kind == "list" else "text"
        if groups and (group_kind == "heading" or group_kind == kind == "list"):
            group_start = groups[-1][0]
            if end - group_start <= limit:
                groups[-1] = (group_start, end, kind)
                continue
        groups.append((start, end, kind))
    bubbles: list[str] = []
    for start, end, _ in groups:
        bubbles.extend(split_message(text[start:end], limit))
    return bubbles


def _check(limit: int) -> None:
    if limit < MIN_LIMIT:
        raise ValueError(
            f"limit={limit} is too small to split a message: use at least {MIN_LIMIT} characters "
            f"(WhatsApp allows {TEXT_LIMIT} in a text and {CAPTION_LIMIT} in a caption)"
        )


def _marker(k: int, n: int) -> str:
    return f"\n({k}/{n})"


# --- split_message --------------------------------------------------------------------------------------


def _split(text: str, budget: int) -> list[str]:
    fences = _fences(text, budget)
    levels = _candidates(text, fences)
    parts: list[str] = []
    pos = _skip_blank_lines(text, 0)
    while pos < len(text):
        reopened = next((f for f in fences if f.header_end < pos <= f.close_start), None)
        prefix = reopened.header + "\n" if reopened else ""
        rest = text[pos:].rstrip()
        if not rest:
            break
        if len(prefix) + len(rest) <= budget:
            parts.append(prefix + rest)
            break
        window = budget - len(prefix)
        # Room for a closing fence whenever the cut may fall inside a code block.
        closing = max(
            (len(f.closer) + 1 for f in fences if f.header_end <= pos + window and f.close_start > pos),
            default=0,
        )
        cut = _choose_cut(text, fences, levels, pos, pos + window - closing)
        inside = next((f for f in fences if f.header_end <= cut <= f.close_start), None)
        piece = text[pos:cut].rstrip()
        if _NONSPACE.search(piece):
            parts.append(prefix + piece + ("\n" + inside.closer if inside else ""))
        pos = _next_start(text, cut)
    return parts


def _fences(text: str, budget: int) -> list[_Fence]:
    """The fenced code blocks of `text`, as CommonMark reads them (``` or ~~~, up to 3 spaces in)."""
    fences: list[_Fence] = []
    opened: tuple[int, int, str, str] | None = None
    pos = 0
    for line in text.split("\n"):
        content_end = pos + len(line.rstrip())
        if opened is None:
            m = _FENCE_OPEN.fullmatch(line)
            if m and not (m.group(1)[0] == "`" and "`" in m.group(2)):
                opened = (pos, content_end, line.strip(), m.group(1))
        else:
            m = _FENCE_CLOSE.fullmatch(line)
            if m and m.group(1)[0] == opened[3][0] and len(m.group(1)) >= len(opened[3]):
                fences.append(_Fence(opened[0], opened[1], pos, content_end, opened[2], opened[3]))
                opened = None
        pos += len(line) + 1
    if opened is not None:
        fences.append(_Fence(opened[0], opened[1], len(text), len(text), opened[2], opened[3]))
    # A fence line too long to repeat in every part is treated as text.
    return [f for f in fences if len(f.header) <= budget // 4]


def _candidates(text: str, fences: list[_Fence]) -> list[list[int]]:
    """Cut positions by preference; a cut at c ends a part with text[:c]."""
    spans = [(f.header_end, f.close_start) for f in fences]

    def in_code(i: int) -> bool:
        return any(a <= i <= b for a, b in spans)

    paragraph = {m.start() for m in _PARAGRAPH.finditer(text)}
    for f in fences:  # before a code block and after it are paragraph breaks too
        if f.start > 0:
            paragraph.add(f.start - 1)
        if f.end < len(text):
            paragraph.add(f.end)
    line = [m.start() for m in _LINE.finditer(text)]
    sentence = [m.end() for m in _SENTENCE.finditer(text) if not in_code(m.start())]
    word = [m.start() for m in _WORD.finditer(text)]
    return [sorted(paragraph), line, sentence, word]


def _choose_cut(text: str, fences: list[_Fence], levels: list[list[int]], pos: int, last: int) -> int:
    for positions in levels:
        k = bisect_right(positions, last) - 1
        while k >= 0 and positions[k] > pos:
            if _may_cut(text, fences, pos, positions[k]):
                return positions[k]
            k -= 1
    # One word longer than the limit: cut it, but not inside a character.
    cut = _grapheme_boundary(text, last, pos + 1)
    for f in fences:
        if f.start < cut < f.header_end and f.start > pos:
            return f.start
    return cut


def _may_cut(text: str, fences: list[_Fence], pos: int, cut: int) -> bool:
    if not _NONSPACE.search(text, pos, cut):
        return False
    for f in fences:
        if f.start < cut < f.header_end or f.close_start < cut < f.end:
            return False  # inside a fence line
        if f.header_end <= cut <= f.close_start:
            # Inside a code block: both halves must hold some code, or a part shows an empty block.
            return bool(
                _NONSPACE.search(text, max(pos, f.header_end), cut) and _NONSPACE.search(text, cut, f.close_start)
            )
    return True


def _next_start(text: str, cut: int) -> int:
    """Where the next part starts: past the spaces at the cut and any blank lines, keeping indentation."""
    i = cut
    while i < len(text) and text[i] != "\n" and text[i].isspace():
        i += 1
    if i < len(text) and text[i] == "\n":
        return _skip_blank_lines(text, i + 1)
    return i


def _skip_blank_lines(text: str, i: int) -> int:
    line_start = i
    while i < len(text):
        if text[i] == "\n":
            line_start = i + 1
        elif not text[i].isspace():
            return line_start
        i += 1
    return len(text)


def _grapheme_boundary(text: str, cut: int, lowest: int) -> int:
    """The nearest position at or before `cut` that does not split a user-perceived character."""
    for i in range(cut, max(lowest, cut - 64) - 1, -1):
        if _is_boundary(text, i):
            return i
    return cut  # no boundary within reach (thousands of combining marks): cut anyway


def _is_boundary(text: str, i: int) -> bool:
    if i <= 0 or i >= len(text):
        return True
    before, after = text[i - 1], text[i]
    if before == "\r" and after == "\n":
        return False
    if before == "\u200d" or _extends(after):
        return False
    if _regional(before) and _regional(after):
        run = 0
        while i - 1 - run >= 0 and _regional(text[i - 1 - run]):
            run += 1
        return run % 2 == 0  # flags are pairs of regional indicators
    return True


def _extends(ch: str) -> bool:
    """A code point drawn as part of the character before it."""
    o = ord(ch)
    return (
        o == 0x200D  # ZERO WIDTH JOINER
        or 0xFE00 <= o <= 0xFE0F  # variation selectors
        or 0x1F3FB <= o <= 0x1F3FF  # skin-tone modifiers
        or 0xE0020 <= o <= 0xE007F  # tag characters (subdivision flags)
        or 0xE0100 <= o <= 0xE01EF  # variation selectors supplement
        or unicodedata.category(ch) in ("Mn", "Me", "Mc")  # combining marks, keycap enclosure
    )


def _regional(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


# --- chat_bubbles ---------------------------------------------------------------------------------------


def _paragraphs(text: str) -> list[tuple[int, int]]:
    """Spans of the paragraphs of `text`; a blank line inside a code block does not end one."""
    fences = _fences(text, 4 * len(text) + 4)
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _BLANK_RUN.finditer(text):
        if any(f.header_end <= m.start() < f.close_start for f in fences):
            continue
        spans.append((start, m.start()))
        start = m.end()
    spans.append((start, len(text)))
    paragraphs = []
    for a, b in spans:
        a = _skip_blank_lines(text, a)
        b = a + len(text[a:b].rstrip())
        if a < b:
            paragraphs.append((a, b))
    return paragraphs


def _kind(paragraph: str) -> str:
    if _LIST_ITEM.match(paragraph):
        return "list"
    if paragraph[:1].isspace():
        return "indented"
    if _HEADING.fullmatch(paragraph):
        return "heading"
    return "text"
