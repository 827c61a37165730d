"""Start-up loads only what serving needs: pydantic-ai and the model SDKs load after the server is ready."""

from __future__ import annotations

import subprocess
import sys

from whatsagent import Agent, AgentOS
from whatsagent.agents.models import resolve_model
from whatsagent.channels.cloudapi import CloudAPI

CHANNEL = {"access_token": "t", "phone_number_id": "1", "app_secret": "s", "verify_token": "v"}

APP = """
import sys
from whatsagent import Agent, AgentOS
from whatsagent.channels import CloudAPI
from whatsagent.demo import DemoAgent

async def callable_agent(ctx):
    return "hi"

channel = dict(access_token="t", phone_number_id="1", app_secret="s", verify_token="v")
agents = [
    Agent(model="gpt-4o-mini", base_url="http://127.0.0.1:9/v1", api_key="k"),
    Agent(model="openai:gpt-4o-mini", api_key="k"),
    Agent(model="anthropic:claude-sonnet-4-5", api_key="k"),
    Agent(),  # the offline model
    DemoAgent(),
    callable_agent,
]
for agent in agents:
    agent_os = AgentOS(channels=[CloudAPI(agent=agent, **channel)], database="sqlite:///{db}")
    agent_os.validate()
    agent_os.get_app()
print(sorted({{m.split(".")[0] for m in sys.modules}} & {{"pydantic_ai", "openai", "anthropic", "httpx2"}}))
"""


def test_an_app_is_built_and_validated_without_loading_pydantic_ai_or_a_model_sdk(tmp_path):
    code = APP.format(db=tmp_path / "bot.db")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=_no_keys())
    assert out.stdout.strip() == "[]", out.stderr


def test_a_model_built_from_arguments_is_built_once_on_first_use():
    resolved = resolve_model("llama3.2", base_url="http://localhost:11434/v1")
    assert resolved.deferred and resolved.provider == "openai-compatible"
    assert resolved.model is resolved.model, "built once, then kept"


async def test_once_ready_the_warm_up_builds_the_agents_models(tmp_path):
    agent = Agent(model="gpt-4o-mini", base_url="http://127.0.0.1:9/v1", api_key="k")
    agent_os = AgentOS(  # one loop: the warm-up's event belongs to the loop turns run on
        channels=[CloudAPI(agent=agent, **CHANNEL)], database=f"sqlite:///{tmp_path}/bot.db", turn_thread=False
    )
    async with agent_os.lifespan():
        await agent_os._warmed.wait()  # turns wait for this too
        assert agent.resolved._model is not None, "the model was built by the warm-up"
        assert "pydantic_ai.models.openai" in sys.modules


def _no_keys() -> dict[str, str]:
    import os

    keys = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY", "GROQ_API_KEY")
    return {k: v for k, v in os.environ.items() if k not in keys and not k.startswith("WHATSAGENT_")}


GC_APP = """
import gc, os, threading, time
from pathlib import Path

report = Path(os.environ["GC_REPORT"])
lines = [f"imported with collection {'on' if gc.isenabled() else 'off'}"]
report.write_text("\\n".join(lines))


def watch() -> None:  # until the server resumes collection
    while not gc.isenabled():
        time.sleep(0.01)
    lines.append(f"resumed {gc.get_threshold()} frozen {gc.get_freeze_count()}")
    report.write_text("\\n".join(lines))


threading.Thread(target=watch, daemon=True).start()

from whatsagent import AgentOS
from whatsagent.channels import CloudAPI


async def echo(ctx):
    return "ok"


os = AgentOS(
    channels=[CloudAPI(agent=echo, access_token="t", phone_number_id="1", app_secret="s", verify_token="v")],
    database="sqlite:///{db}",
)
"""


async def test_serve_loads_the_app_without_collecting_garbage_and_resumes_once_warm(tmp_path):
    """Importing and building an app creates objects for good: collections among them only cost
    start-up time. Once ready and warm, the server collects again, with the loaded objects frozen."""
    import asyncio

    from whatsagent.heap import THRESHOLDS
    from whatsagent.testing.processes import ServerProcess

    (tmp_path / "gcapp.py").write_text(GC_APP.replace("{db}", str(tmp_path / "bot.db")))
    report = tmp_path / "gc.txt"
    env = {**_no_keys(), "GC_REPORT": str(report), "PYTHONPATH": str(tmp_path)}
    env.pop("WHATSAGENT_GC_THRESHOLDS", None)
    server = ServerProcess("gcapp:os", env=env, cwd=tmp_path, log=tmp_path / "server.log")
    await server.start()
    try:
        while "resumed" not in (report.read_text() if report.exists() else ""):
            assert server.proc is not None and server.proc.poll() is None, server.tail()
            await asyncio.sleep(0.05)
        imported, resumed = report.read_text().splitlines()
        assert imported == "imported with collection off"
        assert resumed.startswith(f"resumed {THRESHOLDS} frozen "), resumed
        assert int(resumed.rsplit(" ", 1)[1]) > 10_000, "what start-up loaded is frozen"
    finally:
        server.terminate()


def test_an_app_is_built_while_another_thread_is_still_importing_pydantic_ai(monkeypatch):
    """A running server's warm-up imports pydantic-ai in a thread: until it is done, `sys.modules` holds a
    module without its `Agent`. Building another AgentOS meanwhile must not trip on it."""
    import types

    async def echo(ctx):
        return "hi"

    monkeypatch.setitem(sys.modules, "pydantic_ai", types.ModuleType("pydantic_ai"))  # partly initialised
    agent_os = AgentOS(channels=[CloudAPI(agent=echo, **CHANNEL)], database="sqlite:///unused.db")
    assert agent_os.responders
