"""The bot the benchmarks serve, answering at once.

BENCH_AGENT=pydantic (default): a whatsagent.Agent over a zero-latency pydantic-ai FunctionModel, so the
figures include pydantic-ai's own run (about 2.5 ms of CPU per run here). BENCH_AGENT=callable: an async
function answering at once, so the figures are whatsagent's own cost. Other settings from the
environment (the benchmark driver sets them): WHATSAPP_* for the emulator, WHATSAGENT_DATABASE_URL,
BENCH_MERGE_WINDOW (a huge window = ingest only: nothing is answered).
"""

from __future__ import annotations

import os

from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from whatsagent import Agent, AgentOS, TurnContext
from whatsagent.channels import CloudAPI
from whatsagent.pacing import Pacing


async def instant(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return ModelResponse(parts=[TextPart("Thanks, noted!")])


async def callable_agent(ctx: TurnContext) -> str:
    return "Thanks, noted!"


assistant: object = (
    callable_agent
    if os.environ.get("BENCH_AGENT") == "callable"
    else Agent(name="bench", model=FunctionModel(instant), instructions="Answer briefly.", history_turns=5)
)
os = AgentOS(
    channels=[CloudAPI(agent=assistant)],
    merge_window=float(os.environ.get("BENCH_MERGE_WINDOW", "0")),
    concurrency=512,
    # Meta's top tier, so the figures measure whatsagent rather than the default 80 messages/s pacing.
    pacing=Pacing(rate=1000),
)
