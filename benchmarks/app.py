"""The bot the benchmarks serve: a whatsagent.Agent over a zero-latency pydantic-ai model.

Settings from the environment (the benchmark driver sets them): WHATSAPP_* for the emulator,
WHATSAGENT_DATABASE_URL, BENCH_MERGE_WINDOW (a huge window = ingest only: nothing is answered).
"""

from __future__ import annotations

import os

from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from whatsagent import Agent, AgentOS
from whatsagent.channels import CloudAPI


def instant(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return ModelResponse(parts=[TextPart("Thanks, noted!")])


assistant = Agent(name="bench", model=FunctionModel(instant), instructions="Answer briefly.", history_turns=5)
os = AgentOS(
    channels=[CloudAPI(agent=assistant)],
    merge_window=float(os.environ.get("BENCH_MERGE_WINDOW", "0")),
    concurrency=512,
)
