"""Test a whatsagent bot end to end: your agent, served for real, against the local WhatsApp emulator.

This module is a pytest plugin (installed with whatsagent; nothing to configure). Its `wa` fixture serves
your agent with a real `AgentOS` (webhooks, inbox, lanes, outbox, sender, on SQLite in a temporary
folder) against an in-process emulator, and lets a test script a conversation::

    import pytest
    from whatsagent import Agent
    from whatsagent.testing import scripted_model

    @pytest.fixture
    def wa_agent():                                   # the bot the `wa` fixture serves
        return Agent(model=scripted_model("Hello Ana!", "Booked for Friday."))

    def test_booking(wa):
        chat = wa.user("Ana")
        chat.send("hi")                               # returns once the bot has answered and sent
        assert chat.last_reply.text == "Hello Ana!"
        chat.send("book me in")
        assert chat.last_reply.text == "Booked for Friday."

Every action (`send`, `tap`, `send_image`, ...) returns once the bot is idle again: the message is
stored, its turn has run, and everything the turn answered has been sent (or has failed for good). So
`chat.last_reply` is settled when you read it, with no sleeps in tests.

The API is synchronous and works in plain and in async tests alike: the bot and the emulator run on an
event loop of their own in a background thread. The one thing that cannot cross is an asyncio object:
an agent must not await an `asyncio.Event` created by the test. For that, use the async `BotHarness`
below, which runs everything on the test's own loop::

    async with BotHarness(my_agent, tmp_path) as bot:
        ana = bot.user("15551234567", name="Ana")
        await ana.send_text("hi")
        await bot.idle()
        assert ana.last_reply.text == "hello"

Other fixtures: `wa_agent` (override it; the default asks you to), `wa_bot` (a factory of async
harnesses). Deterministic model stubs: `scripted_model(...)` with `tool_call(...)` steps.
See docs/testing.md.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import pytest
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

if TYPE_CHECKING:
    from whatsagent.app import AgentOS
    from whatsagent.channels.base import Channel
    from whatsagent.emulator import Emulator, Faults, InboundRecord, OutboundRecord, SimulatedUser
    from whatsagent.store.database import Database

__all__ = [
    "BotHarness",
    "Chat",
    "Sandbox",
    "ScriptedModel",
    "ServerProcess",
    "scripted_model",
    "tool_call",
    "wa",
    "wa_agent",
    "wa_bot",
    "wait_idle",
]

APP_SECRET = "harness-app-secret"
ACCESS_TOKEN = "harness-token"
VERIFY_TOKEN = "harness-verify-token"
PHONE_NUMBER_ID = "100200300"
TWILIO_ACCOUNT_SID = "AC" + "0" * 31 + "1"
TWILIO_AUTH_TOKEN = "harness-twilio-auth-token"
TWILIO_SENDER = "whatsapp:+15550001111"

Provider = Literal["cloudapi", "twilio"]
T = TypeVar("T")


# -- a server in its own process ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def emulator_env(emulator: Emulator) -> dict[str, str]:
    """The ``WHATSAPP_*`` settings that point a bot at `emulator`."""
    return {
        "WHATSAPP_ACCESS_TOKEN": emulator.access_token,
        "WHATSAPP_PHONE_NUMBER_ID": emulator.phone_number_id,
        "WHATSAPP_APP_SECRET": emulator.app_secret,
        "WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN,
        "WHATSAPP_API_BASE_URL": emulator.base_url,
    }


class ServerProcess:
    """``whatsagent serve TARGET`` in a child process, for tests that kill it, stop it or measure it.

    server = ServerProcess("myapp:os", env={**emulator_env(emu), "WHATSAGENT_DATABASE_URL": url})
    await server.start()            # returns once /ready answers 200
    emu.webhook_url = server.webhook_url
    server.kill9()                  # or: seconds = server.terminate()
    """

    def __init__(
        self,
        target: str,
        *,
        env: dict[str, str],
        role: str | None = None,
        cwd: str | Path | None = None,
        log: str | Path | None = None,
        prefix: str = "/whatsapp",
    ) -> None:
        self.target = target
        self.env = {**os.environ, **env}
        self.role = role
        self.cwd = Path(cwd) if cwd is not None else Path.cwd()
        self.log = Path(log) if log is not None else None
        self.prefix = prefix
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def webhook_url(self) -> str:
        return f"{self.url}{self.prefix}/webhook"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the server is not started"
        return self.proc.pid

    def spawn(self) -> None:
        command = [sys.executable, "-m", "whatsagent.cli", "serve", self.target, "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--log-level", "warning"]
        if self.role is not None:
            command += ["--role", self.role]
        if self.log is not None:
            with open(self.log, "wb") as out:
                self.proc = subprocess.Popen(command, cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        else:
            self.proc = subprocess.Popen(command, cwd=self.cwd, env=self.env)

    async def start(self, timeout: float = 60.0) -> None:
        """Spawn the server and wait until it is ready; raise (with its log) if it exits first."""

        self.spawn()
        await self.wait_ready(timeout)

    async def wait_ready(self, timeout: float = 60.0) -> None:
        import aiohttp

        assert self.proc is not None
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the server exited during start-up (code {self.proc.returncode}){self.tail()}")
                try:
                    async with http.get(f"{self.url}/ready", timeout=aiohttp.ClientTimeout(total=2)) as r:
                        if r.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.05)
        raise TimeoutError(f"the server was not ready within {timeout:g}s{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return "\n" + "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def kill9(self) -> None:
        """Kill without warning (SIGKILL): nothing in the process gets to run."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 60.0) -> float:
        """SIGTERM, as a deploy would; return the seconds the process took to exit."""
        assert self.proc is not None
        started = time.perf_counter()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout)
        return time.perf_counter() - started


