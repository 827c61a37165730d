"""Hostile clients against one served bot, on loopback: held bodies and slowloris.

Starts ``whatsagent serve benchmarks.app:os`` in its own process with a soft limit of 1,024 open files
(the usual default) and a hard limit of 1,024, then 8,192 (``serve`` raises the soft limit to the hard
one), against the emulator in this process, then:

1. held bodies: 300 unsigned connections each send 3 MB minus one byte of a 3 MB body and hold it;
2. slowloris: 1,100 connections trickle header bytes, one every 2 seconds, for 30 seconds.

During each, it probes ``/health`` and posts signed webhooks, and prints how many were answered, the
server's resident memory, and how the attackers were answered.

    python -m benchmarks hostile [--held 300] [--slow 1100] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from benchmarks.webhooks import signed_text
from whatsagent.emulator import Emulator
from whatsagent.testing import emulator_env, free_port

ROOT = Path(__file__).resolve().parent.parent


def rss_mb(pid: int, field: str = "VmRSS:") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return float("nan")


def spawn(emu: Emulator, db: Path, port: int, hard_files: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, **emulator_env(emu), "WHATSAGENT_DATABASE_URL": f"sqlite:///{db}"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])

    def limit_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard_files))

    command = [sys.executable, "-m", "whatsagent.cli", "serve", "benchmarks.app:os", "--port", str(port)]
    return subprocess.Popen(
        [*command, "--log-level", "error"], env=env, cwd=ROOT, preexec_fn=limit_files, stdout=subprocess.DEVNULL
    )


async def probe(url: str, emu: Emulator, rounds: int, every: float) -> tuple[int, int]:
    """(health answers 200, signed webhooks acknowledged 200) out of `rounds` each."""
    healthy = acked = 0
    timeout = aiohttp.ClientTimeout(total=2)
    async with aiohttp.ClientSession() as http:
        for n in range(rounds):
            try:
                async with http.get(f"{url}/health", timeout=timeout) as r:
                    healthy += r.status == 200
            except (aiohttp.ClientError, TimeoutError):
                pass
            raw = signed_text(
                emu.app_secret, emu.phone_number_id, "15550009999", f"wamid.probe-{time.time()}-{n}", "hi"
            )
            headers = {"Content-Type": "application/json", "X-Hub-Signature-256": _sign(emu.app_secret, raw)}
            try:
                async with http.post(f"{url}/whatsapp/webhook", data=raw, headers=headers, timeout=timeout) as r:
                    acked += r.status == 200
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(every)
    return healthy, acked


def _sign(secret: str, raw: bytes) -> str:
    import hashlib
    import hmac

    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


async def held_bodies(port: int, count: int) -> tuple[list[asyncio.StreamWriter], dict[str, int]]:
    size = 3 * 1024 * 1024
    chunk = b"x" * (size - 1)
    header = f"POST /whatsapp/webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {size}\r\n\r\n".encode()
    writers: list[asyncio.StreamWriter] = []
    outcomes: dict[str, int] = {}

    async def one() -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writers.append(writer)
            writer.write(header + chunk)
            await asyncio.wait_for(writer.drain(), 10)
            line = await asyncio.wait_for(reader.readline(), 3)
            key = line.decode(errors="replace").strip()[:12] or "closed"
        except TimeoutError:
            key = "held"
        except OSError as exc:
            key = type(exc).__name__
        outcomes[key] = outcomes.get(key, 0) + 1

    await asyncio.gather(*(one() for _ in range(count)))
    return writers, outcomes


async def slowloris(port: int, count: int, seconds: float, stop: asyncio.Event) -> dict[str, int]:
    outcomes: dict[str, int] = {}

    async def one() -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError as exc:
            outcomes[type(exc).__name__] = outcomes.get(type(exc).__name__, 0) + 1
            return
        writer.write(b"POST /whatsapp/webhook HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        key = "held to the end"
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline and not stop.is_set():
                writer.write(b"X-a: b\r\n")
                await writer.drain()
                try:
                    data = await asyncio.wait_for(reader.read(100), 2)
                except TimeoutError:
                    continue
                key = data.decode(errors="replace")[:12] if data else "closed by server"
                break
        except OSError:
            key = "closed by server"
        writer.close()
        outcomes[key] = outcomes.get(key, 0) + 1

    await asyncio.gather(*(one() for _ in range(count)))
    return outcomes


async def run(held: int, slow: int, seconds: float, hard_files: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        async with Emulator() as emu:
            port = free_port()
            server = spawn(emu, Path(directory) / "bot.db", port, hard_files)
            url = f"http://127.0.0.1:{port}"
            emu.webhook_url = f"{url}/whatsapp/webhook"
            try:
                async with aiohttp.ClientSession() as http:
                    for _ in range(600):
                        try:
                            async with http.get(f"{url}/ready") as r:
                                if r.status == 200:
                                    break
                        except aiohttp.ClientError:
                            pass
                        await asyncio.sleep(0.1)
                print(f"server ready (open files: soft 1024, hard {hard_files}): {rss_mb(server.pid):.0f} MB resident")
                bot_user = emu.user("15550009999")
                await bot_user.send_text("hello")

                writers, outcomes = await held_bodies(port, held)
                during = await probe(url, emu, 20, 0.1)
                print(
                    f"held bodies ({held} x 3 MB - 1 byte): attackers got {outcomes}; server "
                    f"{rss_mb(server.pid):.0f} MB resident (peak {rss_mb(server.pid, 'VmHWM:'):.0f} MB); "
                    f"/health {during[0]}/20, signed webhooks acknowledged {during[1]}/20"
                )
                for writer in writers:
                    writer.close()

                stop = asyncio.Event()
                attack = asyncio.create_task(slowloris(port, slow, seconds, stop))
                await asyncio.sleep(3)
                during = await probe(url, emu, 30, 0.5)
                stop.set()
                outcomes = await attack
                print(
                    f"slowloris ({slow} connections, a header line every 2 s): attackers got {outcomes}; "
                    f"/health {during[0]}/30, signed webhooks acknowledged {during[1]}/30; "
                    f"server peak {rss_mb(server.pid, 'VmHWM:'):.0f} MB"
                )
            finally:
                server.terminate()
                server.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--held", type=int, default=300)
    parser.add_argument("--slow", type=int, default=1100)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--hard-files", type=int, nargs="+", default=[1024, 8192])
    args = parser.parse_args()
    for hard_files in args.hard_files:
        asyncio.run(run(args.held, args.slow, args.seconds, hard_files))


if __name__ == "__main__":
    main()
