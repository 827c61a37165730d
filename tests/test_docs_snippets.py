"""The README's and docs' test examples run as a user would paste them: in their own pytest session."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).parent.parent

MYAPP = """
from whatsagent import AgentOS
from whatsagent.channels import CloudAPI

async def echo(ctx):
    return f"echo: {ctx.text}"

os = AgentOS(agents=[echo], channels=[CloudAPI(agent=echo)])
"""


def python_block(path: Path, containing: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", path.read_text(), re.S)
    [block] = [b for b in blocks if containing in b]
    return block


def test_the_readmes_pytest_example_passes_as_pasted(pytester: pytest.Pytester):
    pytester.makepyfile(test_bot=python_block(ROOT / "README.md", "def test_greeting"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1)


def test_the_crash_example_passes_with_asyncio_mode_auto_as_the_docs_say(pytester: pytest.Pytester):
    pytester.makepyfile(myapp=MYAPP)
    pytester.makepyfile(
        test_crash=python_block(ROOT / "docs" / "testing.md", "def test_nothing_is_lost_across_a_crash")
    )
    pytester.makeini("[pytest]\nasyncio_mode = auto\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1)
