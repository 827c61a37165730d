"""The bot that `test_scale_out.py` and `benchmarks/scale_out.py` serve as separate web and worker
processes (``whatsagent serve scale_out_app:agent_os --role ...``), configured by environment variables:

- ``WHATSAPP_*`` point the Cloud API channel at the emulator; ``WHATSAGENT_DATABASE_URL`` at PostgreSQL;
- ``SCALE_MODEL_LATENCY``: ``min,max`` seconds the model "thinks" (uniformly random), default ``0,0``;
- ``SCALE_TURN_LOG``: a file where each model call appends ``<pid> start|end <turn id>`` (the test picks
  a worker that is mid-turn to kill);
- ``SCALE_CONCURRENCY``: turns a worker runs at once (default 64);
- ``SCALE_SEND_RATE``: messages per second one process may send (default 80, Meta's default tier; pacing
  is per process);
- ``SCALE_POISON``: ``1`` makes a message saying ``poison`` kill the worker that runs its turn (as a
  medium that exhausts memory would), every time.

Sends are logged to the turn log too (``<pid> send|sent <idempotency key>``): the chaos suite picks a
worker with a send in flight to kill.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
from typing import Any

from whatsagent import AgentOS, TurnContext
from whatsagent.channels.cloudapi import CloudAPI
from whatsagent.pacing import Pacing
from whatsagent.queue.procrastinate import WorkerPolicy

low, high = (float(x) for x in os.environ.get("SCALE_MODEL_LATENCY", "0,0").split(","))
turn_log = os.environ.get("SCALE_TURN_LOG")


def _log(event: str, turn_id: int | str) -> None:
    if turn_log:
        # One short O_APPEND write per line: lines of several processes never interleave.
        fd = os.open(turn_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{os.getpid()} {event} {turn_id}\n".encode())
        finally:
            os.close(fd)


poison = os.environ.get("SCALE_POISON") == "1"


async def model(ctx: TurnContext) -> str:
    """Echoes every message of the turn, in order, after a random 'thinking' time."""
    if poison and "poison" in ctx.text:
        os.kill(os.getpid(), signal.SIGKILL)
    _log("start", ctx.turn_id)
    if high > 0:
        await asyncio.sleep(random.uniform(low, high))
    _log("end", ctx.turn_id)
    return "echo: " + " | ".join(ctx.text.split("\n"))


class LoggedCloudAPI(CloudAPI):
    async def send(self, to: Any, message: Any, *, callback_data: str | None = None) -> Any:
        _log("send", callback_data or "-")
        result = await super().send(to, message, callback_data=callback_data)
        _log("sent", callback_data or "-")
        return result


agent_os = AgentOS(
    channels=[LoggedCloudAPI(agent=model)],
    merge_window=0.2,
    concurrency=int(os.environ.get("SCALE_CONCURRENCY", "64")),
    shutdown_grace=2.0,
    pacing=Pacing(rate=float(os.environ.get("SCALE_SEND_RATE", "80"))),
    worker_policy=WorkerPolicy(
        poll_interval=0.05, heartbeat_interval=0.5, stalled_after=3.0, sweep_interval=1, pool_size=3
    ),
)
