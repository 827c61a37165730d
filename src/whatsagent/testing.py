"""Test a whatsagent bot end to end on a laptop: your agent, served for real, against the emulator.

    async with BotHarness(my_agent, tmp_path) as bot:
        ana = bot.user("15551234567", name="Ana")
        await ana.send_text("hi")
        [reply] = await ana.wait_for_replies(1)
        assert "hello" in reply.text

The harness serves an `AgentOS` with uvicorn on a loopback port, backed by SQLite in a temporary folder,
and points it at an in-process `whatsagent.emulator.Emulator` (signed webhooks in, Graph API out).
This module is also a pytest plugin (the `wa_bot` fixture factory).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from whatsagent.app import AgentOS
    from whatsagent.channels.cloudapi import CloudAPI
    from whatsagent.emulator import Emulator

APP_SECRET = "harness-app-secret"
ACCESS_TOKEN = "harness-token"
VERIFY_TOKEN = "harness-verify-token"
PHONE_NUMBER_ID = "100200300"


class BotHarness:
    """An agent served on loopback against the emulator; restartable on the same database."""

    def __init__(
        self,
        agent: Any,
        directory: str | Path,
        *,
        emulator: Emulator | None = None,
        merge_window: float = 0.0,
        **os_options: Any,
    ) -> None:
        self.agent = agent
        self.directory = Path(directory)
        self.database = f"sqlite:///{self.directory / 'whatsagent.db'}"
        self.merge_window = merge_window
        self.os_options = os_options
        self._own_emulator = emulator is None
        self.emulator: Emulator | None = emulator
        self.os: AgentOS | None = None
        self.channel: CloudAPI | None = None
        self.url = ""
        self._server: Any = None
        self._serve_task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> BotHarness:
        if self.emulator is None:
            from whatsagent.emulator import Emulator

            self.emulator = Emulator(phone_number_id=PHONE_NUMBER_ID, access_token=ACCESS_TOKEN, app_secret=APP_SECRET)
            await self.emulator.start()
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        if self._own_emulator and self.emulator is not None:
            await self.emulator.stop()

    def build_os(self) -> AgentOS:
        from whatsagent.app import AgentOS
        from whatsagent.channels.cloudapi import CloudAPI

        assert self.emulator is not None
        self.channel = CloudAPI(
            agent=self.agent,
            access_token=self.emulator.access_token,
            phone_number_id=self.emulator.phone_number_id,
            verify_token=VERIFY_TOKEN,
            app_secret=self.emulator.app_secret,
            api_base_url=self.emulator.base_url,
        )
        return AgentOS(
            channels=[self.channel], database=self.database, merge_window=self.merge_window, **self.os_options
        )

    async def start(self) -> None:
        """Serve (again) on a fresh port; the emulator's webhooks follow."""
        import uvicorn

        self.os = self.build_os()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(self.os.get_app(), log_level="warning", lifespan="on", access_log=False)
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._serve_task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._serve_task.done():
                self._serve_task.result()  # raises the start-up error
            await asyncio.sleep(0.01)
        self.url = f"http://127.0.0.1:{port}"
        assert self.emulator is not None
        self.emulator.webhook_url = f"{self.url}/whatsapp/webhook"

    async def stop(self) -> None:
        if self._server is not None and self._serve_task is not None:
            self._server.should_exit = True
            await self._serve_task
            self._server = None
            self._serve_task = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    def user(self, wa_id: str | None = None, name: str | None = None, *, user_id: str | None = None) -> Any:
        assert self.emulator is not None
        return self.emulator.user(wa_id, name, user_id=user_id)


@pytest.fixture
async def wa_bot(tmp_path: Path) -> AsyncIterator[Callable[..., BotHarness]]:
    """A factory: ``async with wa_bot(agent) as bot: ...`` serves `agent` against the emulator."""
    harnesses: list[BotHarness] = []

    def make(agent: Any, **options: Any) -> BotHarness:
        harness = BotHarness(agent, tmp_path / f"bot{len(harnesses)}", **options)
        harness.directory.mkdir(parents=True, exist_ok=True)
        harnesses.append(harness)
        return harness

    yield make