# -- the async harness ---------------------------------------------------------------------------------


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


# -- the synchronous sandbox ---------------------------------------------------------------------------


class _LoopThread:
    """An event loop in a daemon thread, for running the bot beside a synchronous test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="whatsagent-sandbox", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self.loop.close()


class Sandbox:
    """The `wa` fixture: one bot served against the emulator, driven from a test, synchronously.

    `wa.user("Ana")` gives a `Chat`. The emulator is `wa.emulator` (faults: `wa.faults`; status webhooks:
    `wa.statuses = "read"`); the bot's `AgentOS` is `wa.os`."""

    def __init__(
        self,
        directory: str | Path,
        agent: Any = None,
        *,
        provider: Provider = "cloudapi",
        timeout: float = 60.0,
        **os_options: Any,
    ) -> None:
        self.directory = Path(directory)
        self.agent = agent
        self.provider: Provider = provider
        self.timeout = timeout
        self.os_options = os_options
        self._loop: _LoopThread | None = None
        self._harness: BotHarness | None = None
        self._chats: dict[str, Chat] = {}

    # lifecycle

    def serve(self, agent: Any = None, *, provider: Provider | None = None, **os_options: Any) -> Sandbox:
        """Start serving `agent` (or the `wa_agent` fixture's). The first `user()` call does this too."""
        if self._harness is not None:
            raise RuntimeError("the bot is already served: call wa.serve(...) before wa.user(...)")
        if agent is not None:
            self.agent = agent
        if self.agent is None:
            raise RuntimeError(
                "no agent to serve: define a `wa_agent` fixture returning your agent, or call wa.serve(agent)"
            )
        if provider is not None:
            self.provider = provider
        self.os_options.update(os_options)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._loop = _LoopThread()
        harness = BotHarness(self.agent, self.directory, provider=self.provider, **self.os_options)
        self._loop.run(harness.__aenter__(), self.timeout + 20)
        self._harness = harness
        return self

    def close(self) -> None:
        if self._loop is None:
            return
        try:
            if self._harness is not None:
                self._loop.run(self._harness.__aexit__(None, None, None), self.timeout + 20)
        finally:
            self._harness = None
            self._loop.close()
            self._loop = None

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def harness(self) -> BotHarness:
        if self._harness is None:
            self.serve()
        assert self._harness is not None
        return self._harness

    @property
    def emulator(self) -> Emulator:
        emulator = self.harness.emulator
        assert emulator is not None
        return emulator

    @property
    def os(self) -> AgentOS:
        assert self.harness.os is not None
        return self.harness.os

    @property
    def faults(self) -> Faults:
        """The emulator's fault injection (`wa.faults.fail_next(2, http_status=429, code=130429)`)."""
        return self.emulator.faults

    @property
    def statuses(self) -> Any:
        return self.emulator.statuses

    @statuses.setter
    def statuses(self, value: Any) -> None:
        """Status webhooks for the bot's messages: False (default), True or "read", "delivered", "sent"."""
        self.emulator.statuses = value

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the bot's event loop (for the emulator's async API) and return its result."""
        assert self._loop is not None or self.harness
        assert self._loop is not None
        return self._loop.run(coro, self.timeout if timeout is None else timeout)

    def idle(self, timeout: float | None = None) -> None:
        """Wait until the bot has answered and sent everything it is going to."""
        self.run(self.harness.idle(self.timeout if timeout is None else timeout), (timeout or self.timeout) + 5)

    def settle(self, timeout: float | None = None) -> None:
        """`idle()`, then wait for the emulator's status webhooks and retries to be delivered."""
        self.idle(timeout)
        self.run(self.emulator.settle(self.timeout if timeout is None else timeout))
        self.idle(timeout)

    def restart(self) -> None:
        """Stop the bot and serve it again on the same database (a deploy, a crash recovery)."""
        self.run(self.harness.restart(), self.timeout + 20)

    # users

    def user(self, name: str | None = None, *, phone: str | None = None, user_id: str | None = None) -> Chat:
        """The chat of a simulated user, created on first use. Without `phone` or `user_id` the user gets
        a stable made-up number (15550100001, 15550100002, ... in order of creation)."""
        if name is not None and name in self._chats and phone is None and user_id is None:
            return self._chats[name]
        harness = self.harness
        if phone is None and user_id is None:
            phone = f"1555010{len(self._chats) + 1:04d}"
        assert harness.emulator is not None
        user = harness.emulator.user(phone, name, user_id=user_id)
        chat = Chat(self, user)
        self._chats[name or user.key] = chat
        return chat


