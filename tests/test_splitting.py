"""A long answer reaches the WhatsApp user as several messages, cut where a reader would pause."""

from __future__ import annotations

import re

import pytest

from whatsagent.render.splitting import CAPTION_LIMIT, MIN_LIMIT, TEXT_LIMIT, chat_bubbles, split_message

FAMILY = "👨\u200d👩\u200d👧\u200d👦"  # one emoji drawn from 7 code points joined by ZWJ
FLAG = "🇵🇹"  # two regional indicators
THUMBS = "👍🏽"  # emoji + skin-tone modifier
KEYCAP = "1\ufe0f\u20e3"  # 1️⃣
ACCENTED = "e\u0301"  # é as e + combining acute accent


def _non_space(text: str) -> str:
    return re.sub(r"\s", "", text)


def _rejoin(parts: list[str]) -> str:
    """The parts glued back, without the fences split_message added to close and reopen code."""
    lines: list[str] = []
    for part in parts:
        part_lines = part.split("\n")
        if lines and lines[-1].startswith("```") and part_lines[0].startswith("```"):
            lines.pop()  # the closing fence added at the end of the previous part
            part_lines = part_lines[1:]  # the fence reopened at the start of this one
        lines.extend(part_lines)
    return "\n".join(lines)


def _lines(text: str) -> list[str]:
    """The non-blank lines, indentation included: cuts may only drop blank lines and trailing spaces."""
    return [line.rstrip() for line in text.split("\n") if line.strip()]


def _fence_lines(part: str) -> int:
    return sum(1 for line in part.split("\n") if line.startswith("```"))


# --- the simple cases ---------------------------------------------------------------------------------


def test_a_short_answer_is_one_message_unchanged() -> None:
    text = "Hi!  \n\nYour order ships tomorrow. 🚚\n"
    assert split_message(text) == [text]
    assert split_message(text, numbered=True) == [text]


def test_an_answer_of_exactly_the_limit_is_one_message() -> None:
    text = "a" * TEXT_LIMIT
    assert split_message(text) == [text]
    assert len(split_message(text + "b")) == 2


def test_a_blank_answer_gives_no_message() -> None:
    assert split_message("") == []
    assert split_message(" \n\n ") == []
    assert chat_bubbles("\n\n") == []


def test_a_limit_too_small_to_hold_a_reopened_code_block_is_refused() -> None:
    with pytest.raises(ValueError, match=f"at least {MIN_LIMIT}"):
        split_message("x" * 100, 10)


# --- where the cuts fall ------------------------------------------------------------------------------


def test_paragraph_breaks_come_first() -> None:
    text = "First paragraph is short.\n\nSecond paragraph is a little longer than that.\n\nThird."
    assert split_message(text, 60) == [
        "First paragraph is short.",
        "Second paragraph is a little longer than that.\n\nThird.",
    ]


def test_then_line_breaks() -> None:
    text = "Line one of the list\nLine two of the list\nLine three of the list"
    assert split_message(text, 45) == ["Line one of the list\nLine two of the list", "Line three of the list"]


def test_then_sentence_ends() -> None:
    text = "This is the first sentence. This is the second one! Is this the third? Yes."
    assert split_message(text, 40) == [
        "This is the first sentence.",
        "This is the second one!",
        "Is this the third? Yes.",
    ]


def test_then_spaces_between_words() -> None:
    text = "one two three four five six seven eight nine ten eleven twelve"
    assert split_message(text, 32) == ["one two three four five six", "seven eight nine ten eleven", "twelve"]


def test_only_a_word_longer_than_the_limit_is_cut_inside() -> None:
    url = "https://example.com/" + "a" * 60
    assert split_message(f"See {url} now", 32) == ["See", url[:32], url[32:64], url[64:] + " now"]


def test_an_indented_line_keeps_its_indentation_after_a_cut() -> None:
    text = "- first item of a list\n  - a nested item here\n  - and another nested one"
    assert split_message(text, 50) == [
        "- first item of a list\n  - a nested item here",
        "  - and another nested one",
    ]


# --- code blocks --------------------------------------------------------------------------------------


def test_a_code_block_longer_than_a_message_is_closed_and_reopened() -> None:
    text = (
        "Run this:\n\n```python\ndef greet(name):\n    return f'hi {name}'\n\n\n"
        "def main():\n    print(greet('ana'))\n    print(greet('bo'))\n```\n\nThat's all."
    )
    assert split_message(text, 60) == [
        "Run this:",
        "```python\ndef greet(name):\n    return f'hi {name}'\n```",
        "```python\ndef main():\n    print(greet('ana'))\n```",
        "```python\n    print(greet('bo'))\n```\n\nThat's all.",
    ]


def test_a_long_code_fence_over_several_full_messages() -> None:
    code = "\n".join(f"    total += compute(item_{i})  # step {i}" for i in range(400))
    text = f"Here is the script:\n\n```python\n{code}\n```\n\nRun it with `python script.py`."
    parts = split_message(text)
    assert len(parts) >= 4
    assert all(len(part) <= TEXT_LIMIT for part in parts)
    for part in parts[1:-1]:
        assert part.startswith("```python\n    total += compute(")
        assert part.endswith("\n```")
    assert all(_fence_lines(part) % 2 == 0 for part in parts)
    assert _lines(_rejoin(parts)) == _lines(text)


