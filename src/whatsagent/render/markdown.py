"""Markdown from the model becomes WhatsApp formatting.

Models answer in Markdown; WhatsApp shows `**bold**` and `# Heading` as raw symbols. `to_whatsapp`
parses the Markdown with markdown-it-py (CommonMark plus tables and strikethrough) and writes each node
the way WhatsApp formats it: `*bold*`, `_italic_`, `~strike~`, `` `code` ``, ```` ``` ```` blocks,
`- ` and `1. ` lists, `> ` quotes.

WhatsApp's own rules, which decide the ambiguous cases:

- Formatting never spans a line break, so every line is formatted on its own: a bold phrase that wraps
  onto the next line is closed at the end of the first line and reopened on the second.
- A delimiter only counts at a word boundary: the opening one may not follow a letter or digit and must
  be followed by a non-space; the closing one must follow a non-space and may not be followed by a
  letter or digit. So whitespace just inside an emphasis is moved outside it, and empty emphasis is
  dropped.
- Emphasis with a letter or digit on exactly one side (`**bold**s`) cannot be shown: its text is kept and
  its formatting dropped. Emphasis with a letter or digit on both sides (`2*3*4`, `a*b*c`) is almost
  always arithmetic or an identifier, so its Markdown delimiters are kept as typed; WhatsApp does not
  format them there.
- Nested bold and italic become `*_x_*`; the same style nested in itself is applied once.
- A literal `*`, `_`, `~` or backtick in the text (an escaped one, or one Markdown did not pair) stays as
  it is unless WhatsApp would pair it with another one on the same line and format the text between;
  then an invisible WORD JOINER (U+2060) goes on its outer side, so it no longer sits at a word
  boundary. Unpaired ones such as `2*3` or `snake_case_name` are left alone.

Code blocks are written as ```` ``` ```` blocks, flush left and untouched, without the fence's info
string (WhatsApp would show it as the first line of code). Links are `text (url)`, or just the text when
it already is the url; images are `alt (url)`; table rows become `*Header:* value · Header: value`
lines; a horizontal rule is a line of `─`; HTML is passed as text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

from markdown_it import MarkdownIt
from markdown_it.token import Token

__all__ = ["italic_verbatim", "to_whatsapp"]

BULLET = "- "
RULE = "─" * 10
CELL_SEPARATOR = " · "
WORD_JOINER = "\u2060"

_BOLD = ("*", "**")
_ITALIC = ("_", "*")
_STRIKE = ("~", "~~")
_STYLE_OF = {"strong_open": _BOLD, "em_open": _ITALIC, "s_open": _STRIKE}
_CLOSERS = {"strong_close", "em_close", "s_close"}

# Piece kinds when a line is assembled: literal text, our own delimiters, text WhatsApp must see as is.
_LITERAL, _OURS, _OPAQUE = 0, 1, 2
_DELIMITERS = "*_~`"
_URL = re.compile(r"(?:[a-zA-Z][a-zA-Z0-9+.-]*://|www\.|mailto:)[^\s<>]+")


def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    # markdown-it percent-encodes and punycodes link targets for HTML; a chat reader wants the url as
    # the model wrote it (https://münchen.de, not https://xn--mnchen-3ya.de).
    md.normalizeLink = lambda url: url  # type: ignore[method-assign]
    return md


_MD = _markdown()


class _Run(NamedTuple):
    """A stretch of one line's text and the styles around it, outermost first."""

    text: str
    styles: tuple[tuple[str, str], ...]  # (WhatsApp delimiter, Markdown markup as typed)
    opaque: bool = False  # inline code: shown exactly as is


class _Line(NamedTuple):
    text: str
    verbatim: bool = False  # a code block line: never indented, prefixed or stripped


# One line with nothing Markdown (or WhatsApp) would read as markup: it renders as itself. Most chat
# answers are like this, and skipping the parser saves ~100 µs each.
_PLAIN_LINE = re.compile(r"[^\s*_~`#>\[\]|<&\\!+\-=0-9][^*_~`#>\[\]|<&\\\n\r]*")


def to_whatsapp(markdown: str) -> str:
    """Render a model's Markdown answer as WhatsApp-formatted text."""
    if _PLAIN_LINE.fullmatch(markdown):
        return markdown.rstrip()
    tokens = _MD.parse(markdown)
    lines = _join_blocks(_blocks(tokens, 0, len(tokens)))
    return "\n".join(line.text if line.verbatim else line.text.rstrip() for line in lines).rstrip()


# --- blocks -------------------------------------------------------------------------------------------


