"""Rendering speed: a 4 KB Markdown answer through `to_whatsapp` and `split_message`.

python -m benchmarks rendering
"""

from __future__ import annotations

import time

from whatsagent.render.markdown import to_whatsapp
from whatsagent.render.splitting import split_message


def _four_kb_answer() -> str:
    section = (
        "## Step {n}\n\n"
        "Here is **important** text with *emphasis*, a [link](https://example.com/{n}) and `code`.\n\n"
        "- first item with ~~old~~ new\n- second item\n  1. nested\n\n"
        "```python\ndef f(x):\n    return x * {n}\n```\n\n"
        "| Key | Value |\n|---|---|\n| a | {n} |\n\n"
        "> a quote 😀\n\n"
    )
    text = ""
    n = 0
    while len(text) < 4096:
        text += section.format(n=n)
        n += 1
    return text[:4096]


def best_of(fn, runs: int = 50) -> float:  # type: ignore[no-untyped-def]
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        timings.append(time.perf_counter() - started)
    return min(timings)


def main() -> None:
    answer = _four_kb_answer()
    rendered = to_whatsapp(answer)
    long = rendered * 5
    markdown_ms = best_of(lambda: to_whatsapp(answer)) * 1000
    print(f"to_whatsapp, {len(answer):,} characters of Markdown: best {markdown_ms:.2f} ms")
    print(f"to_whatsapp, a one-line plain answer: best {best_of(lambda: to_whatsapp('Thanks, noted!')) * 1e6:.1f} µs")
    print(f"split_message, {len(long):,} characters: best {best_of(lambda: split_message(long)) * 1000:.2f} ms")


if __name__ == "__main__":
    main()