@dataclass
class Chat:
    """One simulated user's chat with the bot. Each action returns once the bot is idle again, and
    returns the bot's messages that it caused (also in `last_replies`)."""

    wa: Sandbox
    user: SimulatedUser
    last_replies: list[OutboundRecord] = field(default_factory=list)
    """What the bot sent in answer to the latest action."""

    @property
    def name(self) -> str | None:
        return self.user.name

    @property
    def key(self) -> str:
        """The user's wa_id, or their BSUID when they have no phone number."""
        return self.user.key

    @property
    def replies(self) -> list[OutboundRecord]:
        """Everything the bot sent this user, in order."""
        return list(self.user.replies)

    @property
    def last_reply(self) -> OutboundRecord:
        """The bot's most recent message to this user (`.text`, `.type`, `.tappables`, `.template`,
        `.status`, `.media`, ...). Fails the test with a clear message when there is none."""
        if not self.user.replies:
            raise AssertionError(f"the bot has sent nothing to {self.name or self.key}")
        return self.user.replies[-1]

    @property
    def last_sent(self) -> InboundRecord:
        """The user's most recent message: `.read` (marked read by the bot), `.reaction` (the bot's
        reaction to it), `.deliveries` (HTTP statuses of the webhook deliveries)."""
        if not self.user.sent:
            raise AssertionError(f"{self.name or self.key} has sent nothing yet")
        return self.user.sent[-1]

    @property
    def typing_shown(self) -> bool:
        """Whether the bot showed the typing indicator on the user's latest message."""
        return self.last_sent.message_id in self.user.typing

    @property
    def reactions(self) -> dict[str, str | None]:
        """The bot's reactions to the user's messages, by the message's wamid."""
        return {m.message_id: m.reaction for m in self.user.sent if m.reaction}

    def _act(self, action: Callable[[SimulatedUser], Coroutine[Any, Any, Any]]) -> list[OutboundRecord]:
        before = len(self.user.replies)
        delivery = self.wa.run(action(self.user))
        status = getattr(delivery, "status", 200)
        if status != 200:
            raise AssertionError(f"the bot answered the webhook with HTTP {status}: {getattr(delivery, 'body', '')}")
        self.wa.idle()
        self.last_replies = list(self.user.replies[before:])
        return self.last_replies

    # what a user does

    def send(self, text: str) -> list[OutboundRecord]:
        """Send a text message; return the bot's answer to it (one or more messages, or none)."""
        return self._act(lambda u: u.send_text(text))

    def reply(self, text: str, *, to: OutboundRecord | str | None = None) -> list[OutboundRecord]:
        """Quote-reply to one of the bot's messages (default: its latest)."""
        target = to if isinstance(to, str) else (to or self.last_reply).message_id
        return self._act(lambda u: u.reply(text, to=target))

    def tap(self, choice: str, *, on: OutboundRecord | None = None) -> list[OutboundRecord]:
        """Tap a reply button, a list row or a template quick-reply button, by title or id, on the bot's
        latest message that has any (or on `on`)."""
        return self._act(lambda u: u.tap(choice, on=on.message_id if on else None))

    def send_image(
        self, image: str | Path | bytes, *, caption: str | None = None, mime_type: str | None = None
    ) -> list[OutboundRecord]:
        data, mime = _read(image, mime_type, "image/jpeg")
        return self._act(lambda u: u.send_image(data, mime, caption=caption))

    def send_voice(self, audio: str | Path | bytes, *, mime_type: str | None = None) -> list[OutboundRecord]:
        """A voice note (OGG/Opus unless `mime_type` says otherwise)."""
        data, mime = _read(audio, mime_type, "audio/ogg; codecs=opus")
        return self._act(lambda u: u.send_audio(data, mime, voice=True))

    def send_document(
        self,
        document: str | Path | bytes,
        *,
        filename: str | None = None,
        caption: str | None = None,
        mime_type: str | None = None,
    ) -> list[OutboundRecord]:
        data, mime = _read(document, mime_type, "application/pdf")
        name = filename or (Path(document).name if isinstance(document, (str, Path)) else "document.pdf")
        return self._act(lambda u: u.send_document(data, name, mime, caption=caption))

    def send_location(self, latitude: float, longitude: float, name: str | None = None) -> list[OutboundRecord]:
        return self._act(lambda u: u.send_location(latitude, longitude, name=name))

    def react(self, emoji: str, *, to: OutboundRecord | str | None = None) -> list[OutboundRecord]:
        """React to one of the bot's messages (default: its latest). Bots usually do not answer that."""
        target = to if isinstance(to, str) else (to or self.last_reply).message_id
        return self._act(lambda u: u.react(target, emoji))

    def close_window(self) -> None:
        """End the 24-hour customer service window: free-form sends now fail (131047 / 63016); templates
        still go through. The user's next message opens it again."""
        self.wa.emulator.close_window(self.user)

    def __repr__(self) -> str:
        return f"Chat({self.name or self.key!r}, {len(self.user.replies)} replies)"