def _blocks(tokens: Sequence[Token], lo: int, hi: int) -> list[list[_Line]]:
    blocks: list[list[_Line]] = []
    i = lo
    while i < hi:
        token = tokens[i]
        kind = token.type
        if kind == "paragraph_open":
            blocks.append(_inline_lines(tokens[i + 1]))
            i += 3
        elif kind == "heading_open":
            blocks.append(_inline_lines(tokens[i + 1], style=_BOLD))
            i += 3
        elif kind in ("fence", "code_block"):
            code = token.content.rstrip("\n")
            if code.strip():
                blocks.append([_Line("```", True), *(_Line(c, True) for c in code.split("\n")), _Line("```", True)])
            i += 1
        elif kind == "hr":
            blocks.append([_Line(RULE)])
            i += 1
        elif kind == "html_block":
            html = token.content.rstrip("\n")
            blocks.append([_render_line([_Run(line, ())]) for line in html.split("\n")])
            i += 1
        elif kind in ("bullet_list_open", "ordered_list_open"):
            end = _closing(tokens, i)
            blocks.append(_list(tokens, i, end))
            i = end + 1
        elif kind == "blockquote_open":
            end = _closing(tokens, i)
            blocks.append(_quote(_join_blocks(_blocks(tokens, i + 1, end))))
            i = end + 1
        elif kind == "table_open":
            end = _closing(tokens, i)
            blocks.append(_table(tokens, i, end))
            i = end + 1
        else:
            i += 1
    return [block for block in blocks if any(line.text for line in block)]


def _closing(tokens: Sequence[Token], start: int) -> int:
    depth = 0
    for i in range(start, len(tokens)):
        depth += tokens[i].nesting
        if depth == 0:
            return i
    return len(tokens) - 1


def _join_blocks(blocks: list[list[_Line]], gap: bool = True) -> list[_Line]:
    lines: list[_Line] = []
    for block in blocks:
        if lines and gap:
            lines.append(_Line(""))
        lines.extend(block)
    return lines


def _list(tokens: Sequence[Token], start: int, end: int) -> list[_Line]:
    opening = tokens[start]
    ordered = opening.type == "ordered_list_open"
    number = int(opening.attrs.get("start", 1) or 1) if ordered else 0
    item_level = opening.level + 1
    loose = any(t.type == "paragraph_open" and t.level == item_level + 1 and not t.hidden for t in tokens[start:end])
    lines: list[_Line] = []
    i = start + 1
    while i < end:
        if tokens[i].type != "list_item_open":
            i += 1
            continue
        item_end = _closing(tokens, i)
        marker = f"{number}{opening.markup} " if ordered else BULLET
        number += 1
        if lines and loose:
            lines.append(_Line(""))
        lines.extend(_item(_join_blocks(_blocks(tokens, i + 1, item_end), gap=loose), marker))
        i = item_end + 1
    return lines


def _item(content: list[_Line], marker: str) -> list[_Line]:
    if not content or content[0].verbatim:
        head = [_Line(marker.rstrip())]
    else:
        head = [_Line(marker + content[0].text)]
        content = content[1:]
    indent = " " * len(marker)
    return head + [line if line.verbatim or not line.text else _Line(indent + line.text) for line in content]


def _quote(content: list[_Line]) -> list[_Line]:
    return [line if line.verbatim else _Line("> " + line.text if line.text else ">") for line in content]


def _table(tokens: Sequence[Token], start: int, end: int) -> list[_Line]:
    rows: list[list[list[_Run]]] = []
    for token in tokens[start:end]:
        if token.type == "tr_open":
            rows.append([])
        elif token.type == "inline" and rows:
            rows[-1].append(_inline_runs(token.children or []))
    if not rows:
        return []
    header, body = rows[0], rows[1:]  # markdown-it always emits the header row first
    if not body:
        return [_render_line(_cells_line(header, bold=True))]
    return [_render_line(_row_line(header, cells)) for cells in body]


def _plain(runs: list[_Run]) -> str:
    return "".join(run.text for run in runs)


def _cells_line(cells: list[list[_Run]], bold: bool) -> list[_Run]:
    runs: list[_Run] = []
    for cell in cells:
        if not _plain(cell).strip():
            continue
        if runs:
            runs.append(_Run(CELL_SEPARATOR, ()))
        runs.extend(_styled(cell, _BOLD) if bold else cell)
    return runs


def _row_line(header: list[list[_Run]], cells: list[list[_Run]]) -> list[_Run]:
    runs: list[_Run] = []
    for column, cell in enumerate(cells):
        if not _plain(cell).strip():
            continue
        if runs:
            runs.append(_Run(CELL_SEPARATOR, ()))
        title = header[column] if column < len(header) else []
        if _plain(title).strip():
            label = [*title, _Run(":", ())]
            runs.extend(_styled(label, _BOLD) if column == 0 else label)
            runs.append(_Run(" ", ()))
        runs.extend(cell)
    return runs


