"""A bot for process-level tests: echoes after a configurable delay; settings from the environment.

WHATSAPP_* (from the emulator), WHATSAGENT_DATABASE_URL, SLOW_ECHO_DELAY (seconds); with
SLOW_ECHO_CHANNEL=twilio, a Twilio channel from TWILIO_* instead. A message saying
``poison`` kills the process, as a medium that exhausts its memory would.
"""

from __future__ import annotations

import asyncio
import os
import signal

from whatsagent import AgentOS, TurnContext
from whatsagent.channels import CloudAPI, Twilio

DELAY = float(os.environ.get("SLOW_ECHO_DELAY", "0"))


async def slow_echo(ctx: TurnContext) -> str:
    if "poison" in ctx.text:
        signal.raise_signal(signal.SIGKILL)
    await asyncio.sleep(DELAY)
    return f"echo: {ctx.text}"


os = AgentOS(
    channels=[
        Twilio(agent=slow_echo) if os.environ.get("SLOW_ECHO_CHANNEL") == "twilio" else CloudAPI(agent=slow_echo)
    ],
    merge_window=0.0,
    shutdown_grace=float(os.environ.get("GRACE", "10")),
)
