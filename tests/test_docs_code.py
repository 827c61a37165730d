"""Every Python code block in the README and docs/ runs in the test suite, as a reader would use it:
test modules in their own pytest session (with asyncio_mode=auto, as docs/testing.md says), the rest as
one script per document, in order, so later blocks may use what earlier ones defined."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

MYAPP = """
from whatsagent import AgentOS
from whatsagent.channels import CloudAPI

async def echo(ctx):
    return f"echo: {ctx.text}"

os = AgentOS(agents=[echo], channels=[CloudAPI(agent=echo)])
"""


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), re.S | re.M)


def is_test_module(block: str) -> bool:
    return re.search(r"^(async )?def test_", block, re.M) is not None


def test_every_document_has_its_blocks_found():
    counts = {p.name: len(python_blocks(p)) for p in DOCUMENTS}
    assert counts["README.md"] >= 5 and counts["testing.md"] >= 2, counts


def test_the_test_modules_in_the_docs_pass_as_pasted(pytester: pytest.Pytester):
    tests = 0
    for path in DOCUMENTS:
        for n, block in enumerate(python_blocks(path)):
            if is_test_module(block):
                pytester.makepyfile(**{f"test_{path.stem.lower()}_{n}": block})
                tests += len(re.findall(r"^(?:async )?def test_", block, re.M))
    pytester.makepyfile(myapp=MYAPP)  # what docs/testing.md's crash example serves
    pytester.makeini("[pytest]\nasyncio_mode = auto\n")
    assert tests >= 4
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=tests)


SETTINGS = {
    "WHATSAPP_ACCESS_TOKEN": "t",
    "WHATSAPP_PHONE_NUMBER_ID": "100200300",
    "WHATSAPP_APP_SECRET": "s",
    "WHATSAPP_VERIFY_TOKEN": "v",
    "OPENAI_API_KEY": "sk-docs",
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_AUTH_TOKEN": "tok",
    "TWILIO_FROM_NUMBER": "whatsapp:+15550001111",
    "TWILIO_PUBLIC_URL": "https://bot.example.com",
}


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
async def test_the_other_python_blocks_run_in_order(path: Path, tmp_path, monkeypatch):
    for key, value in SETTINGS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "docs_example"}
    cleanups = []
    ran = 0
    for block in python_blocks(path):
        if is_test_module(block):
            continue
        # Examples bind the ports they document; here a free one, as the test suite must.
        code = compile(
            re.sub(r"port=\d{4}", "port=0", block), f"{path.name} block", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        )
        result = eval(code, namespace)  # the project's own documentation
        if inspect.iscoroutine(result):
            await result
        ran += 1
        emulator = namespace.get("emu")
        if emulator is not None and emulator not in cleanups:
            cleanups.append(emulator)
    for emulator in cleanups:
        await emulator.stop()  # type: ignore[attr-defined]
    if path.name == "README.md":
        from fastapi.testclient import TestClient

        client = TestClient(namespace["app"])  # type: ignore[arg-type]
        assert client.get("/health").status_code == 200, "the router went into the user's app"
        assert client.get("/whatsapp/webhook").status_code == 403, "its webhook too (no verify token given)"
        assert ran >= 4