# --- inline -------------------------------------------------------------------------------------------


def _inline_lines(token: Token, style: tuple[str, str] | None = None) -> list[_Line]:
    runs = _inline_runs(token.children or [])
    if style is not None:
        runs = _styled(runs, style)
    lines: list[list[_Run]] = [[]]
    for run in runs:
        if "\n" not in run.text:
            lines[-1].append(run)
            continue
        first, *rest = run.text.split("\n")
        if first:
            lines[-1].append(run._replace(text=first))
        for text in rest:
            lines.append([run._replace(text=text)] if text else [])
    return [_render_line(line) for line in lines]


def _styled(runs: list[_Run], style: tuple[str, str]) -> list[_Run]:
    return [run._replace(styles=(style, *(s for s in run.styles if s[0] != style[0]))) for run in runs]


def _inline_runs(children: Sequence[Token]) -> list[_Run]:
    runs: list[_Run] = []
    stack: list[tuple[str, str] | None] = []
    styles: tuple[tuple[str, str], ...] = ()
    links: list[tuple[Token, int]] = []
    for token in children:
        kind = token.type
        if kind in _STYLE_OF:
            delimiter, _ = _STYLE_OF[kind]
            style = (delimiter, token.markup)
            # The same style nested in itself is applied once.
            stack.append(None if any(s[0] == delimiter for s in styles) else style)
            styles = tuple(s for s in stack if s is not None)
        elif kind in _CLOSERS:
            if stack:
                stack.pop()
            styles = tuple(s for s in stack if s is not None)
        elif kind in ("softbreak", "hardbreak"):
            runs.append(_Run("\n", ()))
        elif kind == "code_inline":
            runs.append(_Run(_inline_code(token.content), styles, opaque=True))
        elif kind == "link_open":
            links.append((token, len(runs)))
        elif kind == "link_close":
            if links:
                link, first = links.pop()
                href = str(link.attrs.get("href", ""))
                if link.markup != "autolink" and not _names_itself(_plain(runs[first:]), href):
                    runs.append(_Run(f" ({href})" if runs[first:] else href, styles))
        elif kind == "image":
            alt = "".join(c.content for c in token.children or [] if c.type in ("text", "code_inline"))
            src = str(token.attrs.get("src", ""))
            runs.append(_Run(f"{alt} ({src})" if alt.strip() else src, styles))
        elif token.content:  # text, html_inline and anything else that carries text
            runs.append(_Run(token.content, styles))
    return runs


def _inline_code(code: str) -> str:
    if "`" not in code:
        return f"`{code}`"
    if "```" not in code:
        return f"```{code}```"
    return code


def _names_itself(text: str, href: str) -> bool:
    """True when a link's text already is its url, so `text (url)` would say it twice."""
    text = text.strip().rstrip("/")
    href = href.rstrip("/")
    if not text:
        return False
    bare = href.split("://", 1)[1] if "://" in href else href
    return text in (href, bare) or href in (f"mailto:{text}", f"tel:{text}")


# --- one line: delimiters WhatsApp will read as we mean them ---------------------------------------------


def italic_verbatim(text: str) -> str:
    """`text` exactly as written, each line in WhatsApp italics (for the model's reasoning): `*`, `_`,
    `~` and backticks in it are kept, with a WORD JOINER where WhatsApp would otherwise pair them, so
    ``6*7`` and ``my_helper_fn`` read as typed."""
    lines = []
    for line in text.strip().splitlines():
        line = line.strip()
        lines.append(_neutralize([("_", _OURS), (line, _LITERAL), ("_", _OURS)]) if line else "")
    return "\n".join(lines)


def _render_line(runs: list[_Run]) -> _Line:
    pieces: list[tuple[str, int]] = []
    if runs:
        plain = "".join(run.text for run in runs)
        starts = [0]
        for run in runs:
            starts.append(starts[-1] + len(run.text))
        _emit(runs, 0, len(runs), 0, plain, starts, pieces)
    return _Line(_neutralize(pieces))


