"""What a turn does when its user writes again while the agent is still thinking (`TurnPolicy.on_new_message`).

- ``merge`` (the default): the turn finishes; messages that arrived meanwhile become the next turn,
  answered together.
- ``interrupt``: nothing of the turn has been sent yet, so the agent's run is cancelled and started
  again with all the user's messages: one answer to everything (no "Where?" to a question the user has
  already completed). Nothing is sent twice: a turn stores and sends its answer (and what its
  tools want to send) only once the agent has finished, and every write is fenced by the lane's lease.
  Writes a tool made itself before the interruption (a memory saved) stay, and the new run sees them.
  A turn is started again at most `TurnPolicy.max_interrupts` times; after that it finishes, and what
  arrives meanwhile is answered by the next turn.
- ``queue``: like merge, but each message gets a turn (and an answer) of its own, in order.

Measured with `python -m benchmarks interrupt` (40 users writing 4 messages each to a 2 s model, on this
2-core machine under load): with messages 0.1 s apart, interrupt answered a message in 3.8 s at the
median against 4.5 s for merge; 0.5 s apart, merge won, 3.1 s against 4.8 s. Interrupt makes about twice
the model calls of merge in bursts (a cancelled call is still paid for at most providers) and sends half
the answers. Merge stays the default; interrupt is for bots whose users type in quick bursts.

A new message is noticed at once when it arrives at this process (`Interrupts.notify`, called by the
inbox after its commit) and otherwise, when web and worker are separate processes, by a look at the
conversation's inbox every `TurnPolicy.interrupt_poll` seconds while the agent thinks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Literal

OnNewMessage = Literal["interrupt", "merge", "queue"]


class Interrupts:
    """Process-local: the turns thinking right now, by conversation, and a way to tell them to start over."""

    def __init__(self) -> None:
        self._thinking: dict[str, asyncio.Event] = {}

    def watch(self, conversation: str) -> asyncio.Event:
        event = self._thinking[conversation] = asyncio.Event()
        return event

    def unwatch(self, conversation: str, event: asyncio.Event) -> None:
        if self._thinking.get(conversation) is event:
            del self._thinking[conversation]

    def notify(self, conversations: Iterable[str]) -> None:
        """New messages that call for an answer were stored for these conversations."""
        for conversation in conversations:
            event = self._thinking.get(conversation)
            if event is not None:
                event.set()
