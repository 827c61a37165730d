"""The channel seam: how a provider's webhooks come in and how its sends go out.

A channel turns its provider's wire format into neutral messages (`whatsagent.messages`) at the edge,
hands them to the inbox, and sends neutral outbound messages (`whatsagent.messages.outbound`) through one pooled
HTTP client. Two implementations: Meta's Cloud API and Twilio, each a package of the same modules:
``channel.py`` (the class), ``webhook.py`` (the inbound HTTP edge), ``client.py`` (the provider's REST
calls), ``parse.py`` (webhook payloads to neutral events), ``wire.py`` (neutral messages to the
provider's request bodies), ``errors.py`` (the provider's error codes) and ``signature.py``.

Everything the core needs to know about a provider is asked of the channel here: what it can send
(`check`), how a failure reads (`explain`; the `SendError` it raises carries the flags the sender acts
on), and the media store it serves stored media from (`use_media_store`). The core never probes a
channel with ``getattr`` or by catching ``NotImplementedError``.
"""

from __future__ import annotations

import abc
import copy
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from whatsagent.errors import SendError
from whatsagent.messages import Event, Media, User
from whatsagent.messages.outbound import OutboundMessage, SendResult

if TYPE_CHECKING:
    import aiohttp
    from starlette.routing import BaseRoute

    from whatsagent.media.store import MediaStore

Finding = tuple[Literal["ok", "fail", "skip"], str]
"""What a channel's self-check (`whatsagent doctor`) found: its outcome and a line saying what to do."""

Accept = Callable[[Sequence[Event]], Awaitable[None]]
"""The inbox's entry point a webhook calls; it returns once the events are durable and raises
`StoreUnavailable` when they could not be committed."""


class Channel(abc.ABC):
    """One WhatsApp business number reached through one provider, served by one agent."""

    provider: ClassVar[str]
    """Short provider name: ``cloudapi`` or ``twilio``."""

    text_limit: ClassVar[int] = 4096
    """Longest text body the provider accepts, in characters (code points)."""
    caption_limit: ClassVar[int] = 1024

    unsupported_reply: str | None = "Sorry, I can't open that kind of message yet."
    """What a user reads after sending only messages WhatsApp could not hand over (a poll, a view-once);
    None hands them to the agent instead, described in words."""

    def __init__(self, *, agent: Any, name: str | None, prefix: str) -> None:
        self.agent = agent
        self._name = name
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.media_store: MediaStore | None = None

    @property
    def name(self) -> str:
        """Stable, unique name of this channel in the OS; stored with every message, so keep it fixed."""
        return self._name or f"{self.provider}:{self.account}"

    @property
    @abc.abstractmethod
    def account(self) -> str:
        """The business account id messages arrive for (phone number id, Twilio sender)."""

    @abc.abstractmethod
    def validate(self) -> None:
        """Raise `ConfigurationError` naming every missing or wrong setting."""

    @abc.abstractmethod
    def routes(self, accept: Accept) -> list[BaseRoute]:
        """The channel's endpoints, under `prefix`: its webhooks and whatever else it serves."""

    def webhook_routes(self, accept: Accept) -> list[BaseRoute]:
        """The endpoints that take webhooks: read, verify, parse, `accept`, answer. They use nothing of
        the serving process but the channel's settings, so `whatsagent serve --front` runs them in a
        process of its own (when `frontable`)."""
        return self.routes(accept)

    @property
    def frontable(self) -> bool:
        """Whether `webhook_routes` may run in the front's process: False when taking a webhook teaches
        the channel something the bot's process needs (its webhooks then go to the bot's process)."""
        return True

    def for_front(self) -> Channel | None:
        """A copy of this channel for the front's process, which only takes webhooks: its settings,
        without the agent or the media store (the front gets it pickled); None if not `frontable`.
        Taken before the channel is opened (an open channel holds the process's HTTP client)."""
        if not self.frontable:
            return None
        clone = copy.copy(self)
        clone.agent = None
        clone.media_store = None
        return clone

    @abc.abstractmethod
    async def open(self, http: aiohttp.ClientSession) -> None:
        """Start using the process's pooled HTTP client."""

    def use_media_store(self, store: MediaStore | None) -> None:
        """Where `MediaOut.stored` media are read from when they are sent (the OS attaches its store)."""
        self.media_store = store

    @abc.abstractmethod
    def check(self, message: OutboundMessage) -> None:
        """Raise `InvalidMessage`, saying what to change, when this channel cannot send `message` as
        given (a limit broken, a kind of message the provider does not carry). Sends nothing."""

    @abc.abstractmethod
    async def send(self, to: User, message: OutboundMessage, *, callback_data: str | None = None) -> SendResult:
        """Send one message. Raise `InvalidMessage` when it cannot be sent as given, and `SendError`
        when the provider does not accept it, with the flags (`retryable`, `token_refused`,
        `window_closed`, `slow_down`) that say what its error code means."""

    def explain(self, message: OutboundMessage, error: SendError) -> str:
        """Why `message` failed for good, in words an operator can act on (a template's channel names
        what is wrong with it); stored on the outbox row and logged."""
        return str(error)

    @abc.abstractmethod
    async def typing(self, to: User, inbound_id: str) -> None:
        """Show the typing indicator on (and mark read) the user's message `inbound_id`."""

    @abc.abstractmethod
    async def download(self, media: Media, *, max_bytes: int) -> tuple[bytes, str]:
        """Fetch an inbound medium's bytes and MIME type, refusing more than `max_bytes`; raise
        `SendError` when it cannot be fetched."""

    @abc.abstractmethod
    async def check_credentials(self, http: aiohttp.ClientSession) -> Finding:
        """Whether the provider accepts this channel's credentials (`whatsagent doctor`); sends nothing."""

    @abc.abstractmethod
    async def check_webhook(self, http: aiohttp.ClientSession, url: str | None) -> Finding:
        """Whether `url`, the webhook the provider calls, answers as this channel's webhook must
        (`whatsagent doctor --webhook-url`); changes nothing."""
