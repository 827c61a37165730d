"""Test a whatsagent bot end to end: your agent, served for real, against the local WhatsApp emulator.

This package is a pytest plugin (installed with whatsagent; nothing to configure). Its `wa` fixture serves
your agent with a real `AgentOS` (webhooks, inbox, lanes, outbox, sender, on SQLite in a temporary
folder) against an in-process emulator, and lets a test script a conversation::

    import pytest
    from whatsagent import Agent
    from whatsagent.testing import scripted_model

    @pytest.fixture
    def wa_agent():                                   # the bot the `wa` fixture serves
        return Agent(model=scripted_model("Hello Ana!", "Booked for Friday."))

    def test_booking(wa):
        chat = wa.user("Ana")
        chat.send("hi")                               # returns once the bot has answered and sent
        assert chat.last_reply.text == "Hello Ana!"
        chat.send("book me in")
        assert chat.last_reply.text == "Booked for Friday."

Every action (`send`, `tap`, `send_image`, ...) returns once the bot is idle again: the message is
stored, its turn has run, and everything the turn answered has been sent (or has failed for good). So
`chat.last_reply` is settled when you read it, with no sleeps in tests.

The API is synchronous and works in plain and in async tests alike: the bot and the emulator run on an
event loop of their own in a background thread. The one thing that cannot cross is an asyncio object:
an agent must not await an `asyncio.Event` created by the test. For that, use the async `BotHarness`
below, which runs everything on the test's own loop::

    async with BotHarness(my_agent, tmp_path) as bot:
        ana = bot.user("15551234567", name="Ana")
        await ana.send_text("hi")
        await bot.idle()
        assert ana.last_reply.text == "hello"

Other fixtures: `wa_agent` (override it; the default asks you to), `wa_bot` (a factory of async
harnesses). Deterministic model stubs: `scripted_model(...)` with `tool_call(...)` steps.
See docs/testing.md.

Where each part lives: `plugin` (the fixtures), `harness` (`BotHarness`, `wait_idle`), `sandbox`
(`Sandbox`, `Chat`), `scripted` (`scripted_model`, `tool_call`; loaded on first use, as it imports
pydantic-ai), `processes` (`ServerProcess`, `emulator_env`, `free_port`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from whatsagent.testing.harness import APP_SECRET, VERIFY_TOKEN, BotHarness, wait_idle
from whatsagent.testing.plugin import wa, wa_agent, wa_bot
from whatsagent.testing.processes import ServerProcess, emulator_env, free_port
from whatsagent.testing.sandbox import Chat, Sandbox

if TYPE_CHECKING:
    from whatsagent.testing.scripted import ScriptedModel, scripted_model, tool_call

__all__ = [
    "APP_SECRET",
    "VERIFY_TOKEN",
    "BotHarness",
    "Chat",
    "Sandbox",
    "ScriptedModel",
    "ServerProcess",
    "emulator_env",
    "free_port",
    "scripted_model",
    "tool_call",
    "wa",
    "wa_agent",
    "wa_bot",
    "wait_idle",
]

# pydantic-ai loads only when a test asks for a scripted model: pytest imports this module in every run
# of every project that has whatsagent installed.
_LAZY = {"ScriptedModel", "scripted_model", "tool_call"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from whatsagent.testing import scripted

        return getattr(scripted, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