def _emit(
    runs: list[_Run],
    lo: int,
    hi: int,
    depth: int,
    plain: str,
    starts: list[int],
    out: list[tuple[str, int]],
) -> None:
    i = lo
    while i < hi:
        run = runs[i]
        if len(run.styles) <= depth:
            out.extend(_code_pieces(run.text) if run.opaque else [(run.text, _LITERAL)])
            i += 1
            continue
        delimiter, markup = run.styles[depth]
        j = i + 1
        while j < hi and len(runs[j].styles) > depth and runs[j].styles[depth][0] == delimiter:
            j += 1
        span = plain[starts[i] : starts[j]]
        core = span.strip()
        inner: list[tuple[str, int]] = []
        _emit(runs, i, j, depth + 1, plain, starts, inner)
        if not core:  # empty emphasis: nothing to format
            out.extend(inner)
            i = j
            continue
        core_start = starts[i] + len(span) - len(span.lstrip())
        core_end = core_start + len(core)
        word_before = core_start > 0 and plain[core_start - 1].isalnum()
        word_after = core_end < len(plain) and plain[core_end].isalnum()
        if word_before and word_after:  # intraword: 2*3*4, a*b*c; kept as the model typed it
            out.append((markup, _LITERAL))
            out.extend(inner)
            out.append((markup, _LITERAL))
        elif word_before or word_after:  # WhatsApp would show the symbols: keep the text only
            out.extend(inner)
        else:
            lead, body, trail = _peel_whitespace(inner)
            out.extend(lead)
            out.append((delimiter, _OURS))
            out.extend(body)
            out.append((delimiter, _OURS))
            out.extend(trail)
        i = j


def _code_pieces(code: str) -> list[tuple[str, int]]:
    """Inline code as our delimiters around content that WhatsApp must show as is."""
    for fence in ("```", "`"):
        if len(code) > 2 * len(fence) and code.startswith(fence) and code.endswith(fence):
            return [(fence, _OURS), (code[len(fence) : -len(fence)], _OPAQUE), (fence, _OURS)]
    return [(code, _OPAQUE)]


def _peel_whitespace(
    pieces: list[tuple[str, int]],
) -> tuple[list[tuple[str, int]], list[tuple[str, int]], list[tuple[str, int]]]:
    text = "".join(p[0] for p in pieces)
    lead_len = len(text) - len(text.lstrip())
    trail_len = len(text) - len(text.rstrip())
    lead = [(text[:lead_len], _LITERAL)] if lead_len else []
    trail = [(text[len(text) - trail_len :], _LITERAL)] if trail_len else []
    body: list[tuple[str, int]] = []
    position = 0
    end = len(text) - trail_len
    for piece, kind in pieces:
        a, b = max(position, lead_len), min(position + len(piece), end)
        if a < b:
            body.append((piece[a - position : b - position], kind))
        position += len(piece)
    return lead, body, trail


def _can_open(s: str, i: int) -> bool:
    return i + 1 < len(s) and not s[i + 1].isspace() and (i == 0 or not s[i - 1].isalnum())


def _can_close(s: str, i: int) -> bool:
    return i > 0 and not s[i - 1].isspace() and (i + 1 == len(s) or not s[i + 1].isalnum())


def _neutralize(pieces: list[tuple[str, int]]) -> str:
    """Join a line's pieces so that only our delimiters pair up in WhatsApp.

    WhatsApp pairs an opening delimiter with the next closing one of the same kind on the line. Where
    that pairing would use a literal character, a WORD JOINER on the literal's outer side takes it off
    the word boundary.
    """
    s = "".join(p[0] for p in pieces)
    if not any(c in s for c in _DELIMITERS):
        return s
    kinds: list[int] = []
    for text, kind in pieces:
        kinds.extend([kind] * len(text))
    for match in _URL.finditer(s):
        for k in range(match.start(), match.end()):
            if kinds[k] == _LITERAL:
                kinds[k] = _OPAQUE
    before: set[int] = set()
    after: set[int] = set()
    for delimiter in _DELIMITERS:
        positions = []
        i = s.find(delimiter)
        while i != -1:
            if kinds[i] != _OPAQUE:
                positions.append(i)
            i = s.find(delimiter, i + 1)
        if len(positions) < 2:
            continue
        done: set[int] = set()
        while True:
            bad = [pair for pair in _whatsapp_pairs(s, positions, done) if _LITERAL in (kinds[pair[0]], kinds[pair[1]])]
            if not bad:
                break
            for pair in bad:
                for p in pair:
                    if kinds[p] == _LITERAL:
                        done.add(p)
                        if _can_open(s, p):
                            before.add(p)
                        if _can_close(s, p):
                            after.add(p)
    if not before and not after:
        return s
    out: list[str] = []
    for i, c in enumerate(s):
        if i in before:
            out.append(WORD_JOINER)
        out.append(c)
        if i in after:
            out.append(WORD_JOINER)
    return "".join(out)


def _whatsapp_pairs(s: str, positions: list[int], skip: set[int]) -> list[tuple[int, int]]:
    pairs: list[tuple[int, int]] = []
    opening: int | None = None
    for p in positions:
        if p in skip:
            continue
        if opening is not None and p >= opening + 2 and _can_close(s, p):
            pairs.append((opening, p))
            opening = None
        elif opening is None and _can_open(s, p):
            opening = p
    return pairs
