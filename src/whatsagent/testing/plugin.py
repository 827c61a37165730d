"""The pytest fixtures (`wa_agent`, `wa`, `wa_bot`), registered by the ``whatsagent`` pytest plugin
entry point (`whatsagent.testing`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from whatsagent.testing.harness import BotHarness
from whatsagent.testing.sandbox import Sandbox


@pytest.fixture
def wa_agent() -> Any:
    """The agent the `wa` fixture serves. Override it in your conftest.py or test module; this default
    serves nothing, so a test then calls ``wa.serve(agent)`` itself."""
    return None


@pytest.fixture
def wa(wa_agent: Any, tmp_path: Path) -> Iterator[Sandbox]:
    """Your bot (the `wa_agent` fixture, or ``wa.serve(agent)``) against the emulator; ``wa.user("Ana")``
    gives a chat to script. Served on first use, stopped after the test."""
    sandbox = Sandbox(tmp_path / "whatsagent", wa_agent)
    try:
        yield sandbox
    finally:
        sandbox.close()


@pytest.fixture
async def wa_bot(tmp_path: Path) -> AsyncIterator[Callable[..., BotHarness]]:
    """A factory: ``async with wa_bot(agent) as bot: ...`` serves `agent` against the emulator."""
    harnesses: list[BotHarness] = []

    def make(agent: Any, **options: Any) -> BotHarness:
        harness = BotHarness(agent, tmp_path / f"bot{len(harnesses)}", **options)
        harness.directory.mkdir(parents=True, exist_ok=True)
        harnesses.append(harness)
        return harness

    yield make
