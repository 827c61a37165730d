"""The async harness: an agent served on loopback against the emulator, on the test's own event loop
(`BotHarness`), and `wait_idle`, which waits until a bot has answered and sent everything it is going to."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from whatsagent.app import AgentOS
    from whatsagent.channels.base import Channel
    from whatsagent.emulator import Emulator
    from whatsagent.store.database import Database

APP_SECRET = "harness-app-secret"
ACCESS_TOKEN = "harness-token"
VERIFY_TOKEN = "harness-verify-token"
PHONE_NUMBER_ID = "100200300"
TWILIO_ACCOUNT_SID = "AC" + "0" * 31 + "1"
TWILIO_AUTH_TOKEN = "harness-twilio-auth-token"
TWILIO_SENDER = "whatsapp:+15550001111"

Provider = Literal["cloudapi", "twilio"]


class BotHarness:
    """An agent served on loopback against the emulator; restartable on the same database.

    `provider` picks the wire format between them: Meta's Cloud API (default) or Twilio's."""

    def __init__(
        self,
        agent: Any,
        directory: str | Path,
        *,
        emulator: Emulator | None = None,
        merge_window: float = 0.0,
        provider: Provider = "cloudapi",
        database: str | None = None,
        **os_options: Any,
    ) -> None:
        if provider not in ("cloudapi", "twilio"):
            raise ValueError(f"provider must be 'cloudapi' or 'twilio', not {provider!r}")
        self.agent = agent
        self.directory = Path(directory)
        self.database = database or f"sqlite:///{self.directory / 'whatsagent.db'}"
        self.merge_window = merge_window
        self.provider = provider
        self.os_options = os_options
        self._own_emulator = emulator is None
        self.emulator: Emulator | None = emulator
        self.os: AgentOS | None = None
        self.channel: Channel | None = None
        self.url = ""
        self._server: Any = None
        self._serve_task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> BotHarness:
        if self.emulator is None:
            from whatsagent.emulator import Emulator

            self.emulator = Emulator(phone_number_id=PHONE_NUMBER_ID, access_token=ACCESS_TOKEN, app_secret=APP_SECRET)
            await self.emulator.start()
        try:
            await self.start()
        except BaseException:
            if self._own_emulator:
                await self.emulator.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        if self._own_emulator and self.emulator is not None:
            await self.emulator.stop()

    def build_channel(self, url: str = "") -> Channel:
        """The bot's channel, pointed at the emulator; `url` is where the bot is served."""
        assert self.emulator is not None
        if self.provider == "twilio":
            from whatsagent.channels.twilio import Twilio

            account = self.emulator.twilio_account
            if account is None or account.account_sid != TWILIO_ACCOUNT_SID:
                account = self.emulator.twilio(account_sid=TWILIO_ACCOUNT_SID, auth_token=TWILIO_AUTH_TOKEN)
            return Twilio(
                agent=self.agent,
                account_sid=account.account_sid,
                auth_token=account.auth_token,
                from_number=account.from_number,
                api_base_url=self.emulator.base_url,
                public_url=url or None,
                content_sids=account.content_sids,
            )
        from whatsagent.channels.cloudapi import CloudAPI

        return CloudAPI(
            agent=self.agent,
            access_token=self.emulator.access_token,
            phone_number_id=self.emulator.phone_number_id,
            verify_token=VERIFY_TOKEN,
            app_secret=self.emulator.app_secret,
            api_base_url=self.emulator.base_url,
        )

    def build_os(self, url: str = "") -> AgentOS:
        from whatsagent.app import AgentOS

        self.channel = self.build_channel(url)
        return AgentOS(
            channels=[self.channel], database=self.database, merge_window=self.merge_window, **self.os_options
        )

    async def start(self) -> None:
        """Serve (again) on a fresh port; the emulator's webhooks follow."""
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        self.os = self.build_os(f"http://127.0.0.1:{port}")
        config = uvicorn.Config(self.os.get_app(), log_level="warning", lifespan="on", access_log=False)
        self._server = uvicorn.Server(config)
        self._serve_task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._serve_task.done():
                self._serve_task.result()  # raises the start-up error
                raise RuntimeError("the bot's server stopped during start-up")
            await asyncio.sleep(0.01)
        self.url = f"http://127.0.0.1:{port}"
        assert self.emulator is not None and self.channel is not None
        self.emulator.webhook_url = f"{self.url}{self.channel.prefix}/webhook"

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

    async def idle(self, timeout: float = 60.0) -> None:
        """Wait until the bot has nothing left to do: every stored message that asks for an answer was
        taken by a turn, no turn is open, no outbox row waits to be sent, and (SQLite) no job is queued
        (a window fallback or a memory capture still to come)."""
        assert self.os is not None
        await wait_idle(self.os, timeout)


async def wait_idle(bot: AgentOS | Database, timeout: float = 60.0) -> None:
    """`BotHarness.idle` for an `AgentOS` served some other way (several channels, a custom server), or
    for the database of a bot served in another process."""
    from whatsagent.store.database import Database

    deadline = time.monotonic() + timeout
    calm = 0
    while True:
        db = bot if isinstance(bot, Database) else bot.db
        inbox = None if isinstance(bot, Database) else bot.inbox
        if db is None:
            busy: str | None = "the bot is not started"
        elif inbox is not None and inbox._follow_ups:
            busy = "an acknowledged webhook's follow-up (wake-up, failure report) is not queued yet"
        else:
            busy = await db.read(_busy)
        # Twice in a row, a few ms apart: a turn that just committed its answer has rows to send.
        calm = calm + 1 if busy is None else 0
        if calm >= 2:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the bot was still busy after {timeout:g}s: {busy}")
        await asyncio.sleep(0.01)


def _busy(conn: Any) -> str | None:
    from whatsagent import inbox, outbox, turns
    from whatsagent.queue.embedded import queued_jobs

    pending = inbox.count_waiting(conn)
    if pending:
        return f"{pending} message(s) wait for a turn"
    running = turns.count_open(conn)
    if running:
        return f"{running} turn(s) running"
    unsent = outbox.count_pending(conn)
    if unsent:
        return f"{unsent} outbound message(s) not sent yet"
    queued = queued_jobs(conn)  # done jobs are deleted
    if queued:
        return f"{queued} job(s) queued or running (wake-ups, window fallbacks, memory captures)"
    return None
