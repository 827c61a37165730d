"""whatsagent inside a FastAPI app of your own (its router, its lifespan), and `serve --reload`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import sys

import aiohttp
import pytest
import uvicorn
from fastapi import FastAPI

from whatsagent import AgentOS
from whatsagent.channels.cloudapi import CloudAPI
from whatsagent.emulator import Emulator
from whatsagent.testing import VERIFY_TOKEN, free_port


async def echo(ctx) -> str:
    return f"echo: {ctx.text}"


@contextlib.asynccontextmanager
async def served(app: FastAPI):
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def build_os(emulator: Emulator, tmp_path) -> AgentOS:
    channel = CloudAPI(
        agent=echo,
        access_token=emulator.access_token,
        phone_number_id=emulator.phone_number_id,
        app_secret=emulator.app_secret,
        verify_token=VERIFY_TOKEN,
        api_base_url=emulator.base_url,
    )
    return AgentOS(channels=[channel], database=f"sqlite:///{tmp_path}/bot.db", merge_window=0)


@pytest.fixture
async def emulator():
    emu = Emulator(access_token="tok", app_secret="secret")
    await emu.start()
    yield emu
    await emu.stop()


async def test_the_router_in_your_own_fastapi_app_starts_whatsagent_and_answers(emulator, tmp_path):
    agent_os = build_os(emulator, tmp_path)
    app = FastAPI()

    @app.get("/mine")
    async def mine() -> dict[str, str]:
        return {"mine": "yes"}

    app.include_router(agent_os.get_router())
    async with served(app) as url:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/ready") as ready:
                assert ready.status == 200, "the router's lifespan started whatsagent"
            async with http.get(f"{url}/mine") as mine_answer:
                assert await mine_answer.json() == {"mine": "yes"}
        emulator.webhook_url = f"{url}/whatsapp/webhook"
        ana = emulator.user("15551234567")
        await ana.send_text("hi")
        [reply] = await ana.wait_for_replies(1)
    assert reply.text == "echo: hi"


async def test_whatsagents_lifespan_inside_your_own(emulator, tmp_path):
    agent_os = build_os(emulator, tmp_path)
    started: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        started.append("mine")
        async with agent_os.lifespan(app):
            yield

    app = FastAPI(lifespan=lifespan)
    app.mount("/bot", agent_os.get_app())
    async with served(app) as url, aiohttp.ClientSession() as http:
        async with http.get(f"{url}/bot/ready") as ready:
            assert ready.status == 200
    assert started == ["mine"]


async def test_a_mounted_app_that_never_started_says_why_in_the_log(emulator, tmp_path, caplog):
    agent_os = build_os(emulator, tmp_path)
    app = FastAPI()
    app.mount("/bot", agent_os.get_app())  # Starlette never runs a mounted app's lifespan
    with caplog.at_level(logging.ERROR, logger="whatsagent"):
        async with served(app) as url:
            emulator.webhook_url = f"{url}/bot/whatsapp/webhook"
            ana = emulator.user("15551234567")
            delivery = await ana.send_text("hi")
            assert delivery.status == 503
    assert any("include_router(os.get_router())" in r.getMessage() for r in caplog.records)


MYAPP = """
print("loaded {version}", flush=True)
from whatsagent import AgentOS
from whatsagent.channels import CloudAPI

async def echo(ctx):
    return ctx.text

os = AgentOS(
    agents=[echo],
    channels=[CloudAPI(access_token="t", phone_number_id="1", app_secret="s", verify_token="v")],
    database="sqlite:///bot.db",
)
if __name__ == "__main__":
    import sys
    os.serve(host="127.0.0.1", port=int(sys.argv[1]), reload=True, log_level="info")
"""


async def wait_for(proc: subprocess.Popen, text: str, seen: list[str]) -> None:
    assert proc.stdout is not None
    while not any(text in line for line in seen):
        line = await asyncio.to_thread(proc.stdout.readline)
        if not line:
            raise AssertionError(f"the server exited (code {proc.poll()}) before {text!r}:\n{''.join(seen)}")
        seen.append(line)


async def until_ready(proc: subprocess.Popen, port: int, seen: list[str]) -> None:
    """uvicorn logs "startup complete" just before it listens: poll /ready until it answers 200."""
    async with aiohttp.ClientSession() as http:
        while True:
            assert proc.poll() is None, "".join(seen)
            try:
                async with http.get(f"http://127.0.0.1:{port}/ready") as ready:
                    if ready.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("how", ["cli", "python"])
async def test_serve_with_reload_restarts_on_a_code_change(tmp_path, how):
    (tmp_path / "myapp.py").write_text(MYAPP.format(version="v1"))
    port = free_port()
    if how == "cli":
        command = [sys.executable, "-m", "whatsagent.cli", "serve", "myapp:os", "--reload", "--host", "127.0.0.1"]
        command += ["--port", str(port)]
    else:
        command = [sys.executable, "myapp.py", str(port)]
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: list[str] = []
    try:
        await wait_for(proc, "Application startup complete", seen)
        await until_ready(proc, port, seen)
        (tmp_path / "myapp.py").write_text(MYAPP.format(version="v2"))
        await wait_for(proc, "loaded v2", seen)
        await wait_for(proc, "Application startup complete", [line for line in seen if "v2" in line])
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 60)
    assert proc.returncode != 3, "".join(seen)
