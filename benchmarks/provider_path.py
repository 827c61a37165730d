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
- google-genai SDK, pydantic-ai GoogleModel, anthropic SDK, pydantic-ai AnthropicModel: the same for
  Gemini's ``generateContent`` and Anthropic's ``/v1/messages`` (skipped when the SDK is not installed);
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


def _turn_context(text: str, history_turns: int = 0) -> Any:
    from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, UserPromptPart

    from whatsagent.agents.context import TurnContext
    from whatsagent.messages import Text, User

    user = User(wa_id="15550001234", name="Bench")
    message = Text(id="wamid.1", channel="whatsapp", account="1", user=user, body=text)
    history: list[Any] = []
    for k in range(history_turns):
        history.append(ModelRequest(parts=[UserPromptPart(content=f"question {k}: " + "words " * 30)]))
        history.append(ModelResponse(parts=[TextPart(content=f"answer {k}: " + "words " * 40)]))
    return TurnContext(conversation="c", channel="whatsapp", user=user, messages=[message], history=history)


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
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    from whatsagent.model_http import shared_http_client

    sdk_model = OpenAIChatModel(
        "gpt-4o-mini", provider=OpenAIProvider(base_url=base, api_key="bench", http_client=shared_http_client())
    )
    sdk_agent = Agent(name="bench", model=sdk_model, instructions="Answer briefly.")
    found["  … the SDK's own create"] = lambda: sdk_agent.respond(ctx)

    # A turn as a conversation's later turns are: five earlier turns of history and three tools offered.
    def opening_hours(day: str) -> str:
        """Opening hours on a day."""
        return "9-17"

    def stock(item: str, size: str | None = None) -> int:
        """How many of an item are in stock."""
        return 3

    def book(day: str, time: str, people: int, name: str) -> str:
        """Book a table."""
        return "booked"

    tools = [opening_hours, stock, book]
    long_ctx = _turn_context("m11", history_turns=5)
    oa_long = Agent(name="bench", model="gpt-4o-mini", base_url=base, api_key="bench", tools=tools)
    sdk_long = Agent(name="bench", model=sdk_model, tools=tools)
    found["OpenAIChatModel, 5 turns of history, 3 tools"] = lambda: oa_long.respond(long_ctx)
    found["  … the SDK's own create "] = lambda: sdk_long.respond(long_ctx)
    await other_providers(found, base.removesuffix("/v1"), ctx)

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


async def other_providers(found: dict[str, Callable[[], Awaitable[Any]]], root: str, ctx: Any) -> None:
    """Google (Gemini) and Anthropic: each SDK's bare call, and a whatsagent.Agent's turn on pydantic-ai's
    model built as ``Agent(model="google:...", api_key=...)`` builds it (`whatsagent.model_http.provider`,
    the shared HTTP client), pointed at the fakes. A layer whose SDK is not installed is skipped."""
    from pydantic_ai.models import infer_model

    from whatsagent import Agent, model_http

    def turn(model: str) -> Callable[[], Awaitable[Any]]:
        provider = model.partition(":")[0]
        built = infer_model(model, provider_factory=lambda _: model_http.provider(provider, base_url=root, api_key="b"))
        agent = Agent(name="bench", model=built, instructions="Answer briefly.")
        return lambda: agent.respond(ctx)

    try:
        from google import genai
        from google.genai import types
    except ImportError as exc:
        print(f"(google-genai SDK and pydantic-ai GoogleModel skipped: {exc})")
    else:
        google = genai.Client(api_key="b", http_options=types.HttpOptions(base_url=root))  # aiohttp, if installed
        CLOSE.append(google.aio.aclose)
        config = types.GenerateContentConfig(system_instruction="Answer briefly.")
        found["google-genai SDK"] = lambda: google.aio.models.generate_content(
            model="gemini-2.5-flash", contents="m1", config=config
        )
        found["pydantic-ai GoogleModel"] = turn("google:gemini-2.5-flash")
    try:
        import anthropic
    except ImportError as exc:
        print(f"(anthropic SDK and pydantic-ai AnthropicModel skipped: {exc})")
    else:
        claude = anthropic.AsyncAnthropic(base_url=root, api_key="b")
        CLOSE.append(claude.close)
        found["anthropic SDK"] = lambda: claude.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=1024,
            system="Answer briefly.",
            messages=[{"role": "user", "content": "m1"}],
        )

        async def streamed() -> Any:  # what pydantic-ai sends when max_tokens is left to the model (below)
            async with claude.messages.stream(
                model="claude-sonnet-4-5",
                max_tokens=64000,
                system="Answer briefly.",
                messages=[{"role": "user", "content": "m1"}],
            ) as stream:
                return await stream.get_final_message()

        found["  … streamed"] = streamed
        found["pydantic-ai AnthropicModel"] = turn("anthropic:claude-sonnet-4-5")


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