def _read(source: str | Path | bytes, mime_type: str | None, default: str) -> tuple[bytes, str]:
    if isinstance(source, bytes):
        return source, mime_type or default
    path = Path(source)
    return path.read_bytes(), mime_type or mimetypes.guess_type(path.name)[0] or default


# -- deterministic models ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ToolCall:
    name: str
    args: dict[str, Any]


def tool_call(name: str, **args: Any) -> _ToolCall:
    """A scripted model step that calls the tool `name` with `args`; the next step sees its result."""
    return _ToolCall(name, args)


Step = str | _ToolCall | Sequence[_ToolCall] | Callable[[list[ModelMessage], AgentInfo], ModelResponse]


class ScriptedModel(FunctionModel):
    """A pydantic-ai model that answers with the given steps, in order, one per model request.

    `prompts` records the user's text of every request (what the bot passed to the model), `requests`
    the full message lists. Running out of steps fails the test with what was asked."""

    def __init__(self, steps: Sequence[Step], *, repeat_last: bool = False) -> None:
        self.steps = list(steps)
        self.repeat_last = repeat_last
        self.prompts: list[str] = []
        self.requests: list[list[ModelMessage]] = []
        self._next = 0
        super().__init__(self._answer, model_name="scripted")

    def _answer(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.requests.append(list(messages))
        last = messages[-1] if messages else None
        if isinstance(last, ModelRequest) and any(isinstance(p, UserPromptPart) for p in last.parts):
            self.prompts.append(_prompt_text(last))
        if self._next >= len(self.steps):
            if self.repeat_last and self.steps:
                step = self.steps[-1]
            else:
                raise AssertionError(
                    f"scripted_model has {len(self.steps)} step(s) and was asked for another; "
                    f"prompts so far: {self.prompts}"
                )
        else:
            step = self.steps[self._next]
            self._next += 1
        if isinstance(step, str):
            return ModelResponse(parts=[TextPart(step)])
        if isinstance(step, _ToolCall):
            return ModelResponse(parts=[ToolCallPart(step.name, step.args)])
        if callable(step):
            return step(messages, info)
        return ModelResponse(parts=[ToolCallPart(c.name, c.args) for c in step])


def scripted_model(*steps: Step, repeat_last: bool = False) -> ScriptedModel:
    """A deterministic model for tests: each step answers one model request, in order.

        model = scripted_model("Hi! What is your name?", tool_call("remember", fact="name is Ana"), "Noted.")
        Agent(model=model)

    A step is the answer's text, a `tool_call(...)` (or a list of them, called together), or a function
    ``(messages, info) -> ModelResponse`` for anything else. `repeat_last=True` keeps answering with
    the last step once the script is used up."""
    return ScriptedModel(steps, repeat_last=repeat_last)


def _prompt_text(request: ModelRequest) -> str:
    texts = []
    for part in request.parts:
        if isinstance(part, UserPromptPart):
            if isinstance(part.content, str):
                texts.append(part.content)
            else:
                texts.extend(c if isinstance(c, str) else f"[{type(c).__name__}]" for c in part.content)
    return "\n".join(texts)


# -- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture
def wa_agent() -> Any:
    """The agent the `wa` fixture serves. Override it in your conftest.py or test module; this default
    serves nothing, so a test then calls ``wa.serve(agent)`` itself."""
    return None


@pytest.fixture
def wa(wa_agent: Any, tmp_path: Path) -> Iterator[Sandbox]:
    """Your bot (the `wa_agent` fixture, or ``wa.serve(agent)``) against the emulator; ``wa.user("Ana")``
    gives a chat to script. Served on first use, stopped after the test."""
    sandbox = Sandbox(tmp_path / "whatsagent", wa_agent)
    try:
        yield sandbox
    finally:
        sandbox.close()


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