def test_a_code_fence_with_tildes_is_reopened_with_tildes() -> None:
    text = "~~~\n" + "\n".join(f"line {i}" for i in range(20)) + "\n~~~"
    parts = split_message(text, 40)
    assert all(part.startswith("~~~\n") and part.endswith("\n~~~") for part in parts)


def test_an_unclosed_code_fence_is_still_reopened_but_not_closed_at_the_very_end() -> None:
    text = "```\n" + "\n".join(f"row {i}" for i in range(12))
    parts = split_message(text, 40)
    assert all(part.startswith("```\n") for part in parts)
    assert all(part.endswith("\n```") for part in parts[:-1])
    assert not parts[-1].endswith("```")


# --- numbered parts, captions -------------------------------------------------------------------------


def test_numbered_parts_end_with_a_counter_within_the_limit() -> None:
    text = "Alpha beta gamma delta. Epsilon zeta eta theta. Iota kappa lambda mu."
    assert split_message(text, 40, numbered=True) == [
        "Alpha beta gamma delta.\n(1/3)",
        "Epsilon zeta eta theta.\n(2/3)",
        "Iota kappa lambda mu.\n(3/3)",
    ]


def test_numbered_markers_with_two_digit_counts_still_fit() -> None:
    text = " ".join(f"word{i}" for i in range(400))
    parts = split_message(text, 40, numbered=True)
    assert len(parts) >= 10
    assert all(len(part) <= 40 for part in parts)
    assert [part.rsplit("\n", 1)[1] for part in parts] == [f"({k}/{len(parts)})" for k in range(1, len(parts) + 1)]


def test_a_caption_is_split_at_1024_characters() -> None:
    sentence = "A photo of the harbour at dawn, with boats. "
    caption = sentence * 40
    parts = split_message(caption, CAPTION_LIMIT)
    assert len(parts) == 2
    assert all(len(part) <= CAPTION_LIMIT for part in parts)
    assert parts[0].endswith("boats.")
    assert _non_space("".join(parts)) == _non_space(caption)


# --- characters made of several code points -----------------------------------------------------------


def test_limits_count_code_points_not_utf16_units() -> None:
    # 4,096 emoji are 8,192 UTF-16 units, and still one WhatsApp message.
    text = "😀" * TEXT_LIMIT
    assert split_message(text) == [text]


