"""Single-process throughput: webhooks in, answers out, over loopback.

Starts `whatsagent serve benchmarks.app:os` in its own process (so its CPU and memory are measured
alone) against the emulator's Graph API in this process, drives it with signed webhooks, and prints:
durable webhook acks/s and ack latency when only ingesting; answered messages/s end to end with ack
latency under that load; server CPU per message; peak RSS.

    python -m benchmarks webhooks [--ingest 20000] [--messages 3000] [--users 3000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from benchmarks import loadgen
from whatsagent.emulator import Emulator
from whatsagent.testing import ServerProcess, emulator_env

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime, all threads


def with_children(pid: int) -> list[int]:
    """`pid` and its child processes (``whatsagent serve --front``: the front)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(c) for c in (task / "children").read_text().split()]
    return [pid, *children]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_server(
    emu: Emulator, db: Path, merge_window: float, agent: str = "pydantic", front: bool = False
) -> ServerProcess:
    env = {
        **({"WHATSAGENT_FRONT": "1"} if front else {}),
        **emulator_env(emu),
        "WHATSAGENT_DATABASE_URL": f"sqlite:///{db}",
        "BENCH_MERGE_WINDOW": str(merge_window),
        "BENCH_AGENT": agent,
        "PYTHONPATH": str(ROOT),
    }
    return ServerProcess("benchmarks.app:os", env=env, cwd=ROOT)


def signed_text(secret: str, pnid: str, wa_id: str, wamid: str, text: str) -> bytes:
    raw = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "1",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {"display_phone_number": "15550001111", "phone_number_id": pnid},
                                "contacts": [{"profile": {"name": "Bench"}, "wa_id": wa_id}],
                                "messages": [
                                    {
                                        "from": wa_id,
                                        "id": wamid,
                                        "timestamp": str(int(time.time())),
                                        "type": "text",
                                        "text": {"body": text},
                                    }
                                ],
                            },
                        }
                    ],
                }
            ],
        },
        separators=(",", ":"),
    ).encode()
    return raw


