"""The bot the benchmarks serve.

BENCH_AGENT picks the agent:
- ``pydantic`` (default): a whatsagent.Agent over a zero-latency pydantic-ai FunctionModel, so the figures
  include pydantic-ai's own run;
- ``callable``: an async function answering at once (whatsagent's own cost);
- ``openai``: what users run, ``Agent(model="gpt-4o-mini", base_url=BENCH_OPENAI_URL)``: pydantic-ai's
  OpenAI model over the openai SDK, talking HTTP to the benchmark's fake OpenAI server;
- ``openai-unshared``: the same model built by hand the way pydantic-ai's docs show
  (``OpenAIChatModel(name, provider=OpenAIProvider(base_url=..., api_key=...))``), i.e. without
  whatsagent's shared provider client: the "before" of the provider path.

Other settings from the environment (the benchmark driver sets them): WHATSAPP_* for the Graph API,
WHATSAGENT_DATABASE_URL, BENCH_MERGE_WINDOW (a huge window = ingest only: nothing is answered);
BENCH_PROFILE=FILE profiles the event-loop thread with cProfile, written to FILE when the server exits.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from whatsagent import Agent, AgentOS, TurnContext
from whatsagent.channels import CloudAPI
from whatsagent.pacing import Pacing
from whatsagent.turns import TurnPolicy

if TYPE_CHECKING:
    from pydantic_ai.messages import ModelMessage, ModelResponse
    from pydantic_ai.models.function import AgentInfo

if os.environ.get("BENCH_SWITCH_INTERVAL"):
    # How often CPython hands the GIL between threads (5 ms by default): with turns on a thread of their
    # own, the web loop waits up to this long for the interpreter at each step of an acknowledgement.
    sys.setswitchinterval(float(os.environ["BENCH_SWITCH_INTERVAL"]))

_PROFILE = os.environ.get("BENCH_PROFILE")
if _PROFILE:
    import cProfile

    _profile = cProfile.Profile()
    _profile.enable()

# Answers name the last message they saw ("ok m3"), so benchmarks/provider.py knows what each answers.
# pydantic-ai is imported where an agent needs it, as in a user's app (not at start-up for a model string).


async def instant(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    from pydantic_ai.messages import ModelResponse, TextPart, UserPromptPart

    prompt = next((p.content for p in reversed(messages[-1].parts) if isinstance(p, UserPromptPart)), "")
    return ModelResponse(parts=[TextPart("ok " + str(prompt).rsplit("\n", 1)[-1])])


async def callable_agent(ctx: TurnContext) -> str:
    return "ok " + ctx.text.rsplit("\n", 1)[-1]


def _agent(kind: str) -> object:
    if kind == "callable":
        return callable_agent
    if kind == "openai":
        return Agent(
            name="bench",
            model="gpt-4o-mini",
            base_url=os.environ["BENCH_OPENAI_URL"],
            api_key="bench",
            instructions="Answer briefly.",
            history_turns=5,
        )
    if kind == "openai-unshared":
        from pydantic_ai.models.openai import OpenAIChatModel
        from pydantic_ai.providers.openai import OpenAIProvider

        model = OpenAIChatModel(
            "gpt-4o-mini", provider=OpenAIProvider(base_url=os.environ["BENCH_OPENAI_URL"], api_key="bench")
        )
        return Agent(name="bench", model=model, instructions="Answer briefly.", history_turns=5)
    from pydantic_ai.models.function import FunctionModel

    return Agent(name="bench", model=FunctionModel(instant), instructions="Answer briefly.", history_turns=5)


assistant = _agent(os.environ.get("BENCH_AGENT", "pydantic"))
os = AgentOS(
    channels=[CloudAPI(agent=assistant)],
    merge_window=float(os.environ.get("BENCH_MERGE_WINDOW", "0")),
    concurrency=int(os.environ.get("BENCH_CONCURRENCY", "512")),
    # Meta's top tier, so the figures measure whatsagent rather than the default 80 messages/s pacing.
    pacing=Pacing(rate=1000),
    admission_lag=float(os.environ["BENCH_ADMISSION_LAG"]) if os.environ.get("BENCH_ADMISSION_LAG") else None,
    turn_details=os.environ.get("BENCH_TURN_DETAILS", "1") != "0",
    turn_policy=TurnPolicy(on_new_message=os.environ.get("BENCH_ON_NEW_MESSAGE", "merge")),  # type: ignore[arg-type]
)

if _PROFILE:
    # Written when the OS stops (uvicorn re-raises SIGTERM after shutdown, so atexit never runs).
    _stop = os.stop

    async def _stop_and_dump() -> None:
        await _stop()
        _profile.dump_stats(_PROFILE)

    os.stop = _stop_and_dump  # type: ignore[method-assign]
