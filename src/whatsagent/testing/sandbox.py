"""The synchronous sandbox behind the `wa` fixture: the bot and the emulator on an event loop of their own
in a background thread (`_LoopThread`), driven from a plain test (`Sandbox`), one simulated user's chat
at a time (`Chat`)."""

from __future__ import annotations

import asyncio
import mimetypes
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from whatsagent.testing.harness import BotHarness, Provider

if TYPE_CHECKING:
    from whatsagent.app import AgentOS
    from whatsagent.emulator import Emulator, Faults, InboundRecord, OutboundRecord, SimulatedUser

T = TypeVar("T")


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
        """The emulator's fault injection (`wa.faults.fail_next(2, http_status=429)`: the next two sends are
        refused as rate limited)."""
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
        """End the 24-hour customer service window: free-form sends now fail as WhatsApp fails them; templates
        still go through. The user's next message opens it again."""
        self.wa.emulator.close_window(self.user)

    def __repr__(self) -> str:
        return f"Chat({self.name or self.key!r}, {len(self.user.replies)} replies)"


def _read(source: str | Path | bytes, mime_type: str | None, default: str) -> tuple[bytes, str]:
    if isinstance(source, bytes):
        return source, mime_type or default
    path = Path(source)
    return path.read_bytes(), mime_type or mimetypes.guess_type(path.name)[0] or default
