"""A bot for process-level tests: echoes after a configurable delay; settings from the environment.

WHATSAPP_* (from the emulator), WHATSAGENT_DATABASE_URL, SLOW_ECHO_DELAY (seconds)
"""

from __future__ import annotations

import asyncio
import os

from whatsagent import AgentOS, TurnContext
from whatsagent.channels import CloudAPI

DELAY = float(os.environ.get("SLOW_ECHO_DELAY", "0"))


async def slow_echo(ctx: TurnContext) -> str:
    await asyncio.sleep(DELAY)
    return f"echo: {ctx.text}"


os = AgentOS(
    channels=[CloudAPI(agent=slow_echo)],
    merge_window=0.0,
    shutdown_grace=float(os.environ.get("GRACE", "10")),
)
