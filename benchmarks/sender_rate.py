"""The sender's pace: does one process sustain a number's configured rate, without ever exceeding it?

Runs the real send path — outbox row written, paced (`Pacing`), sent through `CloudAPI` with the pooled
aiohttp client, recorded as sent — against the emulator's Graph API in a child process (so the
emulator's CPU is not this process's), for each configured rate, with far more messages queued than
the rate allows, and prints: messages/s achieved over the run, the most sends in any sliding second
(must not exceed the rate), the fullest and emptiest whole second, the time from a message's slot to
the provider's acceptance, and this process's CPU per message.

    python -m benchmarks sender [--rates 80,1000] [--seconds 10] [--users 5000] [--concurrency 512]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from whatsagent.channels.cloudapi import CloudAPI
from whatsagent.messages import User
from whatsagent.messages.outbound import TemplateOut
from whatsagent.pacing import Pacing
from whatsagent.sender import Outcome, Sender
from whatsagent.store.database import SQLiteDatabase

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"
PHONE_NUMBER_ID = "100200300"

EMULATOR = """
import asyncio, sys
from whatsagent.emulator import Emulator

async def main():
    emu = Emulator(phone_number_id="{pnid}", access_token="{token}", record_requests=False, page=False)
    await emu.start(port={port})
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def most_in_window(times: list[float], window: float = 1.0) -> int:
    """The most sends that fall in any half-open interval [t, t + window)."""
    return max((bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_rate(base_url: str, rate: float, seconds: float, users: int, concurrency: int) -> dict[str, float]:
    messages = int(rate * seconds)
    with tempfile.TemporaryDirectory() as tmp:
        db = SQLiteDatabase(Path(tmp) / "bench.db")
        await db.start()
        http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency), json_serialize=None)  # type: ignore[arg-type]
        channel = CloudAPI(
            access_token=TOKEN,
            phone_number_id=PHONE_NUMBER_ID,
            verify_token="v",
            app_secret="s",
            api_base_url=base_url,
        )
        await channel.open(http)
        # Real pair pacing: each user gets a few messages, well inside a pair burst.
        sender = Sender(db, pacing=Pacing(rate=rate), channels={channel.name: channel})
        slots: list[float] = []
        accepted: list[float] = []
        real_send = channel.send

        async def timed_send(to, message, *, callback_data=None):  # type: ignore[no-untyped-def]
            t = time.monotonic()  # the pacing's clock
            slots.append(t)
            result = await real_send(to, message, callback_data=callback_data)
            accepted.append(time.monotonic() - t)
            return result

        channel.send = timed_send  # type: ignore[method-assign]
        template = TemplateOut(name="hello_world")
        recipients = [User(wa_id=f"1666{i:07d}") for i in range(users)]
        gate = asyncio.Semaphore(concurrency)
        outcomes: list[Outcome] = []

        async def one(i: int) -> None:
            async with gate:
                outcome, _ = await sender.send(channel, recipients[i % users], template, key=f"bench:{rate}:{i}")
                outcomes.append(outcome)

        cpu = cpu_seconds()
        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(messages)))
        took = time.perf_counter() - started
        cpu = cpu_seconds() - cpu
        await http.close()
        await db.close()
    slots.sort()
    span = slots[-1] - slots[0]
    whole = [
        bisect.bisect_left(slots, slots[0] + s + 1) - bisect.bisect_left(slots, slots[0] + s) for s in range(int(span))
    ]
    return {
        "rate": rate,
        "messages": messages,
        "sent": sum(1 for o in outcomes if o is Outcome.SENT),
        "achieved": (len(slots) - 1) / span if span else float("nan"),
        "wall": took,
        "max_1s": most_in_window(slots),
        "fullest_second": max(whole, default=0),
        "emptiest_second": min(whole, default=0),
        "accept_p50_ms": statistics.median(accepted) * 1000,
        "accept_p99_ms": statistics.quantiles(accepted, n=100)[98] * 1000 if len(accepted) > 100 else float("nan"),
        "cpu_us_per_msg": cpu / messages * 1e6,
    }


async def amain(args: argparse.Namespace) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", EMULATOR.format(pnid=PHONE_NUMBER_ID, token=TOKEN, port=port)],
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert child.stdout is not None
        line = await asyncio.to_thread(child.stdout.readline)
        if b"ready" not in line:
            raise SystemExit("the emulator did not start")
        base_url = f"http://127.0.0.1:{port}"
        print(
            f"{'rate/s':>7} {'msgs':>6} {'sent':>6} {'achieved/s':>10} {'max in 1 s':>10} "
            f"{'full s':>6} {'empty s':>7} {'accept p50':>10} {'p99':>7} {'CPU/msg':>8}"
        )
        for rate in args.rates:
            r = await run_rate(base_url, rate, args.seconds, args.users, args.concurrency)
            print(
                f"{r['rate']:>7.0f} {r['messages']:>6} {r['sent']:>6} {r['achieved']:>10.1f} {r['max_1s']:>10} "
                f"{r['fullest_second']:>6} {r['emptiest_second']:>7} {r['accept_p50_ms']:>8.1f}ms "
                f"{r['accept_p99_ms']:>5.1f}ms {r['cpu_us_per_msg']:>6.0f}µs",
                flush=True,
            )
            if r["max_1s"] > rate + 1:
                print(f"  !! exceeded {rate:g}/s: {r['max_1s']} sends in one second")
    finally:
        child.terminate()
        child.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")], default=[80.0, 1000.0])
    parser.add_argument("--seconds", type=float, default=10.0, help="how long each rate runs")
    parser.add_argument("--users", type=int, default=5000, help="distinct recipients (pair pacing applies)")
    parser.add_argument("--concurrency", type=int, default=512, help="sends in flight at most")
    asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    main()
