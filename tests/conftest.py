"""Shared fixtures: agents with known behaviour, and a bot served against the emulator."""

from __future__ import annotations

import asyncio
import random

import pytest

from whatsagent import TurnContext


@pytest.fixture
def echo():
    """An agent that answers 'echo: <what it received>' and remembers each turn's input."""
    seen: list[str] = []

    async def agent(ctx: TurnContext) -> str:
        seen.append(ctx.text)
        return f"echo: {ctx.text}"

    agent.seen = seen  # type: ignore[attr-defined]
    return agent


@pytest.fixture
def slow_echo():
    """An echo agent with random latency (0-150 ms), recording each turn's input."""
    seen: list[str] = []
    rng = random.Random(42)

    async def agent(ctx: TurnContext) -> str:
        await asyncio.sleep(rng.uniform(0, 0.15))
        seen.append(ctx.text)
        return f"echo: {ctx.text}"

    agent.seen = seen  # type: ignore[attr-defined]
    return agent


# The real PostgreSQL (fresh database per test; skipped with a reason when unreachable, unless required).
pytest_plugins = ["conftest_postgres"]
