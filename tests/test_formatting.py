"""A model's Markdown answer reaches the WhatsApp user formatted, with no stray symbols."""

from __future__ import annotations

import pytest

from whatsagent.render.markdown import RULE, WORD_JOINER, to_whatsapp

WJ = WORD_JOINER


def test_a_plain_answer_arrives_exactly_as_written() -> None:
    text = (
        "Hello Ana! Your order #1234 ships tomorrow.\n"
        "It costs $25 (2*3 items at ~$4 each), see snake_case_name.\n"
        "\n"
        "Anything else? 😊"
    )
    assert to_whatsapp(text) == text
    assert to_whatsapp(text + "  \n\n") == text


@pytest.mark.parametrize(
    ("markdown", "whatsapp"),
    [
        pytest.param("This is **bold** text", "This is *bold* text", id="bold"),
        pytest.param("This is __bold__ too", "This is *bold* too", id="bold-underscores"),
        pytest.param("This is *italic* text", "This is _italic_ text", id="italic"),
        pytest.param("This is _italic_ too", "This is _italic_ too", id="italic-underscores"),
        pytest.param("This is ~~gone~~ text", "This is ~gone~ text", id="strike"),
        pytest.param("Run `pip install x` now", "Run `pip install x` now", id="inline-code"),
        pytest.param("Use `` a`b `` here", "Use ```a`b``` here", id="inline-code-with-backtick"),
        pytest.param("***both***", "_*both*_", id="bold-italic"),
        pytest.param("**Bold *and italic* text**", "*Bold _and italic_ text*", id="italic-inside-bold"),
        pytest.param("**a **b** c**", "*a b c*", id="bold-inside-bold-applied-once"),
        pytest.param("**`code`** here", "*`code`* here", id="bold-code"),
        pytest.param("Tap **👍 Like**!", "Tap *👍 Like*!", id="emoji-inside-bold"),
        pytest.param("café **naïve** ok", "café *naïve* ok", id="accents"),
    ],
)
def test_inline_styles_use_whatsapp_delimiters(markdown: str, whatsapp: str) -> None:
    assert to_whatsapp(markdown) == whatsapp


def test_headings_become_bold_lines() -> None:
    markdown = "# Welcome\n\nIntro.\n\n## Step *one*\n\nDo it.\n\nSetext title\n============"
    assert to_whatsapp(markdown) == "*Welcome*\n\nIntro.\n\n*Step _one_*\n\nDo it.\n\n*Setext title*"


def test_a_bold_word_in_a_heading_is_not_bolded_twice() -> None:
    assert to_whatsapp("### The **best** plan") == "*The best plan*"


def test_fenced_code_keeps_its_content_untouched_and_drops_the_info_string() -> None:
    markdown = "Run:\n\n```python\ndef f(x):\n    return x**2  # *not* _formatted_\n\n\nprint(f(3))\n```\n\nDone."
    assert to_whatsapp(markdown) == (
        "Run:\n\n```\ndef f(x):\n    return x**2  # *not* _formatted_\n\n\nprint(f(3))\n```\n\nDone."
    )


def test_indented_code_becomes_a_code_block() -> None:
    assert to_whatsapp("Example:\n\n    a = 1\n      b = **2**\n\nEnd") == (
        "Example:\n\n```\na = 1\n  b = **2**\n```\n\nEnd"
    )


def test_bullet_lists_use_one_marker_whatever_the_model_typed() -> None:
    assert to_whatsapp("* apples\n* pears\n\n- milk\n+ eggs") == "- apples\n- pears\n\n- milk\n\n- eggs"


def test_numbered_lists_keep_their_numbers_and_nested_lists_are_indented() -> None:
    markdown = "3. Third\n4. Fourth\n   - detail *a*\n     1. deeper\n5. Fifth"
    assert to_whatsapp(markdown) == "3. Third\n4. Fourth\n   - detail _a_\n     1. deeper\n5. Fifth"


def test_a_loose_list_keeps_its_blank_lines_and_item_paragraphs() -> None:
    markdown = "1) First\n\n   More about first.\n\n2) Second"
    assert to_whatsapp(markdown) == "1) First\n\n   More about first.\n\n2) Second"


def test_code_inside_a_list_item_stays_flush_left() -> None:
    assert to_whatsapp("- Install:\n\n  ```sh\n  pip install x\n  ```") == ("- Install:\n\n```\npip install x\n```")


def test_block_quotes_are_quoted_line_by_line() -> None:
    markdown = "> **Tip:** first line\n> second line\n>\n> > nested"
    assert to_whatsapp(markdown) == "> *Tip:* first line\n> second line\n>\n> > nested"


@pytest.mark.parametrize(
    ("markdown", "whatsapp"),
    [
        pytest.param(
            "See [the docs](https://example.com/docs).", "See the docs (https://example.com/docs).", id="link"
        ),
        pytest.param("[https://example.com](https://example.com)", "https://example.com", id="text-is-url"),
        pytest.param("[example.com](https://example.com/)", "example.com", id="text-is-url-without-scheme"),
        pytest.param("Go to <https://example.com/a_b>", "Go to https://example.com/a_b", id="autolink"),
        pytest.param("Mail <ana@example.com>", "Mail ana@example.com", id="email-autolink"),
        pytest.param("[ana@example.com](mailto:ana@example.com)", "ana@example.com", id="mailto"),
        pytest.param("[**Docs**](https://x.org)", "*Docs* (https://x.org)", id="bold-link-text"),
        pytest.param("[München](https://münchen.de/a b)", "[München](https://münchen.de/a b)", id="not-a-link"),
        pytest.param("[Stadt](https://münchen.de/)", "Stadt (https://münchen.de/)", id="unicode-url-as-written"),
        pytest.param("![A cat](https://x.org/cat.png)", "A cat (https://x.org/cat.png)", id="image"),
        pytest.param("![](https://x.org/cat.png)", "https://x.org/cat.png", id="image-without-alt"),
    ],
)
def test_links_show_their_url_once(markdown: str, whatsapp: str) -> None:
    assert to_whatsapp(markdown) == whatsapp


