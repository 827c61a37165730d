"""The 24-hour customer service window: when a free-form message may be sent, and what goes instead.

A user's message opens a 24-hour window; outside it WhatsApp takes only approved templates and refuses
anything else, often only later in a `failed` status webhook
(https://developers.facebook.com/documentation/business-messaging/whatsapp/messages/send-messages); the
channel flags that refusal `window_closed`. whatsagent tracks each conversation's last inbound message
(`conversations.last_inbound_at`) and does not attempt a free-form message outside the window. Instead
the message is **parked** (kept in the outbox, sent first when the user writes again) and the channel's
**fallback template** goes out — e.g. "you have a reply waiting, tap to read it" — at most once per
closed window: its outbox key is derived from the window, so a second closure, a redelivered status or a
retried job finds it already there. That is what keeps a closed-window refusal from ever looping.

    window=WindowPolicy(fallback=TemplateOut(name="reply_waiting", language="en_US", params=("there",)))
    window=WindowPolicy(fallback={"cloudapi:123": lambda user: TemplateOut(name="welcome_back",
                                                                       params=(user.name or "there",))})
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from whatsagent import conversations, outbox
from whatsagent.messages import User
from whatsagent.messages.outbound import TemplateOut
from whatsagent.store.database import Connection

WINDOW_SECONDS = 24 * 3600.0

Fallback = TemplateOut | Callable[[User], TemplateOut]
"""A template, or a function of the user giving one (to put their name in a parameter)."""


class ManualClock:
    """A clock tests move by hand: ``clock.advance(25 * 3600)`` and the window has closed."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class WindowPolicy:
    """What to do about the 24-hour window.

    `fallback`: the template sent instead of a free-form message outside the window — one for every
    channel, or a mapping of channel name to template; None parks the message and reports it (logs,
    metrics, the delivery API) until the user writes again.
    `margin`: seconds before the end of the window from which it counts as closed (a message accepted at
    23:59:59 would reach WhatsApp after the window).
    `clock`: wall-clock seconds (`time.time`); a `ManualClock` in tests.
    """

    fallback: Fallback | Mapping[str, Fallback] | None = None
    length: float = WINDOW_SECONDS
    margin: float = 60.0
    clock: Callable[[], float] = field(default=time.time)

    def fallback_for(self, channel: str, user: User) -> TemplateOut | None:
        chosen = self.fallback.get(channel) if isinstance(self.fallback, Mapping) else self.fallback
        if chosen is None or isinstance(chosen, TemplateOut):
            return chosen
        return chosen(user)

    def is_open(self, state: WindowState) -> bool:
        if state.closed_at is not None and state.last_inbound_at <= state.closed_at:
            return False  # the provider said so, and the user has not written since
        return self.clock() < state.last_inbound_at + self.length - self.margin


@dataclass(frozen=True)
class WindowState:
    channel: str
    user: User
    last_inbound_at: float
    """When the user last wrote (0: never, the bot opened the conversation)."""
    closed_at: float | None
    """The `last_inbound_at` whose window the provider reported closed, if it did."""
    parked: bool = False
    """Messages of this conversation wait for the window to open."""

    @property
    def epoch(self) -> str:
        """Names this window: one fallback template per window."""
        return f"{self.last_inbound_at:.3f}"


def state(conversation: str) -> Callable[[Connection], WindowState | None]:
    def op(conn: Connection) -> WindowState | None:
        found = conversations.window(conn, conversation)
        if found is None:
            return None
        parked = outbox.has_parked(conn, conversation)
        return WindowState(found.channel, found.user, found.last_inbound_at, found.closed_at, parked)

    return op


def mark_closed(conn: Connection, conversation: str) -> None:
    """The provider refused a free-form message: the window of the user's latest message is over."""
    conversations.mark_window_closed(conn, conversation)


def fallback_key(conversation: str, epoch: str) -> str:
    return f"window:{conversation}:{epoch}"
