"""Where a turn's CPU goes on the provider path, layer by layer, in one process.

Against the fake OpenAI server of `benchmarks.provider` (its own process, answering at once), each layer
makes the same chat completion `--calls` times with `--concurrency` in flight, and prints CPU
milliseconds per call of this process (the fake's CPU is not counted):

- aiohttp: a bare POST with aiohttp (the floor of an HTTP round trip in Python);
- httpx: the same POST with an httpx.AsyncClient;
- openai SDK: ``client.chat.completions.create`` (httpx underneath);
- openai SDK + aiohttp: the same over the SDK's aiohttp transport (``httpx-aiohttp``), when installed;
- pydantic-ai FunctionModel: a whatsagent.Agent's turn on a zero-latency in-process model (no HTTP);
- pydantic-ai OpenAIChatModel: a whatsagent.Agent's turn, ``Agent(model=..., base_url=...)``;
- + turn details: the same turn recording its steps (`AgentOS(turn_details=True)`, the default), without
  storing them (a whatsagent.Agent is built with the recording capability: in the layers above it is idle);
- + turn details + OpenTelemetry: also pydantic-ai's OpenTelemetry instrumentation, as with
  ``TraceExport(otlp_endpoint=...)`` (spans go nowhere here).

    python -m benchmarks provider-path [--calls 2000] [--concurrency 32] [--profile LAYER]

``--profile LAYER`` prints the top of a cProfile of that layer instead.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import time
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks.provider import Fakes

BODY = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "m1"}],
}


def _turn_context(text: str) -> Any:
    from whatsagent.agents.context import TurnContext
    from whatsagent.messages import Text, User

    user = User(wa_id="15550001234", name="Bench")
    message = Text(id="wamid.1", channel="whatsapp", account="1", user=user, body=text)
    return TurnContext(conversation="c", channel="whatsapp", user=user, messages=[message])


CLOSE: list[Callable[[], Awaitable[Any]]] = []


async def layers(base: str) -> dict[str, Callable[[], Awaitable[Any]]]:
    import aiohttp
    import httpx
    import openai

    from benchmarks.app import instant
    from whatsagent import Agent

    session = aiohttp.ClientSession()
    CLOSE.append(session.close)
    raw = json.dumps(BODY).encode()

    async def bare_aiohttp() -> Any:
        async with session.post(
            f"{base}/chat/completions", data=raw, headers={"Content-Type": "application/json"}
        ) as r:
            return await r.json()

    client = httpx.AsyncClient()
    CLOSE.append(client.aclose)

    async def bare_httpx() -> Any:
        return (await client.post(f"{base}/chat/completions", content=raw)).json()

    sdk = openai.AsyncOpenAI(base_url=base, api_key="bench")
    CLOSE.append(sdk.close)

    async def sdk_call() -> Any:
        return await sdk.chat.completions.create(model="gpt-4o-mini", messages=BODY["messages"])  # type: ignore[arg-type]

    found: dict[str, Callable[[], Awaitable[Any]]] = {
        "aiohttp": bare_aiohttp,
        "httpx": bare_httpx,
        "openai SDK": sdk_call,
    }
    try:
        from openai import DefaultAioHttpClient

        sdk_aio = openai.AsyncOpenAI(base_url=base, api_key="bench", http_client=DefaultAioHttpClient())
        CLOSE.append(sdk_aio.close)

        async def sdk_aio_call() -> Any:
            return await sdk_aio.chat.completions.create(model="gpt-4o-mini", messages=BODY["messages"])  # type: ignore[arg-type]

        await sdk_aio_call()
        found["openai SDK + aiohttp"] = sdk_aio_call
    except Exception as exc:  # httpx-aiohttp not installed
        print(f"(openai SDK + aiohttp skipped: {exc})")

    from pydantic_ai.models.function import FunctionModel

    fn_agent = Agent(name="bench", model=FunctionModel(instant), instructions="Answer briefly.")
    ctx = _turn_context("m1")
    found["pydantic-ai FunctionModel"] = lambda: fn_agent.respond(ctx)
    oa_agent = Agent(name="bench", model="gpt-4o-mini", base_url=base, api_key="bench", instructions="Answer briefly.")
    found["pydantic-ai OpenAIChatModel"] = lambda: oa_agent.respond(ctx)

    from dataclasses import replace

    from whatsagent.tracing import TracedResponder

    turns = iter(range(1, 10**9))

    def traced_call(traced: TracedResponder) -> Callable[[], Awaitable[Any]]:
        return lambda: traced.respond(replace(ctx, turn_id=next(turns)))

    found["+ turn details"] = traced_call(TracedResponder(oa_agent, lambda: None))
    # Also pydantic-ai's OpenTelemetry instrumentation, what trace_export adds (and what turn details were
    # made of before), on an agent of its own (spans going nowhere), so the layers above stay without it.
    from opentelemetry.sdk.trace import TracerProvider
    from pydantic_ai.models.instrumented import InstrumentationSettings

    ot_agent = Agent(name="bench", model="gpt-4o-mini", base_url=base, api_key="bench", instructions="Answer briefly.")
    otel = TracedResponder(ot_agent, lambda: None)
    otel._provider, otel._set_up = TracerProvider(), True
    ot_agent.pydantic_agent.instrument = InstrumentationSettings(tracer_provider=otel._provider, include_content=False)
    found["+ turn details + OpenTelemetry"] = traced_call(otel)
    return found


async def measure(call: Callable[[], Awaitable[Any]], calls: int, concurrency: int) -> float:
    """CPU milliseconds of this process per call."""
    for _ in range(20):
        await call()
    left = calls

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await call()

    cpu = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.process_time() - cpu) * 1000 / calls


async def run(args: argparse.Namespace) -> None:
    fakes = Fakes(0)
    try:
        found = await layers(f"{fakes.url}/v1")
        if args.profile:
            call = found[args.profile]
            await measure(call, 50, args.concurrency)
            profile = cProfile.Profile()
            profile.enable()
            await measure(call, args.calls, args.concurrency)
            profile.disable()
            stats = pstats.Stats(profile)
            if args.by_package:
                by_package(stats, args.calls)
            else:
                stats.sort_stats(args.sort).print_stats(args.top)
            return
        print(f"CPU ms per call, {args.calls} calls, {args.concurrency} in flight (load {os.getloadavg()[0]:.2f})")
        for name, call in found.items():
            print(f"  {name:>30}: {await measure(call, args.calls, args.concurrency):6.2f}")
    finally:
        from whatsagent.model_http import close_loop_pools

        for close in CLOSE:
            await close()
        await close_loop_pools()
        fakes.close()


def by_package(stats: pstats.Stats, calls: int) -> None:
    """Own time (tottime) per call, summed by the package its code lives in."""
    totals: dict[str, float] = {}
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if "site-packages/" in filename:
            package = filename.split("site-packages/", 1)[1].split("/", 1)[0]
        elif "/src/whatsagent/" in filename:
            package = "whatsagent"
        elif filename.startswith("~") or filename.startswith("<"):
            package = "builtins"
        else:
            package = "stdlib:" + filename.rsplit("/", 1)[-1]
        totals[package] = totals.get(package, 0.0) + tottime
    whole = sum(totals.values())
    for package, total in sorted(totals.items(), key=lambda kv: -kv[1])[:30]:
        print(f"  {package:>40}: {total * 1000 / calls:6.3f} ms/call ({100 * total / whole:4.1f} %)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--profile", default=None)
    parser.add_argument("--sort", default="cumulative")
    parser.add_argument("--top", type=int, default=60)
    parser.add_argument("--by-package", action="store_true", help="with --profile: own time summed by package")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