def test_a_zwj_family_is_never_cut_in_the_middle() -> None:
    text = FAMILY * 700  # 4,900 code points, no space anywhere
    parts = split_message(text)
    assert [len(part) for part in parts] == [4095, 805]  # 585 and 115 whole families
    assert all(part == FAMILY * (len(part) // 7) for part in parts)


def test_a_nearby_space_is_preferred_to_cutting_emoji() -> None:
    text = "x" * 30 + " " + FAMILY * 3
    assert split_message(text, 40) == ["x" * 30, FAMILY * 3]
    text = "x" * 30 + FAMILY * 3
    assert split_message(text, 40) == ["x" * 30 + FAMILY, FAMILY * 2]


@pytest.mark.parametrize(
    ("cluster", "limit"),
    [
        pytest.param(FLAG, 33, id="flag"),
        pytest.param(THUMBS, 33, id="skin-tone"),
        pytest.param(KEYCAP, 34, id="keycap"),
        pytest.param(ACCENTED, 33, id="combining-accent"),
    ],
)
def test_multi_code_point_characters_stay_whole(cluster: str, limit: int) -> None:
    text = cluster * 100
    parts = split_message(text, limit)
    assert all(len(part) <= limit for part in parts)
    assert all(part == cluster * (len(part) // len(cluster)) for part in parts)
    assert "".join(parts) == text


# --- a 20,000-character answer ------------------------------------------------------------------------


def _long_answer() -> str:
    blocks = []
    n = 0
    while sum(len(b) + 2 for b in blocks) < 20_000:
        blocks.append(
            f"*Section {n}* 🚀\n\nThis paragraph explains step {n} in plain words. It has several "
            f"sentences, some emoji {FAMILY} {FLAG}, and it goes on for a while so that the answer is long. "
            "Nothing here is special; it is just text that a model might write."
        )
        blocks.append("\n".join(f"- point {n}.{i} about the section" for i in range(6)))
        if n % 4 == 0:
            code = "\n".join(f"value_{i} = compute({n}, {i})" for i in range(120))
            blocks.append(f"```python\n{code}\n```")
        n += 1
    return "\n\n".join(blocks)


def test_a_20000_character_answer_arrives_whole_and_in_order() -> None:
    text = _long_answer()
    assert 20_000 <= len(text) < 24_000
    parts = split_message(text)
    assert len(parts) >= 5
    assert all(0 < len(part) <= TEXT_LIMIT for part in parts)
    assert all(_fence_lines(part) % 2 == 0 for part in parts)
    assert _non_space(_rejoin(parts)) == _non_space(text)
    assert _lines(_rejoin(parts)) == _lines(text)


def test_a_20000_character_answer_numbered() -> None:
    text = _long_answer()
    parts = split_message(text, numbered=True)
    assert all(len(part) <= TEXT_LIMIT for part in parts)
    assert parts[-1].endswith(f"\n({len(parts)}/{len(parts)})")
    bodies = [part.rsplit("\n", 1)[0] for part in parts]
    assert _non_space(_rejoin(bodies)) == _non_space(text)


# --- chat style ---------------------------------------------------------------------------------------


def test_chat_style_sends_one_bubble_per_paragraph() -> None:
    text = "Hi Ana!\n\nYour order shipped today.\n\n\nIt arrives Friday. 🚚"
    assert chat_bubbles(text) == ["Hi Ana!", "Your order shipped today.", "It arrives Friday. 🚚"]


def test_chat_style_keeps_a_list_a_heading_and_a_code_block_together() -> None:
    text = (
        "*Shopping*\n\nYou need:\n\n- milk\n- eggs\n\n  free range if you can\n- bread\n\n"
        "```\nline one\n\nline three\n```\n\nBye!"
    )
    assert chat_bubbles(text) == [
        "*Shopping*\n\nYou need:",
        "- milk\n- eggs\n\n  free range if you can\n- bread",
        "```\nline one\n\nline three\n```",
        "Bye!",
    ]


def test_chat_style_splits_a_paragraph_longer_than_the_limit() -> None:
    long_paragraph = "Word " * 30
    bubbles = chat_bubbles(f"Short one.\n\n{long_paragraph}\n\nEnd.", 64)
    assert bubbles[0] == "Short one."
    assert bubbles[-1] == "End."
    assert len(bubbles) > 3
    assert all(len(bubble) <= 64 for bubble in bubbles)


def test_chat_style_splits_a_list_that_does_not_fit_at_item_boundaries() -> None:
    text = "\n\n".join(f"- item number {i} with some words" for i in range(6))
    bubbles = chat_bubbles(text, 80)
    assert bubbles == [
        "- item number 0 with some words\n\n- item number 1 with some words",
        "- item number 2 with some words\n\n- item number 3 with some words",
        "- item number 4 with some words\n\n- item number 5 with some words",
    ]


def test_chat_style_captions_use_the_same_function() -> None:
    bubbles = chat_bubbles(("A long caption sentence. " * 60).strip(), CAPTION_LIMIT)
    assert all(len(bubble) <= CAPTION_LIMIT for bubble in bubbles)
    assert len(bubbles) == 2


# --- properties over any text -------------------------------------------------------------------------

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ModuleNotFoundError:  # pragma: no cover - hypothesis is a test-only dependency
    given = None

if given is not None:
    _PIECES = st.sampled_from(
        [
            *"ab cd.!?\n\t`*_~-é",
            "\n\n",
            "```",
            "```py\n",
            "\n```\n",
            FAMILY,
            FLAG,
            ACCENTED,
            KEYCAP,
            "。",
            "x" * 40,
        ]
    )
    _TEXTS = st.lists(_PIECES, max_size=300).map("".join)
    _SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

    @_SETTINGS
    @given(text=_TEXTS, limit=st.integers(MIN_LIMIT, 200), numbered=st.booleans())
    def test_any_text_splits_into_nonempty_parts_within_the_limit(text: str, limit: int, numbered: bool) -> None:
        parts = split_message(text, limit, numbered=numbered)
        assert all(len(part) <= limit for part in parts)
        assert all(part.strip() for part in parts)
        if not text.strip():
            assert parts == []
        elif len(text) <= limit:
            assert parts == [text]

    @_SETTINGS
    @given(text=_TEXTS, limit=st.integers(MIN_LIMIT, 200), numbered=st.booleans())
    def test_any_text_keeps_every_visible_character_in_order(text: str, limit: int, numbered: bool) -> None:
        parts = split_message(text, limit, numbered=numbered)
        if numbered and len(parts) > 1:
            parts = [part.rsplit("\n", 1)[0] for part in parts]
        original, joined = _non_space(text), _non_space("".join(parts))
        if "```" not in text:
            assert joined == original
        else:  # only fences added around cuts inside code come on top
            remaining = iter(joined)
            assert all(ch in remaining for ch in original)

    @_SETTINGS
    @given(text=_TEXTS, limit=st.integers(MIN_LIMIT, 200))
    def test_any_text_gives_chat_bubbles_within_the_limit(text: str, limit: int) -> None:
        bubbles = chat_bubbles(text, limit)
        assert all(0 < len(bubble) <= limit and bubble.strip() for bubble in bubbles)
        if "```" not in text:
            assert _non_space("".join(bubbles)) == _non_space(text)

else:  # pragma: no cover

    @pytest.mark.skip(reason="hypothesis is not installed: pip install hypothesis")
    def test_split_message_properties() -> None:
        pass