def test_a_table_becomes_one_readable_line_per_row() -> None:
    markdown = (
        "| Plan | Price | Users |\n|------|------:|:-----:|\n| Free | $0 | 1 |\n| **Pro** | $10 | |\n| | $99 | 50 |\n"
    )
    assert to_whatsapp(markdown) == (
        "*Plan:* Free · Price: $0 · Users: 1\n*Plan:* *Pro* · Price: $10\nPrice: $99 · Users: 50"
    )


def test_a_horizontal_rule_becomes_a_line() -> None:
    assert to_whatsapp("Above\n\n---\n\nBelow") == f"Above\n\n{RULE}\n\nBelow"


def test_html_is_passed_as_text() -> None:
    assert to_whatsapp("<div>\nhello\n</div>\n\nPress <kbd>Ctrl</kbd>") == (
        "<div>\nhello\n</div>\n\nPress <kbd>Ctrl</kbd>"
    )


@pytest.mark.parametrize(
    ("markdown", "whatsapp"),
    [
        pytest.param("2*3 = 6", "2*3 = 6", id="multiplication"),
        pytest.param("snake_case_name and MAX_RETRY_COUNT", "snake_case_name and MAX_RETRY_COUNT", id="snake-case"),
        pytest.param("use **kwargs or *args", "use **kwargs or *args", id="python-stars"),
        pytest.param("a * b * c", "a * b * c", id="spaced-stars"),
        pytest.param("Costs ~5 to ~10 euros", "Costs ~5 to ~10 euros", id="tildes"),
        pytest.param("*.py and *.txt files", "*.py and *.txt files", id="globs"),
    ],
)
def test_unmatched_delimiters_stay_as_typed(markdown: str, whatsapp: str) -> None:
    assert to_whatsapp(markdown) == whatsapp


def test_markdown_star_bullets_do_not_leave_stray_stars() -> None:
    assert to_whatsapp("* one\n* two *three*") == "- one\n- two _three_"


def test_formatting_that_spans_a_line_break_is_applied_per_line() -> None:
    assert to_whatsapp("**first line\nsecond line**") == "*first line*\n*second line*"
    assert to_whatsapp("*a  \nb* and ~~x\ny~~") == "_a_\n_b_ and ~x~\n~y~"


def test_empty_emphasis_is_dropped() -> None:
    assert to_whatsapp("a *&#32;* b") == "a   b"


def test_emphasis_touching_a_word_on_one_side_keeps_its_text_only() -> None:
    # WhatsApp would show `*bold*s` with its stars: a closing delimiter must end a word.
    assert to_whatsapp("the **bold**s win") == "the bolds win"


def test_emphasis_inside_a_word_is_kept_as_typed() -> None:
    # Markdown reads 2*3*4 as 2<em>3</em>4; the model meant arithmetic, and WhatsApp leaves it alone.
    assert to_whatsapp("2*3*4 = 24 and a*b*c") == "2*3*4 = 24 and a*b*c"


def test_emphasis_next_to_punctuation_is_formatted() -> None:
    assert to_whatsapp("**Note:** read (*this*).") == "*Note:* read (_this_)."


def test_whitespace_just_inside_emphasis_moves_outside() -> None:
    assert to_whatsapp("**bold  \nnext**") == "*bold*\n*next*"


def test_literal_delimiters_whatsapp_would_pair_are_defused() -> None:
    # Escaped stars are literal in Markdown; WhatsApp would bold the text between them.
    assert to_whatsapp(r"\*not bold\*") == f"{WJ}*not bold*{WJ}"
    assert to_whatsapp(r"\_not italic\_ and \~not struck\~") == (f"{WJ}_not italic_{WJ} and {WJ}~not struck~{WJ}")


def test_a_literal_star_cannot_close_our_bold_early() -> None:
    assert to_whatsapp(r"**a\* b**") == f"*a*{WJ} b*"


def test_a_url_is_never_defused() -> None:
    assert to_whatsapp(r"see https://x.org/_a_ and \_b\_") == f"see https://x.org/_a_ and {WJ}_b_{WJ}"


def test_a_whole_answer_reads_naturally() -> None:
    markdown = """## Getting started 🚀

To install **whatsagent**, run:

```bash
pip install whatsagent
```

1. Set `WHATSAPP_TOKEN` – your **access token**
2. Set `WHATSAPP_APP_SECRET`
   - keep it **secret**
   - rotate it ~~yearly~~ monthly

> **Tip:** see the [docs](https://docs.example.com).
"""
    assert (
        to_whatsapp(markdown)
        == """*Getting started 🚀*

To install *whatsagent*, run:

```
pip install whatsagent
```

1. Set `WHATSAPP_TOKEN` – your *access token*
2. Set `WHATSAPP_APP_SECRET`
   - keep it *secret*
   - rotate it ~yearly~ monthly

> *Tip:* see the docs (https://docs.example.com)."""
    )
