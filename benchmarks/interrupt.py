"""Reply latency when users write in bursts: `TurnPolicy.on_new_message` = interrupt, merge, queue.

    python -m benchmarks interrupt [--users 60] [--messages 4] [--gap 0.5] [--model 2.0]

Each user writes `--messages` messages `--gap` seconds apart to a bot whose model takes `--model`
seconds (an echo after a sleep: the time a real model spends waiting for its provider). A message's
latency is the time from its send to the first answer that covers it. The three policies run one after
the other in this process, against the emulator, on SQLite: compare them as ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from typing import Any


async def _run(policy: str, users: int, messages: int, gap: float, model: float) -> dict[str, float]:
    from whatsagent.testing import BotHarness
    from whatsagent.turns import TurnPolicy

    calls = 0

    async def thinking(ctx: Any) -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(model)
        return "echo: " + " | ".join(ctx.text.split("\n"))

    latencies: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with BotHarness(thinking, tmp, turn_policy=TurnPolicy(on_new_message=policy)) as bot:  # type: ignore[arg-type]
            people = [bot.user(f"1555{i:07d}") for i in range(users)]
            sent_at: dict[str, float] = {}

            async def converse(i: int) -> None:
                for j in range(messages):
                    text = f"u{i} m{j}"
                    sent_at[text] = time.monotonic()
                    await people[i].send_text(text)
                    await asyncio.sleep(gap)

            started = time.monotonic()
            await asyncio.gather(*(converse(i) for i in range(users)))
            answered: dict[str, float] = {}
            while len(answered) < users * messages:
                for person in people:
                    for reply in person.replies:
                        for line in (reply.text or "").removeprefix("echo: ").split(" | "):
                            answered.setdefault(line, reply.time)
                await asyncio.sleep(0.05)
            elapsed = time.monotonic() - started
            offset = time.time() - time.monotonic()
            latencies = [answered[text] - offset - at for text, at in sent_at.items()]
            replies = sum(len(p.replies) for p in people)
    latencies.sort()
    return {
        "p50": statistics.median(latencies),
        "p90": latencies[int(0.9 * (len(latencies) - 1))],
        "model calls": calls,
        "answers": replies,
        "elapsed": elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=60)
    parser.add_argument("--messages", type=int, default=4)
    parser.add_argument("--gap", type=float, default=0.5)
    parser.add_argument("--model", type=float, default=2.0)
    args = parser.parse_args()
    results = {
        policy: asyncio.run(_run(policy, args.users, args.messages, args.gap, args.model))
        for policy in ("interrupt", "merge", "queue")
    }
    print(
        f"{args.users} users x {args.messages} messages {args.gap:g}s apart, a {args.model:g}s model "
        "(latency: send to the first answer covering it)"
    )
    print(f"{'policy':10}{'p50 s':>8}{'p90 s':>8}{'model calls':>13}{'answers':>9}")
    for policy, r in results.items():
        print(f"{policy:10}{r['p50']:>8.2f}{r['p90']:>8.2f}{r['model calls']:>13.0f}{r['answers']:>9.0f}")


if __name__ == "__main__":
    main()