async def post_all(url: str, secret: str, bodies: list[bytes], concurrency: int) -> tuple[float, list[float]]:
    """Post every body with `concurrency` in flight; return elapsed seconds and each ack's latency. The
    bodies are signed and framed before the clock starts (`benchmarks.loadgen`)."""
    latencies: list[float] = []
    requests = [
        loadgen.post(
            url, raw, {"X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()}, i
        )
        for i, raw in enumerate(bodies)
    ]

    def answered(_request: loadgen.Request, status: int, _sent_at: float, latency: float) -> None:
        if status != 200:
            raise RuntimeError(f"webhook answered {status}")
        latencies.append(latency)

    target = urlsplit(url)
    started = time.perf_counter()
    await loadgen.closed_loop(target.hostname or "127.0.0.1", target.port or 80, requests, concurrency, answered)
    return time.perf_counter() - started, latencies


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000 if len(values) > 1 else float("nan")


async def ingest(args: argparse.Namespace, workdir: Path, front: bool = False) -> dict[str, float]:
    """Webhooks acknowledged, none answered (a merge window of an hour). With `front`: ``serve --front``,
    the front's CPU per acknowledgement and the bot's (the hand-over) apart."""
    async with Emulator(record_requests=False, page=False) as emu:
        server = bench_server(emu, workdir / f"ingest-{front}.db", merge_window=3600, front=front)
        await server.start()
        try:
            bodies = [
                signed_text(emu.app_secret, emu.phone_number_id, f"1555{i % 2000:07d}", f"wamid.ING{i}", f"hi {i}")
                for i in range(args.ingest)
            ]
            await post_all(f"{server.url}/whatsapp/webhook", emu.app_secret, bodies[:500], args.concurrency)  # warm-up
            pids = with_children(server.pid)
            cpu0 = [cpu_seconds(p) for p in pids]
            elapsed, lat = await post_all(
                f"{server.url}/whatsapp/webhook", emu.app_secret, bodies[500:], args.concurrency
            )
            cpu = [cpu_seconds(p) - c for p, c in zip(pids, cpu0, strict=True)]
            n = len(bodies) - 500
            figures = {
                "acks_per_s": n / elapsed,
                "ack_p50_ms": pct(lat, 50),
                "ack_p99_ms": pct(lat, 99),
                "cpu_ms_per_ack": sum(cpu) * 1000 / n,
                "peak_rss_mb": sum(peak_rss_mb(p) for p in pids),
            }
            if front:
                figures["front_cpu_ms_per_ack"] = sum(cpu[1:]) * 1000 / n
            return figures
        finally:
            server.terminate()


async def end_to_end(args: argparse.Namespace, workdir: Path, agent: str) -> dict[str, float]:
    async with Emulator(record_requests=False, page=False) as emu:
        server = bench_server(emu, workdir / f"e2e-{agent}.db", merge_window=0, agent=agent)
        await server.start()
        emu.webhook_url = f"{server.url}/whatsapp/webhook"
        try:
            users = [emu.user(f"1556{i:07d}") for i in range(args.users)]
            per_user = max(1, args.messages // args.users)
            total = per_user * len(users)
            latencies: list[float] = []
            sem = asyncio.Semaphore(args.e2e_concurrency)

            async def send(u, text: str) -> None:
                async with sem:
                    t = time.perf_counter()
                    d = await u.send_text(text)
                    latencies.append(time.perf_counter() - t)
                    if not d.ok:
                        raise RuntimeError(f"webhook answered {d.status}")

            cpu0 = cpu_seconds(server.pid)
            started = time.perf_counter()
            await asyncio.gather(*(send(u, f"message {k}") for k in range(per_user) for u in users))
            acked = time.perf_counter() - started
            deadline = time.monotonic() + 300
            while sum(len(u.replies) for u in users) < sum(1 for _ in users) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            # Every message is answered (merged turns answer several at once): wait for the turns to drain.
            last_count, stable_since = -1, time.monotonic()
            while time.monotonic() < deadline:
                count = sum(len(u.replies) for u in users)
                if count != last_count:
                    last_count, stable_since = count, time.monotonic()
                elif time.monotonic() - stable_since > 1.0:
                    break
                await asyncio.sleep(0.02)
            finished = stable_since - started
            cpu = cpu_seconds(server.pid) - cpu0
            replies = sum(len(u.replies) for u in users)
            return {
                "messages": total,
                "turns_answered": replies,
                "answered_msgs_per_s": total / finished,
                "acks_per_s": total / acked,
                "ack_p50_ms": pct(latencies, 50),
                "ack_p99_ms": pct(latencies, 99),
                "cpu_ms_per_msg": cpu * 1000 / total,
                "peak_rss_mb": peak_rss_mb(server.pid),
            }
        finally:
            server.terminate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ingest", type=int, default=20000, help="webhooks posted in the ingest-only run")
    parser.add_argument("--messages", type=int, default=3000, help="messages in the end-to-end run")
    parser.add_argument(
        "--users", type=int, default=3000, help="users in the end-to-end run (fewer users: bursts merge into turns)"
    )
    parser.add_argument("--concurrency", type=int, default=64, help="webhooks in flight when only ingesting")
    parser.add_argument(
        "--e2e-concurrency",
        type=int,
        default=16,
        help="webhooks in flight end to end (a closed loop: latency = in flight / rate, so keep it modest)",
    )
    parser.add_argument("--only", choices=["ingest", "e2e"], default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="whatsagent-bench-") as tmp:
        results: dict[str, dict[str, float]] = {}
        if args.only in (None, "ingest"):
            results["ingest only"] = asyncio.run(ingest(args, Path(tmp)))
            results["ingest only, serve --front"] = asyncio.run(ingest(args, Path(tmp), front=True))
        if args.only in (None, "e2e"):
            results["end to end, pydantic-ai agent"] = asyncio.run(end_to_end(args, Path(tmp), "pydantic"))
            results["end to end, async function agent"] = asyncio.run(end_to_end(args, Path(tmp), "callable"))
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}")
    for name, figures in results.items():
        print(f"\n{name}:")
        for key, value in figures.items():
            print(f"  {key:>22}: {value:,.2f}")


if __name__ == "__main__":
    main()
